"""Where the context embeddings land: concentration per mode, angles between modes, a 2-D figure."""

from __future__ import annotations

import itertools

import lightning as L
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from callbacks.periodic import EveryNFrames
from lit_dmash.diagnostics import angle_deg, mean_resultant_length, mode_ids
from lit_dmash.evaluation import deterministic_rollout, split_seed


class RepresentationDiagnostics(EveryNFrames):
    """Every `every_n_frames` env frames (and at the end), embed full windows from every split.

    Runs the deterministic policy for one episode in each of `episodes` sub-envs per split and
    embeds every window that holds `history_len` transitions. Per split and mode it logs the
    concentration of `z` (mean resultant length of the unit embeddings,
    `diag/repr/<split>/concentration/<mode>`), the smallest and mean angle between mode means
    (`diag/repr/<split>/angle_min_deg`, `.../angle_mean_deg`), and the dynamics model's error on
    the same transitions (`diag/dyn/<split>/mse/<mode>`, `diag/dyn/<split>/mse`). A 2-D PCA of
    all embeddings, coloured by mode, one panel per split, goes to TensorBoard as
    `diag/repr/z_pca`. Rank 0 only; methods without an encoder (`dr`, `oracle`) are skipped.

    Args:
        every_n_frames: Env frames between diagnostics (0: only at the end).
        episodes: Episodes (sub-envs) per split.
        seed: Seed of the diagnostic envs, combined with each split's name.
    """

    def __init__(self, every_n_frames: NonNegativeInt = 10_000, episodes: PositiveInt = 16, seed: int = 54_321) -> None:
        super().__init__(every_n_frames)
        self.episodes, self.seed = episodes, seed
        self.history: list[dict[str, float]] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.context_model is None:
            rank_zero_warn(f"RepresentationDiagnostics: method {pl_module.method.name!r} has no encoder; skipped")

    @property
    def state_key(self) -> str:
        return self._generate_state_key(seed=self.seed, episodes=self.episodes, every=self.every_n_frames)

    @rank_zero_only
    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.context_model is None:
            return
        metrics, embeddings = {}, {}
        for split in pl_module.split_names:
            z, modes, errors, labels = self.embed_split(pl_module, split)
            embeddings[split] = (z, modes, labels)
            metrics.update(self.split_metrics(split, z, modes, errors, labels))
        self.history.append({"env_frames": pl_module.env_frames, **metrics})
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=pl_module.env_frames)
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure("diag/repr/z_pca", self.figure(embeddings), pl_module.env_frames)

    @torch.no_grad()
    def embed_split(self, pl_module: L.LightningModule, split: str):
        context = pl_module.context_model
        env = pl_module.make_env(split, self.episodes, split_seed(self.seed, split))
        rollout = deterministic_rollout(env, pl_module.policy, pl_module.eval_max_steps)
        env.close()
        full = rollout["history_mask"].all(-1)  # windows holding K transitions of the same episode
        data = rollout[full]
        z = context.embed(data["history"], data["history_mask"])
        errors = context.dynamics_errors(data, context.dynamics_condition(z))
        modes, labels = mode_ids(data["context"], pl_module.num_actuators)
        return z.cpu(), modes.cpu(), errors.cpu(), labels

    @staticmethod
    def split_metrics(split, z, modes, errors, labels) -> dict[str, float]:
        metrics = {f"diag/dyn/{split}/mse": errors.mean().item()} if errors.numel() else {}
        means = {}
        for mode in modes.unique().tolist():
            of_mode = modes == mode
            metrics[f"diag/repr/{split}/concentration/{labels[mode]}"] = mean_resultant_length(z[of_mode])
            metrics[f"diag/dyn/{split}/mse/{labels[mode]}"] = errors[of_mode].mean().item()
            means[mode] = torch.nn.functional.normalize(z[of_mode], dim=-1).mean(0)
        angles = [angle_deg(means[a], means[b]) for a, b in itertools.combinations(sorted(means), 2)]
        if angles:
            metrics[f"diag/repr/{split}/angle_min_deg"] = min(angles)
            metrics[f"diag/repr/{split}/angle_mean_deg"] = sum(angles) / len(angles)
        return metrics

    @staticmethod
    def figure(embeddings):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        everything = torch.cat([z for z, _, _ in embeddings.values()])
        center = everything.mean(0)
        _, _, basis = torch.linalg.svd(everything - center, full_matrices=False)
        fig, axes = plt.subplots(1, len(embeddings), figsize=(3.2 * len(embeddings), 3.2), squeeze=False)
        for ax, (split, (z, modes, labels)) in zip(axes[0], embeddings.items(), strict=True):
            xy = (z - center) @ basis[:2].T
            for mode in modes.unique().tolist():
                pts = xy[modes == mode]
                # Colour by mode id, so a mode has the same colour in every panel and every run.
                ax.scatter(pts[:, 0], pts[:, 1], s=4, label=labels[mode], color=f"C{mode % 10}")
            ax.set_title(split)
            ax.legend(fontsize=7, markerscale=2)
        fig.tight_layout()
        return fig
