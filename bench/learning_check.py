"""Does the update still learn? The quickest run that tells a learning agent from a broken one.

    python bench/learning_check.py [--out results/learning_check.json]
    python bench/learning_check.py --arms dma_star                      # 3 minutes, no hypernetwork

Trains `dmash` (DMA*-SH) on `ode` with the authors' settings (`conf/ode/dmash.yaml`: 256-wide
networks, 20 contexts, 5,000 random vector steps) for 5,000 updates, one seed (15 minutes on one
core of a 2-core machine; several `--arms` train in parallel), evaluates once at the end (20 contexts x 5
episodes per split), and compares each arm's AER with the committed paper-budget runs at the same
update (`results/paper_budget/ode/<arm>/seed*/eval.json`): it passes when every arm reaches at
least `--fraction` (default 0.8) of the lowest seed's train AER there.

Why `dmash` at 5,001 updates: on `ode` it climbs from the untrained 34-62 to 118-150 by then on the
three committed paper-budget seeds, so a broken dynamics model, encoder, hypernetwork, critic or actor update
(all of which it uses) shows as a miss of ~2x. `dma_star` climbs alike (27-51 to 127-157 at 5,001)
with an update ~3x cheaper, so `--arms dma_star` checks the encoder, dynamics model, critics and
actor in ~3 minutes, but not the hypernetwork. `dr` is still flat at 5,001 (29-56, untrained 27-59)
and so detects nothing there. An arm without a committed run
at that update is reported as having no reference, never passed. Not part of the test suite (too
slow); run it after changing anything in `lit_dmash/agent/` or `lit_dmash/nets/`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lit_dmash.io import BenchRecord, atomic_write_json, bench_command
from lit_dmash.names import SEED_FOLDER_PATTERN, seed_folder

REPO = Path(__file__).resolve().parents[1]
UPDATES = 5_000  # the loop runs t = 0..N: 5,001 updates, the paper-budget runs' second evaluation


def reference_aer(reference: Path, task: str, arm: str, updates: int) -> float | None:
    """The lowest seed's train AER at `updates` in the committed paper-budget runs (None if absent)."""
    values = []
    for path in sorted((reference / task / arm).glob(f"{SEED_FOLDER_PATTERN}/eval.json")):
        evaluations = json.loads(path.read_text())["evaluations"]
        values += [e["splits"]["train"]["aer"] for e in evaluations if e["updates"] == updates]
    return min(values) if values else None


def fit(arm: str, task: str, root: Path, seed: int, updates: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "lit_dmash", "fit", "-c", f"conf/{task}/{arm}.yaml"]
    command += [f"--model.protocol.total_steps={updates}", f"--seed_everything={seed}"]
    command += ["--trainer.callbacks.init_args.every_n_updates=0", "--trainer.callbacks.init_args.episodes=5"]
    command += [f"--trainer.default_root_dir={root}", "--trainer.enable_progress_bar=false"]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", default=["dmash"])
    parser.add_argument("--updates", type=int, default=UPDATES, help="t runs 0..N: N + 1 updates")
    parser.add_argument("--task", default="ode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fraction", type=float, default=0.8)
    parser.add_argument("--reference", type=Path, default=REPO / "results" / "paper_budget")
    parser.add_argument("--out", type=Path, default=None, help="JSON report (default: print only)")
    args = parser.parse_args(argv)
    record = BenchRecord(bench_command("bench/learning_check.py", argv))  # before anything runs
    start = time.perf_counter()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        procs = {arm: fit(arm, args.task, Path(tmp) / arm, args.seed, args.updates) for arm in args.arms}
        for arm, proc in procs.items():
            _, err = proc.communicate()
            if proc.returncode:
                print(f"{arm}: fit failed (exit {proc.returncode}):\n{err[-2000:]}", file=sys.stderr)
                return 2
            final = json.loads((Path(tmp) / arm / seed_folder(args.seed) / "eval.json").read_text())["evaluations"][-1]
            aer = {split: entry["aer"] for split, entry in final["splits"].items()}
            reference = reference_aer(args.reference, args.task, arm, final["updates"])
            threshold = None if reference is None else args.fraction * reference
            passed = threshold is not None and aer["train"] >= threshold
            results[arm] = {"updates": final["updates"], "aer": aer, "reference": reference, "threshold": threshold}
            results[arm]["passed"] = passed
    wall = time.perf_counter() - start
    for arm, r in results.items():
        aer = ", ".join(f"{split} {value:.1f}" for split, value in r["aer"].items())
        if r["threshold"] is None:
            verdict = f"NO REFERENCE (no {args.task}/{arm} run at update {r['updates']} under {args.reference})"
        else:
            verdict = f"{'pass' if r['passed'] else 'FAIL'}: train {r['aer']['train']:.1f} vs >= {r['threshold']:.1f}"
        print(f"{arm} on {args.task}, {r['updates']:,} updates: AER {aer}; {verdict}")
    ok = all(r["passed"] for r in results.values())
    print(f"learning check {'PASSED' if ok else 'FAILED'} in {wall / 60:.1f} min")
    if args.out is not None:
        report = record.finish() | {"wall_s": round(wall, 1), "passed": ok, "results": results}
        atomic_write_json(args.out, report)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
