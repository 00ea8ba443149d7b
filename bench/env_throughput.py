"""Env throughput through `make_env` (TorchRL `step_and_maybe_reset`), one core.

    python bench/env_throughput.py [--envs di_friction cheetah ...] [--seconds 2] [--stock] [--out FILE]

Prints a table and writes JSON. Targets: DI-Friction >= 1,000,000 env steps/s at 1024 envs
(issue 2); MuJoCo domains at most 2x the raw simulator's cost per step at `num_envs >= 8`
(issue 6), where "raw" is the plain simulator loop in the same process (`suite.load(...).step`,
`gymnasium.make(...).step`) with random actions. `--stock` adds TorchRL's own wrappers
(`DMControlEnv`/`GymEnv` in `SerialEnv` and `ParallelEnv`) for the same domains, for comparison.
Timed with the auto-reset path the collector uses, so episode ends and context re-draws count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("RL_WARNINGS", "0")
os.environ.setdefault("MUJOCO_GL", "disable")

import numpy as np
import torch

from lit_dmash.envs import make_env
from lit_dmash.envs.aib import DOMAINS

DI_FRICTION_NUM_ENVS = [1, 64, 1024, 4096]
MUJOCO_NUM_ENVS = [1, 8, 32]


def _timed(step: Callable[[], None], steps_per_call: int, seconds: float, warmup: int = 20) -> tuple[float, float]:
    """`(steps/s, ms per call)` of calling `step` repeatedly for `seconds`."""
    for _ in range(warmup):
        step()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            step()
        calls += 10
    return calls * steps_per_call / elapsed, 1e3 * elapsed / calls


def ours(name: str, num_envs: int, seconds: float, device: str) -> dict:
    env = make_env(name, num_envs=num_envs, seed=0, device=device)
    state = {"td": env.reset()}
    generator = torch.Generator(device=device).manual_seed(0)
    action_shape = env.action_spec.shape

    def step() -> None:
        td = state["td"]
        td["action"] = 2 * torch.rand(action_shape, generator=generator, device=device) - 1
        _, state["td"] = env.step_and_maybe_reset(td)

    steps, ms = _timed(step, num_envs, seconds)
    return {"env": name, "impl": "make_env", "num_envs": num_envs, "steps_per_s": steps, "ms_per_call": ms}


def raw(name: str, seconds: float) -> dict:
    """The plain simulator loop, no TorchRL, default time limits and resets."""
    domain = DOMAINS[name]
    rng = np.random.default_rng(0)
    if domain.kind == "dm_control":
        from dm_control import suite

        env = suite.load(*domain.ident, task_kwargs={"random": 0})
        shape = env.action_spec().shape
        env.reset()

        def step() -> None:
            if env.step(rng.uniform(-1, 1, shape)).last():
                env.reset()
    else:
        import gymnasium

        env = gymnasium.make(*domain.ident)
        env.reset(seed=0)
        shape = env.action_space.shape

        def step() -> None:
            _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, shape))
            if terminated or truncated:
                env.reset()

    steps, ms = _timed(step, 1, seconds)
    return {"env": name, "impl": "raw", "num_envs": 1, "steps_per_s": steps, "ms_per_call": ms}


def stock(name: str, num_envs: int, seconds: float, parallel: bool) -> dict:
    """TorchRL's own wrapper for the domain, batched with `SerialEnv` or `ParallelEnv`."""
    from torchrl.envs import DMControlEnv, GymEnv, ParallelEnv, SerialEnv

    domain = DOMAINS[name]

    def make_one():
        return DMControlEnv(*domain.ident) if domain.kind == "dm_control" else GymEnv(*domain.ident)

    env = (ParallelEnv if parallel else SerialEnv)(num_envs, make_one)
    env.set_seed(0)
    state = {"td": env.reset()}
    action_spec = env.action_spec

    def step() -> None:
        td = state["td"]
        td["action"] = action_spec.rand()
        _, state["td"] = env.step_and_maybe_reset(td)

    steps, ms = _timed(step, num_envs, seconds, warmup=5)
    env.close()
    impl = "ParallelEnv(stock)" if parallel else "SerialEnv(stock)"
    return {"env": name, "impl": impl, "num_envs": num_envs, "steps_per_s": steps, "ms_per_call": ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["di_friction", *DOMAINS])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per row")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stock", action="store_true", help="also time TorchRL's stock wrappers (8 envs)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/env_throughput.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for name in args.envs:
        if name == "di_friction":
            rows += [ours(name, n, args.seconds, args.device) for n in DI_FRICTION_NUM_ENVS]
            continue
        base = raw(name, args.seconds)
        rows.append(base)
        candidates = [ours(name, n, args.seconds, args.device) for n in MUJOCO_NUM_ENVS]
        if args.stock:
            candidates += [stock(name, 8, args.seconds, parallel=False), stock(name, 8, args.seconds, parallel=True)]
        for row in candidates:
            row["cost_vs_raw"] = base["steps_per_s"] / row["steps_per_s"]
            rows.append(row)

    print(f"{'env':<12} {'impl':<19} {'num_envs':>8} {'steps/s':>12} {'ms/call':>9} {'cost/raw':>9}")
    for row in rows:
        ratio = f"{row['cost_vs_raw']:.2f}x" if "cost_vs_raw" in row else ""
        print(
            f"{row['env']:<12} {row['impl']:<19} {row['num_envs']:>8} {row['steps_per_s']:>12,.0f}"
            f" {row['ms_per_call']:>9.3f} {ratio:>9}"
        )
    result = {
        "benchmark": "env_throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": args.threads,
            "device": args.device,
            "torch": torch.__version__,
        },
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
