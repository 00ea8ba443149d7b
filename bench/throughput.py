"""Training throughput: our `dr` and `dmash` (LightningModule + Trainer) vs a plain TorchRL SAC loop.

    python bench/throughput.py [--quick] [--repeats 3] [--out bench/results/throughput.json]
    python bench/throughput.py --scaling      # dmash over num_envs x batch x utd

The reference is the loop TorchRL's sota SAC script runs: Collector -> TensorDictReplayBuffer ->
SACLoss (twin Q) -> Adam -> SoftUpdate, no Lightning, on the same env (DI-Friction) and sizes.
`dr_bare` runs our module's own step code (`store`, `update` with its optimiser) in a bare loop
without the Trainer: `dr` vs `dr_bare` is Lightning's overhead.
Each repeat runs in its own process (one torch thread), interleaved A B C D A B C D, so drift and
warm caches hit all variants alike and peak memory (max RSS) is per variant. updates/s counts
update time only (sample + losses + backward + step + target update); "wall updates/s" divides
by the whole loop / `trainer.fit` time (collection, Lightning's per-step work and logging
included); env steps/s counts collection (and storing) time only. Prints a table and writes JSON
with `ratio_dmash_vs_reference`, `ratio_dr_vs_reference` (median updates/s ratios) and
`lightning_overhead_dr` (1 - dr / dr_bare wall updates/s).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_reference(num_envs: int, batch: int, utd: int, frames: int, hidden: int, device: str = "cpu") -> dict:
    import torch
    from lit_dmash.agents.sac import NetSpec, make_actor, make_qvalue
    from torchrl.collectors import Collector
    from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
    from torchrl.objectives import SACLoss, SoftUpdate

    from lit_dmash.envs import make_env

    torch.manual_seed(0)
    env = make_env("di_friction", num_envs=num_envs, device=device)
    spec = NetSpec(("observation",), env.observation_spec["observation"].shape[-1], (hidden, hidden))
    action_spec = env.action_spec[0]
    actor, qvalue = make_actor(spec, action_spec).to(device), make_qvalue(spec, action_spec.shape[-1]).to(device)
    loss = SACLoss(actor, qvalue, num_qvalue_nets=2, loss_function="l2", action_spec=action_spec)
    loss.make_value_estimator(gamma=0.99)
    updater = SoftUpdate(loss, tau=0.005)
    optimizer = torch.optim.Adam(loss.parameters(), lr=3e-4)
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(100_000), batch_size=batch)
    collector = Collector(
        env, actor, frames_per_batch=num_envs, total_frames=frames, init_random_frames=batch, storing_device="cpu"
    )
    collect_s = update_s = 0.0
    updates = 0
    t = start = time.perf_counter()
    for data in collector:
        rb.extend(data.reshape(-1))
        t1 = time.perf_counter()
        collect_s += t1 - t
        if len(rb) >= batch:
            for _ in range(utd):
                out = loss(rb.sample().to(device))  # as ours: CPU storage, batch moved per update
                total = out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]
                optimizer.zero_grad()
                total.backward()
                optimizer.step()
                updater.step()
                updates += 1
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        update_s += t - t1
    wall_s = time.perf_counter() - start
    collector.shutdown()
    return {"updates": updates, "update_s": update_s, "frames": frames, "collect_s": collect_s, "wall_s": wall_s}


def our_module(method: str, num_envs: int, batch: int, utd: int, frames: int, hidden: int):
    """Our LightningModule at the benchmark's sizes (one frame per env per step, as the reference)."""
    from lit_dmash.config import CollectorConfig, EnvConfig, SACConfig
    from lit_dmash.module import ContextualSAC

    return ContextualSAC(
        method=method,
        env=EnvConfig(num_envs=num_envs),
        collector=CollectorConfig(frames_per_batch=num_envs, total_frames=frames, init_random_frames=batch),
        sac=SACConfig(hidden_dims=[hidden, hidden], batch_size=batch, utd=utd),
    )


