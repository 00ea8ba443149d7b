"""Zero-shot evaluation on every split of the env, during and at the end of training."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch.utilities import rank_zero_only

from callbacks import tensorboard
from callbacks.periodic import EveryNFrames
from lit_dmash.errors import ConfigError
from lit_dmash.evaluation import split_seed
from lit_dmash.io import atomic_write_json


class ZeroShotEvaluation(EveryNFrames):
    """Every `every_n_frames` env frames and at the end, evaluate the deterministic policy.

    Each split runs `episodes` episodes (one per sub-env of a batched env) from a fixed seed
    derived from `seed` and the split's name, so every evaluation of a run, and of every run,
    sees the same contexts and starts, while splits with equal ranges (`train`, `eval_in`) still
    draw different contexts.
    Logs `eval/<split>/return` and `eval/<split>/return_std` against env frames and appends the
    results to `<run folder>/<filename>`. In TensorBoard it also adds a custom-scalars layout (one
    chart with every split's return), a figure of the per-episode returns per split
    (`eval/returns_by_split`, Images tab) and, at the end, the run's hyperparameters with the final
    returns as metrics (`final/<split>/return`, HParams tab) so runs compare side by side. Runs on
    global rank 0 only: the policy is the same on every rank.

    Args:
        every_n_frames: Env frames between evaluations (0: only at the end).
        episodes: Episodes per split.
        seed: Seed of the evaluation envs (contexts and start states).
        splits: Splits to evaluate; default every split the env defines.
        filename: Name of the JSON file written in the run folder.
    """

    # The constrained types make the CLI reject bad values while parsing, naming the key; the checks
    # below cover construction from Python (jsonargparse would swallow a ConfigError raised here).
    def __init__(
        self,
        every_n_frames: NonNegativeInt = 10_000,
        episodes: PositiveInt = 16,
        seed: int = 12_345,
        splits: list[str] | None = None,
        filename: str = "eval.json",
    ) -> None:
        if not isinstance(every_n_frames, int) or every_n_frames < 0:
            raise ConfigError("ZeroShotEvaluation.every_n_frames", every_n_frames, "expected an integer >= 0")
        if not isinstance(episodes, int) or episodes < 1:
            raise ConfigError("ZeroShotEvaluation.episodes", episodes, "expected an integer >= 1")
        super().__init__(every_n_frames)
        self.episodes = episodes
        self.seed = seed
        self.splits = splits
        self.filename = filename
        self.history: list[dict] = []
        self._out_dir: Path | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # `trainer.log_dir` broadcasts (a collective): resolve it here, on every rank, never inside
        # the rank-0-only evaluation, where it would wait forever for the other ranks.
        self._out_dir = Path(trainer.log_dir) if trainer.log_dir is not None else None
        known = pl_module.split_names
        for split in self.splits or []:
            if split not in known:
                raise ConfigError("ZeroShotEvaluation.splits", split, f"env defines splits {known}")
        if stage == "fit":
            tensorboard.write_layout(trainer, self.splits or known)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)  # the final evaluation, unless one just ran
        if self.history:
            tensorboard.log_final_hparams(trainer, pl_module, self.history[-1])

    @property
    def state_key(self) -> str:
        return self._generate_state_key(filename=self.filename, seed=self.seed, episodes=self.episodes)

    def state_dict(self) -> dict:
        # A resumed run continues the schedule and appends to eval.json instead of starting over.
        return {**super().state_dict(), "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.history = state["history"]

    @rank_zero_only
    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        was_training = pl_module.training
        pl_module.eval()
        try:
            results = {}
            for split in self.splits or pl_module.split_names:
                returns = pl_module.evaluate(split, self.episodes, split_seed(self.seed, split)).cpu()
                results[split] = {
                    "mean": returns.mean().item(),
                    "std": returns.std(unbiased=False).item(),
                    "returns": returns.tolist(),
                }
        finally:
            pl_module.train(was_training)
        entry = {"env_frames": pl_module.env_frames, "updates": pl_module.updates, "splits": results}
        self.history.append(entry)
        metrics = {}
        for split, stats in results.items():
            metrics[f"eval/{split}/return"] = stats["mean"]
            metrics[f"eval/{split}/return_std"] = stats["std"]
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=pl_module.env_frames)
            logger.save()
        tensorboard.log_returns_figure(trainer, results, pl_module.env_frames)
        if self._out_dir is not None:
            atomic_write_json(self._out_dir / self.filename, {"evaluations": self.history})
