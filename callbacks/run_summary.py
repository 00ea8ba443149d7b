"""What a run tells its user when it ends: the results, where they are, what to run next."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from callbacks.run_checkpoint import RunCheckpoint
from callbacks.zero_shot_eval import ZeroShotEvaluation


def _aer_row(splits: dict[str, float]) -> str:
    return "  ".join(f"{split} {aer:7.1f}" for split, aer in splits.items())


class RunSummary(L.Callback):
    """At the end of `fit`: per split the seed-mean AER at the first and the last evaluation, the
    run's files (`eval.json`, `last.ckpt`, the TensorBoard folder) and the next commands; at the
    end of `test`: the AERs and where `test.json` is. The CLI adds it to every run."""

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        lines = ["", f"lit-dmash: {pl_module.method.name} on {pl_module.env_cfg.name} finished:"]
        lines += [f"  {pl_module.updates:,} updates, {pl_module.env_frames:,} env frames per seed"]
        evaluation = next((c for c in trainer.callbacks if isinstance(c, ZeroShotEvaluation)), None)
        if evaluation is not None and evaluation.history:
            first, last = evaluation.aer_at(0), evaluation.aer_at(-1)
            seeds = f" (mean of {len(pl_module.seeds)} seeds)" if len(pl_module.seeds) > 1 else ""
            lines += [f"  zero-shot AER{seeds}, {evaluation.episodes} episodes per context:"]
            lines += [f"    first evaluation (update {first['updates']:>7,}): {_aer_row(first['aer'])}"]
            lines += [f"    last evaluation  (update {last['updates']:>7,}): {_aer_row(last['aer'])}"]
            lines += [f"  per-context returns: {pl_module.seed_dir(pl_module.seeds[0]) / 'eval.json'}"]
        checkpoint = next((c for c in trainer.callbacks if isinstance(c, RunCheckpoint)), None)
        if checkpoint is not None and checkpoint.path is not None:
            lines += [f"  checkpoint: {checkpoint.path}"]
        log_dir = trainer.logger.log_dir if trainer.logger is not None else None
        if log_dir:
            lines += [f"  TensorBoard: tensorboard --logdir {Path(log_dir).parent}"]
        if checkpoint is not None and checkpoint.path is not None:
            lines += [f"  test it:     {_cli('test')}"]
        print("\n".join(lines), flush=True)

    @rank_zero_only
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        lines = ["", f"lit-dmash: tested {pl_module.method.name} on {pl_module.env_cfg.name}:"]
        for seed in pl_module.seeds:
            path = pl_module.seed_dir(seed) / "test.json"
            if not path.is_file():
                continue
            saved = json.loads(path.read_text())
            splits = {split: entry["aer"] for split, entry in saved["splits"].items()}
            at = saved["checkpoint"]["updates"]
            lines += [f"  seed {seed} (update {at:,}, {saved['episodes_per_context']} episodes per context):"]
            lines += [f"    AER {_aer_row(splits)}", f"    per-context returns: {path}"]
        print("\n".join(lines), flush=True)


def _cli(subcommand: str) -> str:
    """The command line that ran, as `subcommand ... --ckpt_path last` (the newest run's last.ckpt)."""
    args = sys.argv[1:]
    if args and args[0] in ("fit", "test", "validate"):
        args = args[1:]
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == "--ckpt_path":
            skip = True
            continue
        if not arg.startswith("--ckpt_path="):
            kept.append(arg)
    return shlex.join(["python", "-m", "lit_dmash", subcommand, *kept, "--ckpt_path", "last"])
