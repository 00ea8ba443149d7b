"""DI-Friction env throughput through `make_env` (TorchRL `step_and_maybe_reset`), one core.

    python bench/env_throughput.py [--num-envs 1 64 1024 4096] [--seconds 2] [--out FILE]

Prints a table and writes JSON. Target (issue 2): >= 1,000,000 env steps/s at 1024 envs.
Timed with the auto-reset path the collector uses, so episode ends and context re-draws count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("RL_WARNINGS", "0")

import torch

from lit_dmash.envs import make_env


def steps_per_second(num_envs: int, seconds: float, device: str) -> dict[str, float]:
    env = make_env("di_friction", num_envs=num_envs, seed=0, device=device)
    td = env.reset()
    action = torch.zeros(num_envs, env.dims, device=device)
    for _ in range(50):  # warm-up
        td["action"] = action
        _, td = env.step_and_maybe_reset(td)
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(20):
            td["action"] = action
            _, td = env.step_and_maybe_reset(td)
        calls += 20
    return {"num_envs": num_envs, "steps_per_s": calls * num_envs / elapsed, "ms_per_call": 1e3 * elapsed / calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 64, 1024, 4096])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per row")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("bench/results/env_throughput.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = [steps_per_second(n, args.seconds, args.device) for n in args.num_envs]
    print(f"{'num_envs':>9} {'steps/s':>14} {'ms/call':>9}")
    for row in rows:
        print(f"{row['num_envs']:>9} {row['steps_per_s']:>14,.0f} {row['ms_per_call']:>9.3f}")
    result = {
        "benchmark": "env_throughput",
        "env": "di_friction",
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