def run_ours(method: str, num_envs: int, batch: int, utd: int, frames: int, hidden: int, device: str = "cpu") -> dict:
    import lightning as L

    module = our_module(method, num_envs, batch, utd, frames, hidden)
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"lit_dmash_throughput_{os.getpid()}"
    trainer = L.Trainer(
        max_epochs=-1,
        default_root_dir=root,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=50,
        accelerator="cpu" if device == "cpu" else "gpu",
        devices=1,
    )
    start = time.perf_counter()
    trainer.fit(module)
    return {
        "updates": module.updates,
        "update_s": module.timing["update_s"],
        "frames": module.env_frames,
        "collect_s": module.timing["collect_s"],
        "wall_s": time.perf_counter() - start,  # includes Lightning's per-step work and logging
    }


def run_bare(method: str, num_envs: int, batch: int, utd: int, frames: int, hidden: int, device: str = "cpu") -> dict:
    """Our module's own step code (`store`, `update` with its optimiser) in a bare loop: no Trainer,
    no logging, no callbacks. `dr` vs this is Lightning's overhead."""
    import torch

    module = our_module(method, num_envs, batch, utd, frames, hidden).to(device)
    optimizer = module.configure_optimizers()  # the module's own optimiser, unwrapped
    start = time.perf_counter()  # as `trainer.fit` in `run_ours`, the module's own set-up is timed
    module.on_fit_start()  # the module's own collector and replay buffer (rank 0 without a Trainer)
    collect_s = update_s = 0.0
    t = time.perf_counter()
    while module.env_frames < frames:
        stored = module.store(next(module._batches))  # the same checks and storing as training_step
        t1 = time.perf_counter()
        collect_s += t1 - t
        if stored and module.env_frames >= module.learning_starts:
            for _ in range(utd):
                module.update(module.replay_buffer.sample().to(device), optimizer, torch.Tensor.backward)
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        update_s += t - t1
    module.on_fit_end()
    wall_s = time.perf_counter() - start
    return {
        "updates": module.updates,
        "update_s": update_s,
        "frames": module.env_frames,
        "collect_s": collect_s,
        "wall_s": wall_s,
    }


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    sizes = (args.num_envs, args.batch, args.utd, args.frames, args.hidden, args.device)
    if args.variant == "reference":
        result = run_reference(*sizes)
    elif args.variant.endswith("_bare"):
        result = run_bare(args.variant.removesuffix("_bare"), *sizes)
    else:
        result = run_ours(args.variant, *sizes)
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.device != "cpu":
        result["max_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(result))


def measure(variant: str, num_envs: int, batch: int, utd: int, frames: int, hidden: int, device: str = "cpu") -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        variant,
        f"--num-envs={num_envs}",
        f"--batch={batch}",
        f"--utd={utd}",
        f"--frames={frames}",
        f"--hidden={hidden}",
        f"--device={device}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RL_WARNINGS": "0"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{variant} failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "updates_per_s": out["updates"] / out["update_s"],
        "wall_updates_per_s": out["updates"] / out["wall_s"],
        "env_steps_per_s": out["frames"] / out["collect_s"],
        "max_rss_mb": out["max_rss_mb"],
        **({"max_gpu_mb": out["max_gpu_mb"]} if "max_gpu_mb" in out else {}),
    }


def _device_name(device: str) -> str:
    if device == "cpu":
        return "cpu"
    import torch

    return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"


