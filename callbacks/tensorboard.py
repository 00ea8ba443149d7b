"""TensorBoard extras the default scalars do not give: a layout, figures and HParams metrics.

Helpers for callbacks; each does nothing when the run has no `TensorBoardLogger`.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only


def _tensorboard(trainer: L.Trainer) -> list[TensorBoardLogger]:
    return [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]


@rank_zero_only
def write_layout(trainer: L.Trainer, splits: list[str]) -> None:
    """Custom Scalars tab: every split's return on one chart, and the training curves grouped.

    Call it in `setup`: it also keeps Lightning from writing its placeholder HParams entry.
    """
    layout = {
        "zero-shot return": {
            "AER per split": ["Multiline", [f"eval/{split}/return" for split in splits]],
        },
        "training": {
            "episode return": ["Multiline", ["train/episode_return"]],
            "losses": ["Multiline", ["train/loss_actor", "train/loss_critic", "train/loss_dynamics"]],
            "masking and alpha": ["Multiline", ["train/p_mask", "train/alpha"]],
        },
    }
    for logger in _tensorboard(trainer):
        logger.experiment.add_custom_scalars(layout)
        # Lightning writes a placeholder `hp_metric=-1` HParams experiment at fit start (before any
        # metric exists); TensorBoard then shows that one instead of the final returns we log at
        # the end. `default_hp_metric` is only a constructor argument, so switch it off here.
        logger._default_hp_metric = False


@rank_zero_only
def log_returns_figure(trainer: L.Trainer, results: dict[str, dict], step: int) -> None:
    """Images tab: per split, each context's mean return (dots; every seed) and the AER (bar)."""
    loggers = _tensorboard(trainer)
    if not loggers:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 * len(results) + 1.5, 3))
    for i, stats in enumerate(results.values()):
        per_context = stats["returns"].mean(dim=-1).flatten()  # [S * C]
        ax.scatter([i] * len(per_context), per_context, s=10, alpha=0.5)
        ax.hlines(per_context.mean().item(), i - 0.3, i + 0.3, colors="k")
    ax.set_xticks(range(len(results)), list(results))
    ax.set_ylabel("mean return per context")
    ax.set_title(f"zero-shot returns at {step} env frames")
    fig.tight_layout()
    for logger in loggers:
        logger.experiment.add_figure("eval/returns_by_split", fig, global_step=step, close=False)
    plt.close(fig)


@rank_zero_only
def log_final_hparams(trainer: L.Trainer, pl_module: L.LightningModule, final_aer: dict[str, float]) -> None:
    """HParams tab: this run's configuration with its final zero-shot AERs as metrics."""
    metrics = {f"final/{split}/return": value for split, value in final_aer.items()}
    # The logger flattens the config groups (`sac/gamma`) and stringifies lists itself; LightningCLI's
    # bookkeeping keys (`_instantiator`) are not hyperparameters.
    params = {key: value for key, value in pl_module.hparams.items() if not key.startswith("_")}
    params["env_frames"] = pl_module.env_frames
    for logger in _tensorboard(trainer):
        logger.log_hyperparams(params, metrics=metrics)
        logger.save()
