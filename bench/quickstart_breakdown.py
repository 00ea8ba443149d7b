"""Where the main job's wall time goes: imports, set-up, random steps, updates, acting, evaluations.

    python bench/quickstart_breakdown.py --out results/quickstart_breakdown.json
    python bench/quickstart_breakdown.py --fit-arg=--seed_everything=1 --out ...

Runs `fit -c conf/quickstart.yaml` in this process (a fresh interpreter: the imports are timed
from the script's first line) and splits its wall time into: the imports; the CLI's parsing and
building until `fit` starts; the random phase (fit start to the end of the first update, less
that update: the module's set-up of envs, replay and collector, the random steps, and the first
learning step's warm-up and collection); the updates and the training-phase collection as the
module times them (`ContextualSAC.timing`); each zero-shot evaluation; and the rest (Lightning's
loop, logging, checkpoints, the end-of-run summary). Writes JSON with the command, commit, dirty
flag, date, machine and load; prints a table. `bench/quickstart.py` times the same command as a
user runs it, in a subprocess.
"""

from __future__ import annotations

import time

_START = time.perf_counter()

import argparse  # noqa: E402
import functools  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from lit_dmash.runtime import configure_process  # noqa: E402

configure_process()

import lightning as L  # noqa: E402

from lit_dmash.cli import TRAINER_DEFAULTS, LitDmashCLI  # noqa: E402
from lit_dmash.io import BenchRecord, atomic_write_json, bench_command  # noqa: E402
from lit_dmash.module import ContextualSAC  # noqa: E402

_IMPORTS_S = time.perf_counter() - _START


class Marks(L.Callback):
    """Wall-clock marks of the fit: its start, the end of the first update, the end of training."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.first_update: dict[str, float] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: ContextualSAC) -> None:
        self.marks["fit_start"] = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: ContextualSAC, *args) -> None:
        if "first_update" not in self.marks and pl_module.updates >= 1:
            self.marks["first_update"] = time.perf_counter()
            self.first_update = dict(pl_module.timing)

    def on_train_end(self, trainer: L.Trainer, pl_module: ContextualSAC) -> None:
        self.marks["train_end"] = time.perf_counter()


def timed(fn, into: list[float]):
    """`fn`, appending each call's wall seconds to `into`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - start)

    return wrapper


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/quickstart_breakdown.json"))
    parser.add_argument("--root", type=Path, default=Path("bench/results/quickstart_breakdown"))
    parser.add_argument("--fit-arg", action="append", default=[], help="an extra fit argument (repeatable)")
    args = parser.parse_args(argv)
    record = BenchRecord(bench_command("bench/quickstart_breakdown.py", argv))
    shutil.rmtree(args.root, ignore_errors=True)
    built = time.perf_counter()
    fit_args = ["-c", "conf/quickstart.yaml", f"--trainer.default_root_dir={args.root}"]
    fit_args += ["--trainer.enable_progress_bar=false", *args.fit_arg]
    defaults = {"seed_everything_default": 0, "trainer_defaults": TRAINER_DEFAULTS}
    cli = LitDmashCLI(ContextualSAC, **defaults, args=fit_args, run=False)
    marks, evaluations = Marks(), []
    cli.trainer.callbacks.insert(0, marks)
    module = cli.model
    module.evaluate_splits = timed(module.evaluate_splits, evaluations)
    cli.trainer.fit(module)
    end = time.perf_counter()
    m = marks.marks
    # Marks runs before the evaluation callback, so the first mark precedes the first evaluation.
    random_phase_s = m["first_update"] - m["fit_start"] - marks.first_update["update_s"]
    training_collect_s = module.timing["collect_s"] - marks.first_update["collect_s"]
    parts = {
        "imports_s": _IMPORTS_S,
        "setup_s": m["fit_start"] - built,
        "random_phase_s": random_phase_s,
        "updates_s": module.timing["update_s"],
        "acting_and_env_s": training_collect_s,
        "evaluations_s": sum(evaluations),
    }
    total = end - _START
    parts["rest_s"] = total - sum(parts.values())
    report = {
        **record.finish(),
        "fit_args": args.fit_arg,
        "updates": module.updates,
        "wall_s": round(total, 2),
        "parts_s": {k: round(v, 3) for k, v in parts.items()},
        "evaluations_s": [round(e, 2) for e in evaluations],
        "ms_per_update": round(1e3 * module.timing["update_s"] / module.updates, 2),
        "ms_per_training_step_collect": round(1e3 * training_collect_s / max(module.updates - 1, 1), 2),
    }
    atomic_write_json(args.out, report)
    print("| part | s |\n|---|---|")
    for key, value in report["parts_s"].items():
        print(f"| {key.removesuffix('_s')} | {value:.1f} |")
    print(f"| total | {total:.1f} |")
    print(f"updates {module.updates}: {report['ms_per_update']} ms each; wrote {args.out}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