def summarise(samples: list[dict]) -> dict:
    keys = samples[0].keys()
    return {
        key: {
            "median": statistics.median(s[key] for s in samples),
            "min": min(s[key] for s in samples),
            "max": max(s[key] for s in samples),
        }
        for key in keys
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", dest="variant", help=argparse.SUPPRESS)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--utd", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--frames", type=int, default=8_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 repeats of 3,000 frames")
    parser.add_argument("--scaling", action="store_true", help="dmash over num_envs x batch x utd")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (env, networks and updates)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/throughput.json"))
    args = parser.parse_args()
    if args.variant:
        return child(args)
    if args.quick:
        args.repeats, args.frames = 2, 3_000

    sizes = dict(
        num_envs=args.num_envs,
        batch=args.batch,
        utd=args.utd,
        frames=args.frames,
        hidden=args.hidden,
        device=args.device,
    )
    variants = ["reference", "dr", "dmash", "dr_bare"]
    samples: dict[str, list[dict]] = {v: [] for v in variants}
    for _, variant in itertools.product(range(args.repeats), variants):  # A B C A B C ...
        samples[variant].append(measure(variant, **sizes))
    result = {v: summarise(s) for v, s in samples.items()}
    ref = result["reference"]["updates_per_s"]["median"]
    report = {
        "benchmark": "throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": 1,
            "device": _device_name(args.device),
        },
        "sizes": sizes,
        "repeats": args.repeats,
        "variants": result,
        "ratio_dr_vs_reference": result["dr"]["updates_per_s"]["median"] / ref,
        "ratio_dmash_vs_reference": result["dmash"]["updates_per_s"]["median"] / ref,
        # Lightning's cost: the same update code without the Trainer, 1 - dr / dr_bare (wall time).
        "lightning_overhead_dr": 1
        - result["dr"]["wall_updates_per_s"]["median"] / result["dr_bare"]["wall_updates_per_s"]["median"],
    }
    print(f"sizes {sizes}, {args.repeats} interleaved repeats, median [min, max]")
    wall_ref = result["reference"]["wall_updates_per_s"]["median"]
    report["ratio_wall_dr_vs_reference"] = result["dr"]["wall_updates_per_s"]["median"] / wall_ref
    report["ratio_wall_dmash_vs_reference"] = result["dmash"]["wall_updates_per_s"]["median"] / wall_ref
    print(
        f"{'variant':>10} {'updates/s':>24} {'vs ref':>7} {'wall updates/s':>16} {'vs ref':>7}"
        f" {'env steps/s':>26} {'max RSS MB':>11}"
    )
    for v in variants:
        u, w, e, m = (result[v][k] for k in ("updates_per_s", "wall_updates_per_s", "env_steps_per_s", "max_rss_mb"))
        gpu = f" GPU {result[v]['max_gpu_mb']['median']:.0f} MB" if "max_gpu_mb" in result[v] else ""
        print(
            f"{v:>10} {u['median']:>8.1f} [{u['min']:6.1f}, {u['max']:6.1f}] {u['median'] / ref:>6.2f}x"
            f" {w['median']:>16.1f} {w['median'] / wall_ref:>6.2f}x"
            f" {e['median']:>9.0f} [{e['min']:6.0f}, {e['max']:6.0f}] {m['median']:>11.0f}{gpu}"
        )

    if args.scaling:
        rows = []
        for num_envs, batch, utd in itertools.product([1, 8, 64, 256], [128, 256, 1024], [1, 4]):
            # Past the warm-up (init_random_frames = batch) with at least 64 collection steps of updates.
            frames = max(args.frames // 4, batch + 64 * num_envs)
            m = measure("dmash", num_envs, batch, utd, frames, args.hidden, args.device)
            rows.append({"num_envs": num_envs, "batch": batch, "utd": utd, **m})
            print(
                f"dmash num_envs={num_envs:>3} batch={batch:>4} utd={utd}: {m['updates_per_s']:7.1f} updates/s "
                f"{m['env_steps_per_s']:9.0f} env steps/s"
            )
        report["scaling"] = rows

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(
        f"ratio dr/reference {report['ratio_dr_vs_reference']:.2f}, "
        f"dmash/reference {report['ratio_dmash_vs_reference']:.2f}, "
        f"Lightning overhead on dr {100 * report['lightning_overhead_dr']:.1f}% (wall, vs dr_bare); wrote {args.out}"
    )


if __name__ == "__main__":
    main()
