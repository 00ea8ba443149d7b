"""Env throughput through `make_env` (TorchRL `step_and_maybe_reset`) vs the raw simulator loop, one core.

    python bench/env_throughput.py [--envs di cheetah ...] [--num-envs 20] [--seconds 3] [--repeats 6]
                                   [--stock] [--out FILE]

Every paper task at `--num-envs` (default 20) sub-envs, timed with the auto-reset path the
collector uses, against the raw loop of the same simulators in the same process, with random
actions and resets at the horizon:
- MuJoCo tasks: the same context-edited dm_control environments / gymnasium envs, each
  `env.step(action)` in a plain Python loop (no TorchRL, no flattening, no finiteness checks).
- DI / ODE: (a) the same batched tensor update without TorchRL (`raw_batched`, the floor), and
  (b) one numpy simulator per sub-env stepped in a Python loop, which is how the authors'
  `SyncVectorEnv` runs their `DIEnv` / `ComplexODE` (`raw_per_env`, the target's "raw loop").
DI and ODE are also timed at 1024 and 4096 envs (target: >= 1M steps/s at 1024). "cost/raw" is
raw steps/s over ours (target <= 1.5x). Times are CPU seconds of this process, medians over
interleaved rounds (robust to other load on a shared machine). `--stock` adds TorchRL's own
wrappers around plain suite domains (`DMControlEnv`/`GymEnv` in `SerialEnv`/`ParallelEnv`, wall
time) for comparison. Writes JSON with the command, the commit and whether the tree was dirty at
the start, the date, machine and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("RL_WARNINGS", "0")
os.environ.setdefault("MUJOCO_GL", "disable")

import numpy as np
import torch

from lit_dmash.envs import make_env, split_contexts, task_spec
from lit_dmash.envs.paper import MUJOCO_TASKS, PAPER_TASKS
from lit_dmash.io import BenchRecord, bench_command

TORCH_LARGE = [1024, 4096]
STOCK = {"cheetah": ("dm_control", "cheetah", "run"), "walker_gym": ("gymnasium", "Walker2d-v5")}


Stepper = tuple[Callable[[], None], int]  # (one call, env steps per call)


def _timed(steppers: dict[str, Stepper], seconds: float, repeats: int) -> dict[str, tuple[float, float]]:
    """`{impl: (steps/s, ms per call)}`, medians over `repeats` interleaved rounds of CPU time.

    CPU time of this process (`time.process_time`) rather than wall time, and the impls of one task
    interleaved round by round, so other processes on a shared machine distort the ratios less.
    """
    samples: dict[str, list[float]] = {impl: [] for impl in steppers}
    for step, _ in steppers.values():
        for _ in range(10):
            step()
    for _ in range(repeats):
        for impl, (step, _) in steppers.items():
            calls, start = 0, time.process_time()
            while (elapsed := time.process_time() - start) < seconds / repeats:
                for _ in range(5):
                    step()
                calls += 5
            samples[impl].append(elapsed / calls)
    out = {}
    for impl, (_, per_call) in steppers.items():
        seconds_per_call = float(np.median(samples[impl]))
        out[impl] = (per_call / seconds_per_call, 1e3 * seconds_per_call)
    return out


def _row(name: str, impl: str, num_envs: int, timing: tuple[float, float]) -> dict:
    return {"env": name, "impl": impl, "num_envs": num_envs, "steps_per_s": timing[0], "ms_per_call": timing[1]}


def _options(name: str) -> dict:
    return {"k": 2} if name == "ode_k" else {}


def ours(name: str, num_envs: int, device: str = "cpu") -> Stepper:
    env = make_env(name, num_envs=num_envs, seed=0, device=device, **_options(name))
    state = {"td": env.reset()}
    generator = torch.Generator(device=device).manual_seed(0)
    action_shape = env.action_spec.shape

    def step() -> None:
        td = state["td"]
        td["action"] = 2 * torch.rand(action_shape, generator=generator, device=device) - 1
        _, state["td"] = env.step_and_maybe_reset(td)

    return step, num_envs


def raw_mujoco(name: str, num_envs: int) -> Stepper:
    """The same context-edited simulators, each stepped by its own `step` in a Python loop."""
    from lit_dmash.envs.paper_mujoco import make_simulator

    spec = task_spec(name)
    contexts = split_contexts(name, "train", 20, 0)
    rows = [dict(zip(spec.context_names, contexts[i % 20].tolist(), strict=True)) for i in range(num_envs)]
    sims = [make_simulator(name, row, 0) for row in rows]
    envs = [sim.env for sim in sims]  # the dm_control Environment / gymnasium env itself
    for env in envs:
        env.reset()
    rng = np.random.default_rng(0)
    shape = (num_envs, sims[0].action_dim)
    state = {"t": 0}

    def step() -> None:
        actions = rng.uniform(-1, 1, shape).astype(np.float32)
        for env, action in zip(envs, actions, strict=True):
            env.step(action)
        state["t"] += 1
        if state["t"] >= spec.horizon:
            state["t"] = 0
            for env in envs:
                env.reset()

    return step, num_envs


def raw_torch_batched(name: str, num_envs: int) -> Stepper:
    """The batched tensor update of the same env, called directly (no TorchRL `step`)."""
    env = make_env(name, num_envs=num_envs, seed=0, **_options(name))
    env.reset()
    generator = torch.Generator().manual_seed(0)
    shape = env.action_spec.shape
    state = {"t": 0}

    def step() -> None:
        env._advance(2 * torch.rand(shape, generator=generator) - 1)
        state["t"] += 1
        if state["t"] >= env.horizon:
            state["t"] = 0
            env._apply_starts(slice(None), env._draw_starts(num_envs))

    return step, num_envs


def raw_torch_per_env(name: str, num_envs: int) -> Stepper:
    """One numpy simulator per sub-env in a Python loop (the authors' SyncVectorEnv layout)."""
    spec = task_spec(name, **_options(name))
    contexts = split_contexts(name, "train", 20, 0, **_options(name)).numpy()
    rows = [dict(zip(spec.context_names, contexts[i % 20].tolist(), strict=True)) for i in range(num_envs)]
    rng = np.random.default_rng(0)
    di = name.startswith("di")
    states = [np.zeros(4, dtype=np.float32) if di else np.zeros(1) for _ in rows]
    state = {"t": 0}

    def di_step(s: np.ndarray, a: np.ndarray, c: dict) -> float:
        force = np.clip(a * np.float32(c.get("action_factor", 1.0)), -1, 1)
        s[:2] += s[2:] * 0.1
        s[2:] = s[2:] * (1 - 0.1 * c.get("friction", 0.0) / c["mass"]) + force / c["mass"] * 0.1
        np.clip(s, -1, 1, out=s)
        return float(np.linalg.norm(s[:2]) <= 0.1)

    def ode_step(s: np.ndarray, a: np.ndarray, c: dict) -> float:
        alpha = complex(a[0], a[1])
        s += sum(v * alpha ** (j + 1) for j, v in enumerate(c.values())).real * 0.01
        np.clip(s, -20, 20, out=s)
        return 1.0 if abs(s[0]) < 0.05 else 0.0

    update = di_step if di else ode_step

    def step() -> None:
        actions = rng.uniform(-1, 1, (num_envs, 2)).astype(np.float32)
        for s, a, c in zip(states, actions, rows, strict=True):
            update(s, a, c)
        state["t"] += 1
        if state["t"] >= spec.horizon:
            state["t"] = 0
            for s in states:
                s[:] = rng.uniform(-1, 1, s.shape)

    return step, num_envs


def stock(name: str, num_envs: int, seconds: float, parallel: bool) -> dict:
    """TorchRL's own wrapper for the plain suite domain in `SerialEnv`/`ParallelEnv` (wall time)."""
    from torchrl.envs import DMControlEnv, GymEnv, ParallelEnv, SerialEnv

    kind, *ident = STOCK[name]

    def make_one():
        return DMControlEnv(*ident) if kind == "dm_control" else GymEnv(*ident)

    env = (ParallelEnv if parallel else SerialEnv)(num_envs, make_one)
    env.set_seed(0)
    state = {"td": env.reset()}
    action_spec = env.action_spec
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        td = state["td"]
        td["action"] = action_spec.rand()
        _, state["td"] = env.step_and_maybe_reset(td)
        calls += 1
    env.close()
    impl = "ParallelEnv(stock)" if parallel else "SerialEnv(stock)"
    return _row(name, impl, num_envs, (calls * num_envs / elapsed, 1e3 * elapsed / calls))


def task_rows(name: str, num_envs: int, seconds: float, repeats: int, device: str) -> list[dict]:
    """Ours and the raw loop(s) of one task, interleaved; ours also at 1024/4096 envs for DI/ODE."""
    steppers = {"make_env": ours(name, num_envs, device)}
    if name in MUJOCO_TASKS:
        steppers["raw_per_env"] = raw_mujoco(name, num_envs)
    else:
        steppers["raw_per_env"] = raw_torch_per_env(name, num_envs)
        steppers["raw_batched"] = raw_torch_batched(name, num_envs)
    timings = _timed(steppers, seconds * len(steppers), repeats)
    rows = [_row(name, impl, num_envs, timing) for impl, timing in timings.items()]
    for row in rows[1:]:
        rows[0][f"cost_vs_{row['impl']}"] = row["steps_per_s"] / rows[0]["steps_per_s"]
    if name not in MUJOCO_TASKS:
        for n in TORCH_LARGE:
            rows.append(
                _row(name, "make_env", n, _timed({"make_env": ours(name, n, device)}, seconds, repeats)["make_env"])
            )
    return rows


def main(argv: list[str] | None = None) -> dict:
    record = BenchRecord(bench_command("bench/env_throughput.py", argv))  # before anything runs
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(PAPER_TASKS))
    parser.add_argument("--num-envs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed CPU seconds per row")
    parser.add_argument("--repeats", type=int, default=6, help="interleaved rounds per task (medians)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stock", action="store_true", help="also time TorchRL's stock wrappers (cheetah, walker_gym)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/env_throughput.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    rows = []
    for name in args.envs:
        rows += task_rows(name, args.num_envs, args.seconds, args.repeats, args.device)
        if args.stock and name in STOCK:
            for parallel in (False, True):
                row = stock(name, 8, args.seconds, parallel)
                row["cost_vs_raw_per_env"] = (
                    rows[-2 if name in MUJOCO_TASKS else -1]["steps_per_s"] / row["steps_per_s"]
                )
                rows.append(row)

    print(
        f"{'env':<13} {'impl':<19} {'num_envs':>8} {'steps/s':>12} {'ms/call':>9} {'cost/raw':>9} {'cost/batched':>12}"
    )
    for row in rows:
        per_env = f"{row['cost_vs_raw_per_env']:.2f}x" if "cost_vs_raw_per_env" in row else ""
        batched = f"{row['cost_vs_raw_batched']:.2f}x" if "cost_vs_raw_batched" in row else ""
        print(
            f"{row['env']:<13} {row['impl']:<19} {row['num_envs']:>8} {row['steps_per_s']:>12,.0f}"
            f" {row['ms_per_call']:>9.3f} {per_env:>9} {batched:>12}"
        )
    result = {
        "benchmark": "env_throughput",
        **record.finish(),
        "machine": {
            "platform": platform.platform(),
            "torch_threads": args.threads,
            "device": args.device,
            "torch": torch.__version__,
        },
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
