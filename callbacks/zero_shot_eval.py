"""Zero-shot evaluation as the paper: train / eval_in / eval_out, every 5,000 updates and at the end."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch.utilities import rank_zero_only

from callbacks import tensorboard
from callbacks.periodic import EveryNUpdates
from lit_dmash.errors import ConfigError, check_int
from lit_dmash.io import repo_commit
from lit_dmash.records import split_entry, write_record


class ZeroShotEvaluation(EveryNUpdates):
    """After update t = 0, every `every_n_updates` and at the end: the deterministic policy per split.

    Each split's 20 contexts get one sub-env each, `episodes` scored episodes per context (each
    preceded by the K-step warm-up when the protocol has it), deterministic actions, no learning,
    no context given. Split AER = mean over contexts of the per-context mean return. Logs
    `eval/<split>/return` (the AER; with several seeds, their mean, and per seed
    `eval/seed<k>/<split>/return`) against env frames, and writes each seed's history to
    `<default_root_dir>/seed<k>/eval.json` (per-context returns included, and the commit that ran
    each evaluation). In TensorBoard also a custom-scalars layout, a figure of the per-context
    returns, and at the end HParams with the final AERs. Runs on global rank 0 only.

    Args:
        every_n_updates: Updates between evaluations (the authors: 5,000; 0: only at the end).
        episodes: Episodes per context (the paper: 10; the authors' code: 5).
        splits: Splits to evaluate; default every split of the task.
    """

    def __init__(
        self, every_n_updates: NonNegativeInt = 5_000, episodes: PositiveInt = 10, splits: list[str] | None = None
    ) -> None:
        check_int("ZeroShotEvaluation.every_n_updates", every_n_updates, minimum=0)
        check_int("ZeroShotEvaluation.episodes", episodes)
        super().__init__(every_n_updates)
        self.episodes, self.splits = episodes, splits
        self.history: dict[int, list[dict]] = {}
        self._root: Path | None = None
        self._commit: str | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._root = Path(trainer.default_root_dir)
        self._commit = repo_commit()  # per evaluation: a run resumed at a later commit spans several
        known = pl_module.split_names
        for split in self.splits or []:
            if split not in known:
                raise ConfigError("ZeroShotEvaluation.splits", split, f"the task defines splits {known}")
        if stage == "fit":
            tensorboard.write_layout(trainer, self.splits or known)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)  # the final evaluation, unless one just ran
        if self.history:
            tensorboard.log_final_hparams(trainer, pl_module, self.final_aer())

    @property
    def state_key(self) -> str:
        return self._generate_state_key(episodes=self.episodes)

    def state_dict(self) -> dict:
        # A resumed run continues the schedule and the eval.json histories instead of starting over.
        return {**super().state_dict(), "history": {str(k): v for k, v in self.history.items()}}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.history = {int(k): v for k, v in state["history"].items()}

    def final_aer(self) -> dict[str, float]:
        """Seed-mean AER per split of the latest evaluation."""
        return self.aer_at(-1)["aer"]

    def aer_at(self, index: int) -> dict:
        """Evaluation `index` (0: the first, -1: the latest): `{"updates": u, "aer": {split: seed-mean AER}}`."""
        entries = [history[index] for history in self.history.values()]
        splits = entries[0]["splits"]
        aer = {split: sum(e["splits"][split]["aer"] for e in entries) / len(entries) for split in splits}
        return {"updates": entries[0]["updates"], "aer": aer}

    @rank_zero_only
    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        results = pl_module.evaluate_splits(self.splits or pl_module.split_names, self.episodes)
        metrics: dict[str, float] = {}
        for i, seed in enumerate(pl_module.seeds):
            splits = {split: split_entry(r["returns"][i], r["contexts"][i]) for split, r in results.items()}
            entry = {
                "updates": pl_module.updates,
                "env_frames": pl_module.env_frames,
                "commit": self._commit,
                "splits": splits,
            }
            self.history.setdefault(seed, []).append(entry)
            if len(pl_module.seeds) > 1:
                metrics.update({f"eval/seed{seed}/{s}/return": v["aer"] for s, v in splits.items()})
            self._write(pl_module, seed)
        for split, r in results.items():
            metrics[f"eval/{split}/return"] = r["returns"].mean(dim=-1).mean(dim=-1).mean().item()
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=pl_module.env_frames)
            logger.save()
        tensorboard.log_returns_figure(trainer, results, pl_module.env_frames)

    def _write(self, pl_module: L.LightningModule, seed: int) -> None:
        if self._root is None:
            return
        evaluations = self.history[seed]
        write_record(pl_module, seed, "eval.json", episodes_per_context=self.episodes, evaluations=evaluations)
