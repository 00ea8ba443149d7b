"""How close each arm's update comes to what one CPU thread can do, and how it compares with the authors'.

    python bench/roofline.py --out results/roofline/cpu.json > results/roofline/cpu.md
    python bench/roofline.py --authors-python $OFFICIAL_PY ...   # + the authors' loop, interleaved

Per task (`di`, `cheetah`) and arm, at the authors' sizes (256 x 256 nets, batch 12 x 20 contexts,
the task's window, a 64 x 64 hypernetwork), one torch thread:
- GFLOP per update: `torch.utils.flop_counter.FlopCounterMode` over one even and one odd update
  (the actor steps on even ones), halved. It counts matrix products (mm / bmm / baddbmm, forward
  and backward), not elementwise work, nor PyTorch's fused LSTM kernel (`mkldnn_rnn_layer`, which
  has no FLOP formula: the encoder's LSTM is left out, < 0.01 GFLOP at K = 24);
- ms per update at S = 1 (replay sample + update, as `bench/paper_scale.py` times it: medians of
  interleaved rounds), GFLOP/s, and the percentage of the one-thread sgemm peak (a 2048^3 float32
  product, measured in the same run between the arms);
- ms per seed-update at S = 10 and the ratio S = 1 / S = 10 (> 1: batching seeds pays);
- iteration / update at S = 1 (an iteration adds acting, the env step and the replay insert);
- with `--authors-python PY`: the authors' unmodified loop (`bench/authors_speed.py`, run by PY,
  an interpreter whose environment holds their code and pins) timed right after ours for the same
  task and arm, so the load of the moment hits both; the ratio is their ms per iteration over our
  ms per seed-iteration at S = 1 and at S = 10.
Writes JSON (with the commit, whether the tree was dirty, the date and the machine load) and prints
a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paper_scale

from lit_dmash.agent.update import update
from lit_dmash.build import make_optimizers
from lit_dmash.io import BenchRecord, bench_command
from lit_dmash.methods import PAPER_ARMS
from lit_dmash.runtime import keep_freed_memory

REPO = Path(__file__).resolve().parents[1]
AUTHORS_METHOD = {
    "dr": "unaware_dr",
    "concat": "aware_concat",
    "da": "aware_hypernet",
    "dma": "inferred_plain_concat",
    "dma_pearl": "inferred_plain_pearl",
    "dma_star": "inferred_concat",
    "dmash": "inferred_hypernet_shared",
}
AUTHORS_ENV = {  # env id, window K, total_timesteps, learning_starts, extra flags
    "di": ("dmash/DI-sparse-v0", 24, 100_000, 200, []),
    "cheetah": ("dm_control/cheetah-run_morph-v0", 128, 200_000, 1_000, ["--num_eval_episodes", "1"]),
}


def sgemm_peak(size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of the best of `repeats` float32 `size^3` products on this thread."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(paper_scale.seconds_per_call(lambda: a @ b, 1, "cpu") for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def update_gflop(agent, replay, per_env: int) -> float:
    """Matrix-product GFLOP of one update, averaged over an even and an odd one."""
    optimizers = make_optimizers(agent)
    windows = agent.encoder is not None
    with FlopCounterMode(display=False) as counter:
        for t in (0, 1):
            update(agent, replay.sample(per_env, windows=windows), optimizers, t)
    return counter.get_total_flops() / 2 / 1e9


def authors_ms_per_iteration(args, task: str, method: str) -> dict | None:
    """Their loop's ms per iteration (see `bench/authors_speed.py`), or None without `--authors-python`
    (or for an arm outside `--authors-methods`)."""
    if not args.authors_python or method not in args.authors_methods:
        return None
    env_id, window, total, starts, extra = AUTHORS_ENV[task]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "authors.json"
        env = os.environ | {"TIMEWRAP_STUB_METRICS": "1", "TIMEWRAP_ITERS": str(args.authors_iters)}
        env |= {"TIMEWRAP_OUT": str(out), "OMP_NUM_THREADS": "1"}
        cmd = [args.authors_python, str(REPO / "bench" / "authors_speed.py"), "--cuda", "False", "--wandb", "False"]
        cmd += ["--seed", "0", "--num_train_envs", "20", "--num_eval_envs", "20", "--env_id", env_id]
        cmd += ["--context_size", str(window), "--total_timesteps", str(total), "--learning_starts", str(starts)]
        cmd += ["--method", AUTHORS_METHOD[method], *extra]
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp)
        if proc.returncode != 0 or not out.exists():
            print(f"  authors' {task} {method} failed: {proc.stderr.strip()[-400:]}", file=sys.stderr)
            return {"error": proc.stderr.strip()[-400:]}
        result = json.loads(out.read_text())
    timed = result["all_in_excl_eval_ms"]  # mean over even/odd iterations, context warm-ups amortised
    return {"ms_per_iteration": timed["mean"], "iterations": timed["n"], "wall_s": time.perf_counter() - start}


def measure(args, task: str, peak: float) -> dict:
    rows: dict[str, dict] = {}
    setups = {num: paper_scale.build_setup(args, task, num) for num in (1, args.many)}
    for method in args.methods:
        row: dict = {}
        agent = paper_scale.build_agent(args, method, task, setups[1].envs, setups[1].seeds)
        row["gflop_per_update"] = update_gflop(agent, setups[1].replay, args.batch // args.envs)
        for num, setup in setups.items():
            timed = paper_scale.measure_arm(args, task, method, setup)
            row[f"S{num}"] = {k: timed[k] for k in ("update_ms", "iteration_ms", "ms_per_seed_update")}
            row[f"S{num}"]["ms_per_seed_iteration"] = timed["iteration_ms"] / num
        ms = row["S1"]["update_ms"]
        row["gflop_per_s"] = row["gflop_per_update"] / ms * 1e3
        row["percent_of_peak"] = 100 * row["gflop_per_s"] / peak
        row["seed_batch_gain"] = row["S1"]["ms_per_seed_update"] / row[f"S{args.many}"]["ms_per_seed_update"]
        row["iteration_over_update"] = row["S1"]["iteration_ms"] / ms
        row["authors"] = authors = authors_ms_per_iteration(args, task, method)
        if authors and "ms_per_iteration" in authors:
            row["authors_over_ours"] = {
                f"S{num}": authors["ms_per_iteration"] / row[f"S{num}"]["ms_per_seed_iteration"] for num in setups
            }
        rows[method] = row
        print(f"  {task} {method}: {json.dumps(_rounded(row))}", file=sys.stderr, flush=True)
    for setup in setups.values():
        setup.envs.close(), setup.eval_envs.close()
    return rows


def _rounded(value):
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def table(results: dict, peaks: list[float], many: int) -> str:
    peak = statistics.median(peaks)
    head = (
        f"| task | arm | GFLOP / update | ms / update S=1 | GFLOP/s | % of peak | ms / seed-update S={many} "
        f"| S=1 / S={many} per seed | iteration / update | authors ms / iteration | authors / ours S=1 | S={many} |"
    )
    lines = [f"One-thread sgemm peak (2048^3, median of {len(peaks)}): {peak:.1f} GFLOP/s", "", head]
    lines.append("|" + "---|" * 12)
    for task, arms in results.items():
        for method, r in arms.items():
            authors = r.get("authors") or {}
            ratio = r.get("authors_over_ours", {})
            cells = [
                f"{r['gflop_per_update']:.2f}",
                f"{r['S1']['update_ms']:.1f}",
                f"{r['gflop_per_s']:.1f}",
                f"{r['percent_of_peak']:.0f} %",
                f"{r[f'S{many}']['ms_per_seed_update']:.1f}",
                f"{r['seed_batch_gain']:.2f}",
                f"{r['iteration_over_update']:.2f}",
                f"{authors['ms_per_iteration']:.0f}" if "ms_per_iteration" in authors else "-",
                f"{ratio['S1']:.1f}x" if ratio else "-",
                f"{ratio[f'S{many}']:.1f}x" if ratio else "-",
            ]
            lines.append(f"| {task} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["di", "cheetah"])
    p.add_argument("--methods", nargs="+", default=list(PAPER_ARMS))
    p.add_argument("--many", type=int, default=10, help="the larger seed count S")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--block-seconds", type=float, default=1.0)
    p.add_argument("--authors-python", default=None, help="python of an environment with the authors' code")
    p.add_argument("--authors-iters", type=int, default=20, help="their iterations to time per case")
    p.add_argument("--authors-methods", nargs="+", default=["dr", "dma_star", "da", "dmash"])
    p.add_argument("--out", type=Path, default=REPO / "results" / "roofline" / "cpu.json")
    sizes = p.add_argument_group("sizes (defaults: the authors'; smaller only for tests)")
    for flag, default in paper_scale.AUTHORS_SIZES.items():
        sizes.add_argument(f"--{flag.replace('_', '-')}", type=int, default=default)
    args = p.parse_args(argv)
    args.device, args.threads, args.fill_horizon = "cpu", 1, 200  # what paper_scale's setup reads
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    keep_freed_memory()
    torch.set_num_threads(1)
    record = BenchRecord(bench_command("bench/roofline.py", argv))  # before anything runs
    report = paper_scale.machine(args)
    peaks = [sgemm_peak()]
    results = {}
    for task in args.tasks:
        results[task] = measure(args, task, peaks[-1])
        peaks.append(sgemm_peak())
    report = record.finish() | report | {"sgemm_peak_gflop_s": peaks, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_rounded(report), indent=1) + "\n")
    print(table(results, peaks, args.many))
    print(
        f"\n{report['command']} at {report['commit']} (dirty: {report['working_tree_dirty']}), {report['date']}, "
        f"load {report['load_1_5_15']}"
    )
    return report


if __name__ == "__main__":
    main()
