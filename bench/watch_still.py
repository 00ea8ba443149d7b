"""One still for the README: one policy in a normal and an inverted context, side by side.

    python bench/watch_still.py --out results/watch/cheetah_normal_vs_inverted.png
    python bench/watch_still.py --ckpt runs/cheetah/lightning_logs/version_0/checkpoints/last.ckpt \\
        --out results/watch/cheetah_normal_vs_inverted.png

With `--ckpt` the agent is the checkpoint's (weights-only read); without, a tiny DMA*-SH policy is
trained here for `--updates` updates (a few CPU minutes: it shows what the picture looks like,
not a learnt gait). Both contexts run the authors' evaluation protocol (warm-up, reset, one
deterministic episode, recorded by `lit_dmash.video` as `PolicyVideo` records) and the frame after
`--step` scored steps is kept, each tile labelled with its context and return so far. A JSON beside
the PNG records the command, the commit and whether the tree was dirty at the start, the date,
contexts and returns.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning as L
import numpy as np
from PIL import Image

from lit_dmash.io import BenchRecord, atomic_write_json, bench_command
from lit_dmash.render import gl_backend
from lit_dmash.video import FrameRecorder, describe_context, grid, label


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/watch/cheetah_normal_vs_inverted.png"))
    parser.add_argument("--ckpt", type=Path, default=None, help="a run's checkpoint; default: train a tiny policy")
    parser.add_argument("--task", default="cheetah", help="a paper task with the binary key action_factor")
    parser.add_argument("--split", default="eval_in")
    parser.add_argument("--horizon", type=int, default=200, help="episode length of the filmed episode")
    parser.add_argument("--step", type=int, default=None, help="scored step to show (default: the last)")
    parser.add_argument("--updates", type=int, default=300, help="updates of the tiny policy (no --ckpt)")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    return parser.parse_args(argv)


def tiny_policy(task: str, horizon: int, updates: int) -> L.LightningModule:
    """DMA*-SH trained briefly on `task`'s train contexts (4 of them), small networks, one CPU thread."""
    from lit_dmash.config import ContextConfig, EnvConfig, ProtocolConfig, SACConfig
    from lit_dmash.module import ContextualSAC

    module = ContextualSAC(
        method="dmash",
        env=EnvConfig(name=task, num_envs=4, contexts_per_split=20, horizon=horizon),
        protocol=ProtocolConfig(random_steps=horizon, total_steps=updates, buffer_size=20 * horizon),
        sac=SACConfig(hidden_dims=[64, 64], batch_size=64),
        context=ContextConfig(window=min(24, horizon), hypernet_hidden=[32, 32]),
    )
    trainer = L.Trainer(
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(Path("runs") / "watch_still"),
    )
    trainer.fit(module)
    return module


def checkpoint_policy(path: Path, horizon: int) -> L.LightningModule:
    """The checkpoint's module (its config, our horizon), weights loaded."""
    from lit_dmash.checkpointing import load_safely
    from lit_dmash.loading import module_from_config

    checkpoint = load_safely(path, map_location="cpu")
    config = dict(checkpoint["hyper_parameters"])
    config["env"] = {**config["env"], "horizon": horizon}
    module = module_from_config(config)
    module.load_state_dict(checkpoint["state_dict"])
    module.updates = int(checkpoint.get("lit_dmash", {}).get("updates", 0))
    return module


def normal_and_inverted(contexts: np.ndarray, names: list[str]) -> list[int]:
    """The normal context closest to the defaults' middle and the inverted one most like it."""
    if "action_factor" not in names:
        raise SystemExit(f"watch_still: the task's contexts {names} have no action_factor to invert")
    factor = names.index("action_factor")
    rest = [j for j in range(len(names)) if j != factor]
    normal = [i for i in range(len(contexts)) if contexts[i, factor] > 0]
    inverted = [i for i in range(len(contexts)) if contexts[i, factor] < 0]
    middle = contexts[:, rest].mean(axis=0)
    first = min(normal, key=lambda i: np.abs(contexts[i, rest] - middle).sum())
    second = min(inverted, key=lambda i: np.abs(contexts[i, rest] - contexts[first, rest]).sum())
    return [first, second]


def still(module: L.LightningModule, split: str, step: int | None, width: int, height: int) -> tuple:
    """The tiles' image after `step` scored steps, the indices, contexts in words and returns."""
    from lit_dmash.experience.rollout import run_episodes

    envs = module.make_envs(split, num_envs=module.env_cfg.contexts_per_split)
    try:
        env = envs.envs[0]
        names = list(env.context_names)
        indices = normal_and_inverted(env.contexts.numpy(), names)
        recorder = FrameRecorder(envs, indices, width, height)
        run_episodes(module.agent, recorder, module.spec.window, 1, module.protocol.warm_up)
        words = [describe_context(env.contexts[i].tolist(), names) for i in indices]
    finally:
        envs.close()
    t = len(recorder.frames) - 1 if step is None else min(step, len(recorder.frames)) - 1
    returns = recorder.returns[t].tolist()
    tiles = [
        label(
            recorder.frames[t][j],
            [
                f"{module.env_cfg.name} {split} #{index}: {words[j]}",
                f"{module.method.name}, {module.updates} updates, seed {module.seeds[0]}",
                f"step {recorder.steps[t]}  return {returns[j]:.1f}",
            ],
        )
        for j, index in enumerate(indices)
    ]
    return grid(tiles, columns=2), indices, words, returns, recorder.steps[t]


def main(argv: list[str] | None = None) -> None:
    record = BenchRecord(bench_command("bench/watch_still.py", argv))  # before anything runs
    args = parse_args(argv)
    backend = gl_backend()  # before any MuJoCo import, so dm_control agrees with our renderer
    if args.ckpt is not None:
        module = checkpoint_policy(args.ckpt, args.horizon)
    else:
        module = tiny_policy(args.task, args.horizon, args.updates)
    image, indices, words, returns, step = still(module, args.split, args.step, args.width, args.height)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(args.out)
    atomic_write_json(
        args.out.with_suffix(".json"),
        {
            **record.finish(),
            "checkpoint": None if args.ckpt is None else str(args.ckpt),
            "policy": f"{module.method.name}, {module.updates} updates{'' if args.ckpt else ' (tiny, trained here)'}",
            "task": module.env_cfg.name,
            "split": args.split,
            "sub_envs": indices,
            "contexts": words,
            "step": step,
            "returns_so_far": returns,
            "gl_backend": backend,
        },
    )
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
