"""Actor-gradient variance from disjoint minibatches, split into within-mode and between-mode parts.

Ours, not the paper's (formerly `VarianceDiagnostics`): how noisy the policy gradient is, and how
much of that noise comes from mixing modes (contexts that need opposite actions) in one batch.
"""

from __future__ import annotations

import lightning as L
import torch
from jsonargparse.typing import PositiveInt

from callbacks.periodic import EveryNUpdates
from lit_dmash.agent.update import Batch, actor_loss
from lit_dmash.analysis import diagnostics as dg
from lit_dmash.errors import ConfigError, check_int


class PolicyGradientVariance(EveryNUpdates):
    """Every `every_n_updates` updates, the trace of the covariance of actor-loss gradients.

    A replay sample of `num_minibatches` x `sac.batch_size` transitions is split into k disjoint
    minibatches; the trace of the covariance of their actor-loss gradients (seed 0's parameters)
    is `diag/pg_var/total`. Splitting the same sample by mode (the value of the task's binary
    keys, which only the logger sees) gives `diag/pg_var/within_mode` and
    `diag/pg_var/between_mode` (law of total variance). Under DDP every rank estimates on its own
    replay; the estimates are gathered with `all_gather` and averaged (`diag/pg_var/ranks` says
    how many), and `diag/pg_var/across_ranks` is the variance of the ranks' mean gradients.

    Args:
        every_n_updates: Updates between two estimates.
        num_minibatches: k, disjoint minibatches per estimate (and per mode); at least 2.
    """

    def __init__(self, every_n_updates: PositiveInt = 1000, num_minibatches: PositiveInt = 4) -> None:
        for name, value in (("every_n_updates", every_n_updates), ("num_minibatches", num_minibatches)):
            check_int(f"PolicyGradientVariance.{name}", value)
        if num_minibatches < 2:
            raise ConfigError("PolicyGradientVariance.num_minibatches", num_minibatches, "expected an integer >= 2")
        super().__init__(every_n_updates)
        self.k = num_minibatches
        self.history: list[dict[str, float]] = []

    @property
    def state_key(self) -> str:
        return self._generate_state_key(every=self.every_n_updates, k=self.k)

    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        with pl_module.untouched_randomness():
            stats, mean_grad = self.estimate(pl_module)
        gathered = pl_module.all_gather(stats).reshape(-1, stats.numel())
        gathered_grads = pl_module.all_gather(mean_grad).reshape(-1, mean_grad.numel())
        metrics = {
            "diag/pg_var/total": gathered[:, 0].mean().item(),
            "diag/pg_var/within_mode": gathered[:, 1].nanmean().item(),
            "diag/pg_var/between_mode": gathered[:, 2].nanmean().item(),
            "diag/pg_var/ranks": float(gathered.shape[0]),
        }
        if gathered_grads.shape[0] > 1:
            metrics["diag/pg_var/across_ranks"] = dg.minibatch_variance(gathered_grads)
        if trainer.is_global_zero:
            self.history.append({"updates": pl_module.updates, **metrics})
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=pl_module.env_frames)

    def estimate(self, pl_module: L.LightningModule) -> tuple[torch.Tensor, torch.Tensor]:
        """([total, within, between], mean actor gradient of seed 0) from one replay sample."""
        agent, collector = pl_module.agent, pl_module.collector
        sample = collector.replay.sample(self.k * (pl_module.sac_cfg.batch_size // pl_module.env_cfg.num_envs))
        params = [p for p in agent.actor.parameters() if p.requires_grad]

        def gradient(index: torch.Tensor) -> torch.Tensor:
            part = Batch(**{name: getattr(sample, name)[:, index] for name in Batch.__dataclass_fields__})
            loss = actor_loss(agent, part)[0]
            grads = torch.autograd.grad(loss, params)
            return torch.cat([g[0].reshape(-1) for g in grads])  # seed 0's block

        size = sample.reward.shape[1]
        order = torch.randperm(size, generator=torch.Generator().manual_seed(pl_module.updates))
        grads = torch.stack([gradient(idx) for idx in order.chunk(self.k)])
        names = list(getattr(pl_module.task_spec, "context_names", []))
        binary = [names.index(k) for k in getattr(pl_module.task_spec, "binary_keys", [])]
        modes = torch.as_tensor(dg.context_modes(sample.context[0].cpu(), binary))
        per_mode, shares = {}, {}
        for mode in modes.unique().tolist():
            idx = (modes == mode).nonzero().squeeze(-1)
            if idx.numel() >= self.k:
                per_mode[mode] = torch.stack([gradient(part) for part in idx.chunk(self.k)])
                shares[mode] = idx.numel() / modes.numel()
        within, between = dg.decompose_variance(per_mode, shares) if per_mode else (float("nan"), float("nan"))
        stats = torch.tensor([dg.minibatch_variance(grads), within, between], device=pl_module.device)
        return stats, grads.mean(0).detach()
