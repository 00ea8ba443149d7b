"""The paper's diagnostics of the context embedding, during training and at the end."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn

from callbacks.periodic import EveryNUpdates
from lit_dmash.agent.shadow import shadow_gradients
from lit_dmash.analysis import diagnostics as dg
from lit_dmash.errors import ConfigError
from lit_dmash.experience.rollout import collect_windows


class ContextDiagnostics(EveryNUpdates):
    """After update t = 0, every `every_n_updates` and at the end: where the embeddings `z` land.

    Per split (one deterministic episode per context after the warm-up; `samples` windows per
    context along it, embedded in training mode as the authors do, or `z_mode: eval`), for every
    seed, logged as the mean over seeds:
    - `diag/<split>/informativeness`: I(z; c) in nats (KSG kNN estimator, k = 3), and per key
      `diag/<split>/informativeness/<key>`;
    - `diag/<split>/variability` = tr Cov(z) / d_z and its exact parts `.../within_context`
      (noise), `.../within_mode` (contexts of one mode apart) and `.../between_mode` (a mode is
      the value of the task's binary keys; one mode without one);
    - `diag/<split>/overlap`: kNN mixing of modes in z (0 separated, ~1 indistinguishable);
    - `diag/<split>/cosine`: the mean cosine similarity of per-context mean z, and in TensorBoard
      the matrix as an image `diag/<split>/cosine_matrix` (seed 0);
    - `diag/shadow_grad/{actor,critic}`: the norm of the gradient of the batch-mean loss w.r.t. z
      on a replay batch with the stop-gradient lifted (measured, never applied), as the authors
      compute it (they log a running mean over 1,000 updates); `.../{actor,critic}_per_sample`
      ours, E ||d l_i / d z_i||; every rank measures its own replay, averaged across ranks (DDP).
    Methods without an encoder are skipped with a warning. Unlike the authors (256 windows per
    context sampled from the last evaluation's episodes, each ending with a transition), the
    windows here are evenly spaced along one fresh post-warm-up episode per context, each the K
    transitions the agent acts on.

    Args:
        every_n_updates: Updates between diagnostics (0: only at the end).
        samples: Windows per context and split.
        splits: Splits to diagnose; default every split of the task.
        z_mode: `train` (the authors: slot subsets and masking, as in training) or `eval`.
    """

    def __init__(
        self,
        every_n_updates: NonNegativeInt = 5_000,
        samples: PositiveInt = 64,
        splits: list[str] | None = None,
        z_mode: str = "train",
    ) -> None:
        if z_mode not in ("train", "eval"):
            raise ConfigError("ContextDiagnostics.z_mode", z_mode, "expected one of ['train', 'eval']")
        super().__init__(every_n_updates)
        self.samples, self.splits, self.z_mode = samples, splits, z_mode
        self.history: list[dict[str, float]] = []

    @property
    def state_key(self) -> str:
        return self._generate_state_key(samples=self.samples, z_mode=self.z_mode)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.agent.encoder is None:
            rank_zero_warn(f"ContextDiagnostics: method {pl_module.method.name!r} infers no context; skipped")

    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.agent.encoder is None:
            return
        with pl_module.untouched_randomness():
            metrics = self.shadow(pl_module)  # every rank: it reads its own replay; a collective
            images = {}
            for split in (self.splits or pl_module.split_names) if trainer.is_global_zero else []:
                split_metrics, images[split] = self.split_metrics(pl_module, split)
                metrics.update(split_metrics)
        if trainer.is_global_zero:
            self.history.append({"updates": pl_module.updates, **metrics})
            self._log(trainer, pl_module, metrics, images)

    def shadow(self, pl_module: L.LightningModule) -> dict[str, float]:
        stats = shadow_gradients(pl_module.agent, pl_module.sample_batch())
        names = sorted(stats)
        values = torch.stack([stats[name].mean() for name in names]).detach()
        values = pl_module.all_gather(values).reshape(-1, len(names)).mean(0)
        return {f"diag/shadow_grad/{name}": value.item() for name, value in zip(names, values, strict=True)}

    @torch.no_grad()
    def split_metrics(self, pl_module: L.LightningModule, split: str) -> tuple[dict[str, float], np.ndarray]:
        agent = pl_module.agent
        envs = pl_module.make_envs(split, num_envs=pl_module.env_cfg.contexts_per_split)
        try:
            data = collect_windows(agent, envs, agent.spec.window, self.samples, pl_module.protocol.warm_up)
        finally:
            envs.close()
        seeds, _contexts, samples = data["obs"].shape[:3]
        flat = tuple(data[k].flatten(1, 2).to(agent.log_alpha.device) for k in ("obs", "action", "next_obs"))
        z = agent.embed(flat, training=self.z_mode == "train").cpu()  # [S, C * m, d_z]
        context = data["contexts"].unsqueeze(2).expand(-1, -1, samples, -1).flatten(1, 2)  # [S, C * m, c]
        names = list(getattr(pl_module.task_spec, "context_names", [])) or [f"c{j}" for j in range(context.shape[-1])]
        binary = [names.index(k) for k in getattr(pl_module.task_spec, "binary_keys", [])]
        per_seed = [self.seed_metrics(z[s], context[s], binary, names) for s in range(seeds)]
        metrics = {f"diag/{split}/{key}": float(np.mean([m[key] for m in per_seed])) for key in per_seed[0]}
        matrix = dg.cosine_similarity_matrix(z[0], context[0])
        return metrics, matrix

    @staticmethod
    def seed_metrics(z: torch.Tensor, context: torch.Tensor, binary: list[int], names: list[str]) -> dict[str, float]:
        context_id = dg.group_ids(context)
        mode = dg.context_modes(context, binary)
        parts = dg.decompose_variability(z, context_id, mode)
        metrics = {
            "informativeness": dg.ksg_mutual_information(z, context, k=3),
            "variability": parts.total,
            "variability/within_context": parts.within_context,
            "variability/within_mode": parts.within_mode,
            "variability/between_mode": parts.between_mode,
            "cosine": float(dg.cosine_similarity_matrix(z, context).mean()),
        }
        for name, value in zip(names, dg.mutual_information_per_key(z, context, k=3), strict=True):
            metrics[f"informativeness/{name}"] = value
        if len(np.unique(mode)) > 1:
            metrics["overlap"] = dg.representation_overlap(z, mode, k=min(10, len(z) - 1))
        return metrics

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, metrics: dict, images: dict) -> None:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=pl_module.env_frames)
            if isinstance(logger, TensorBoardLogger):
                for split, matrix in images.items():
                    figure = dg.cosine_similarity_figure(matrix, title=f"{split}: cosine of context means (seed 0)")
                    logger.experiment.add_image(
                        f"diag/{split}/cosine_matrix",
                        dg.figure_to_array(figure),
                        pl_module.env_frames,
                        dataformats="HWC",
                    )
