"""Policy-gradient variance, split into within-mode and between-mode parts by the true context."""

from __future__ import annotations

import lightning as L
import torch
from jsonargparse.typing import PositiveInt

from callbacks.periodic import Periodic
from lit_dmash.diagnostics import decompose_variance, minibatch_variance, mode_ids
from lit_dmash.errors import ConfigError


class VarianceDiagnostics(L.Callback):
    """Every `every_n_updates` updates, estimate the actor-gradient variance from disjoint minibatches.

    A replay sample of `num_minibatches x minibatch_size` transitions is split into `k` disjoint
    minibatches; the trace of the covariance of their actor-loss gradients is the total variance.
    Splitting the same sample by true mode (the context's sign pattern, which only the logger
    sees) gives the within-mode and between-mode parts (law of total variance). Under DDP every
    rank estimates on its own buffer; the estimates (and each rank's mean gradient, for an
    across-ranks variance) are gathered with `all_gather` and logged on rank 0 only.

    Logs `diag/pg_var/total`, `diag/pg_var/within_mode`, `diag/pg_var/between_mode`,
    `diag/pg_var/across_ranks` (DDP only) and `diag/pg_var/ranks` (how many estimates were gathered).

    Args:
        every_n_updates: Gradient updates between two estimates.
        num_minibatches: k, disjoint minibatches per estimate (and per mode).
        minibatch_size: Transitions per minibatch; None uses the SAC batch size.
    """

    def __init__(
        self,
        every_n_updates: PositiveInt = 1000,
        num_minibatches: PositiveInt = 4,
        minibatch_size: PositiveInt | None = None,
    ) -> None:
        for name, value in (("every_n_updates", every_n_updates), ("num_minibatches", num_minibatches)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"VarianceDiagnostics.{name}", value, "expected an integer >= 1")
        if num_minibatches < 2:
            raise ConfigError("VarianceDiagnostics.num_minibatches", num_minibatches, "expected an integer >= 2")
        self.every_n_updates, self.k, self.minibatch_size = every_n_updates, num_minibatches, minibatch_size
        self._period = Periodic(every_n_updates)
        self.history: list[dict[str, float]] = []

    @property
    def state_key(self) -> str:
        return self._generate_state_key(every=self.every_n_updates, k=self.k, size=self.minibatch_size)

    def state_dict(self) -> dict:
        return {"next": self._period.next}

    def load_state_dict(self, state: dict) -> None:
        self._period.next = state["next"]

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        # Update counts advance identically on every rank, so all ranks enter the all_gather together.
        if not self._period.due(pl_module.updates):
            return
        stats, mean_grad = self.estimate(pl_module)
        gathered = pl_module.all_gather(stats).reshape(-1, stats.numel())
        gathered_grads = pl_module.all_gather(mean_grad).reshape(-1, mean_grad.numel())
        metrics = {
            "diag/pg_var/total": gathered[:, 0].mean().item(),
            "diag/pg_var/within_mode": gathered[:, 1].mean().item(),
            "diag/pg_var/between_mode": gathered[:, 2].mean().item(),
            "diag/pg_var/ranks": float(gathered.shape[0]),
        }
        if gathered_grads.shape[0] > 1:
            metrics["diag/pg_var/across_ranks"] = minibatch_variance(gathered_grads)
        if trainer.is_global_zero:
            self.history.append({"updates": pl_module.updates, **metrics})
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=pl_module.env_frames)

    def estimate(self, pl_module: L.LightningModule) -> tuple[torch.Tensor, torch.Tensor]:
        """([total, within, between], mean actor gradient) from one replay sample."""
        size = self.minibatch_size or pl_module.sac_cfg.batch_size
        buffer = pl_module.replay_buffer
        # Index rather than buffer.sample(n): a size other than the buffer's own batch_size warns on every call.
        sample = buffer[torch.randint(len(buffer), (self.k * size,))].to(pl_module.device)
        if pl_module.context_model is not None:
            with torch.no_grad():
                pl_module.context_model.prepare_batch(sample, p_mask=0.0)
        params = [p for p in pl_module.loss_module.actor_network_params.values(True, True) if p.requires_grad]

        def gradient(batch) -> torch.Tensor:
            loss, _ = pl_module.loss_module.actor_loss(batch)
            return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss.mean(), params, allow_unused=False)])

        chunks = torch.arange(self.k * size, device=pl_module.device).chunk(self.k)
        grads = torch.stack([gradient(sample[idx]) for idx in chunks])
        modes, _ = mode_ids(sample["context"], pl_module.num_actuators)
        per_mode, shares = {}, {}
        for mode in modes.unique().tolist():
            idx = (modes == mode).nonzero().squeeze(-1)
            if idx.numel() >= self.k:
                per_mode[mode] = torch.stack([gradient(sample[part]) for part in idx.chunk(self.k)])
                shares[mode] = idx.numel() / modes.numel()
        within, between = decompose_variance(per_mode, shares) if per_mode else (float("nan"), float("nan"))
        stats = torch.tensor([minibatch_variance(grads), within, between], device=pl_module.device)
        return stats, grads.mean(0).detach()
