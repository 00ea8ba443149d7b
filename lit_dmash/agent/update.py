"""One update of the agent, in the authors' order, on one sampled batch.

Per vector step t (their `sac.py: train`), on one batch:
1. dynamics step (context methods): fresh training-mode `z`; f predicts `s' - s` (raw, no
   normalisation); MSE over batch and dims; DMA-Pearl multiplies it by `1 + w * KL` with the KL
   from a second encoder pass. Trains E, f and H.
2. critic step: fresh `z`; target `r + gamma (1 - done) (min Q_targ(s', a') - alpha log pi(a'|s'))`
   with `a'` sampled at s' and the same `z` (and adapter) for s and s'; loss = MSE of both twins.
3. if t % actor_every == 0: `actor_every` times: fresh `z`; actor loss `alpha log pi - min Q`
   (critic parameters frozen), then the alpha loss `-alpha (log pi + target entropy)` on a fresh
   no-grad log pi. (The authors step log(alpha) through `alpha = exp(log_alpha)`, not log(alpha)
   itself as TorchRL's `SACLoss` does.)
4. Polyak update of the target critics.

Every loss is the per-seed mean over the batch, summed over seeds: seeds share no parameter, so
each seed's gradient is its own loss's gradient, and Adam (elementwise) steps each seed as if
alone. TorchRL's `SACLoss` is not used in this loop: its `forward` evaluates critic, actor and
alpha losses together on the same parameters, while the authors update the critic first, then
the actor (twice) against the updated critic, with a fresh `z` each time; and it cannot hold S
seeds in one set of parameters. `tests/test_agent.py` checks the critic loss and TD target
against their formula, the actor's log-probability against the authors' formula, the update
order (actor and alpha every second step) and which loss reaches which parameters; no test
compares these losses with `SACLoss`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lit_dmash.agent.agent import Agent, Window
from lit_dmash.agent.rollback import Rollback


class NonFiniteError(RuntimeError):
    """Training met a non-finite loss or gradient (with on_nonfinite=stop)."""


@dataclass
class Batch:
    """Sampled windows and their last transitions; every tensor is `[S, B, ...]`.

    `obs`, `action`, `next_obs`: `[S, B, K + 1, d]`, slots t-K..t of the episode; the transition
    learned from is the last slot (for an agent without an encoder, `[S, B, 1, d]`: that slot
    only). The authors' training window is slots 1..K (it includes the
    transition); the leak-free one is 0..K-1.
    """

    obs: torch.Tensor
    action: torch.Tensor
    next_obs: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    done: torch.Tensor
    context: torch.Tensor

    def window(self, leak_free: bool) -> Window:
        part = slice(None, -1) if leak_free else slice(1, None)
        return self.obs[..., part, :], self.action[..., part, :], self.next_obs[..., part, :]

    def transition(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.obs[..., -1, :], self.action[..., -1, :], self.next_obs[..., -1, :]


@dataclass
class Optimizers:
    """One Adam per role, as the authors have them (E and f share one with two groups)."""

    dynamics: torch.optim.Optimizer | None
    critic: torch.optim.Optimizer
    actor: torch.optim.Optimizer
    alpha: torch.optim.Optimizer

    def as_list(self) -> list[torch.optim.Optimizer]:
        return [o for o in (self.dynamics, self.critic, self.actor, self.alpha) if o is not None]

    @classmethod
    def by_name(cls, optimizers: Iterable[torch.optim.Optimizer]) -> Optimizers:
        """Match optimisers to roles by their first parameter group's `name` (never by position)."""
        roles: dict[str, torch.optim.Optimizer] = {}
        for opt in optimizers:
            name = opt.param_groups[0].get("name")
            roles["dynamics" if name == "encoder" else name] = opt
        return cls(roles.get("dynamics"), roles["critic"], roles["actor"], roles["alpha"])


StepFn = Callable[[Iterable[torch.optim.Optimizer], torch.Tensor], None]


def plain_step(optimizers: Iterable[torch.optim.Optimizer], loss: torch.Tensor) -> None:
    """zero_grad, backward, step: what a bare loop does (the LightningModule passes its own)."""
    optimizers = list(optimizers)
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    for opt in optimizers:
        opt.step()


def check_finite(losses: dict[str, torch.Tensor]) -> None:
    """Raise `NonFiniteError` naming the losses that are not finite (one sync for all)."""
    values = torch.stack([v.detach().reshape(()) for v in losses.values()])
    if not torch.isfinite(values).all():
        bad = [k for k, v in losses.items() if not torch.isfinite(v.detach()).all()]
        raise NonFiniteError(f"non-finite {', '.join(bad)}")


class _FrozenParams:
    """Turn off `requires_grad` of a module's parameters for the block (the actor loss's critic)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.params = [p for p in module.parameters() if p.requires_grad]

    def __enter__(self) -> None:
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        for p in self.params:
            p.requires_grad_(True)


def dynamics_error(agent: Agent, batch: Batch, z: torch.Tensor) -> torch.Tensor:
    """Squared error `[S, B, d_s]` of f's predicted `s' - s` (raw, no normalisation) given `z`."""
    obs, action, next_obs = batch.transition()
    return (agent.dynamics_prediction(obs, action, z) - (next_obs - obs)).pow(2)


@torch.no_grad()
def td_target(agent: Agent, batch: Batch, concat: torch.Tensor | None, adapter: torch.Tensor | None) -> torch.Tensor:
    """The authors' target `[S, B]`: `r + gamma (1 - done) (min Q_targ(s', a') - alpha log pi(a'|s'))`, with
    `a' ~ pi(s')` and the same conditioning (`z`, adapter) for s and s'; done = terminated or truncated
    unless `sac.bootstrap_timeouts`."""
    next_obs = batch.transition()[2]
    sac = agent.spec.sac
    concat = concat.detach() if concat is not None else None
    adapter = adapter.detach() if adapter is not None else None
    next_action, next_log_prob = agent.sample(*agent.actor(next_obs, concat, adapter))
    next_q = agent.target_critic(next_obs, next_action, concat, adapter).min(dim=1).values
    soft_value = next_q - agent.alpha[:, None] * next_log_prob
    ends = batch.terminated if sac.bootstrap_timeouts else batch.done
    return batch.reward + (1.0 - ends.float()) * sac.gamma * soft_value


def dynamics_loss(agent: Agent, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-seed dynamics MSE (times `1 + w KL` for DMA-Pearl), summed over seeds."""
    window = batch.window(agent.spec.leak_free)
    z = agent.embed(window, training=True)
    per_seed = dynamics_error(agent, batch, z).mean(dim=(-2, -1))
    metrics = {"loss_dynamics": per_seed.mean()}
    if agent.spec.kl_weight > 0 and agent.spec.encoder.kind == "plstm":
        kl = agent.encoder.kl(*window, agent.rng, agent.spec.p_mask).mean(dim=(-2, -1))
        per_seed = per_seed * (1 + agent.spec.kl_weight * kl)
        metrics["kl"] = kl.mean()
    return per_seed.sum(), metrics


def _conditioning(agent: Agent, batch: Batch, grad: bool):
    """A fresh training-mode `z` and what the actor and critics read from it (detached unless `grad`)."""
    if agent.encoder is None:
        return agent.policy_conditioning(None, batch.context)
    with torch.set_grad_enabled(grad):  # no graph through E when its output is detached anyway
        z = agent.embed(batch.window(agent.spec.leak_free), training=True)
        return agent.policy_conditioning(z, batch.context, grad=grad)


def critic_loss(agent: Agent, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Twin-critic TD loss (per-seed MSE of each twin, summed), with the authors' target."""
    obs, action, _ = batch.transition()
    concat, adapter = _conditioning(agent, batch, grad="critic" in agent.spec.method.rl_grad)
    target = td_target(agent, batch, concat, adapter)
    q = agent.critic(obs, action, concat, adapter)  # [S, 2, B]
    per_seed = F.mse_loss(q, target.unsqueeze(1).expand_as(q), reduction="none").mean(-1).sum(-1)
    return per_seed.sum(), {"loss_critic": per_seed.mean(), "q": q.detach().mean()}


def actor_loss(agent: Agent, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor], tuple]:
    """`mean(alpha log pi - min Q)` per seed, summed; also returns the conditioning for alpha's step."""
    obs = batch.transition()[0]
    concat, adapter = _conditioning(agent, batch, grad="actor" in agent.spec.method.rl_grad)
    action, log_prob = agent.sample(*agent.actor(obs, concat, adapter))
    with _FrozenParams(agent.critic):
        q = agent.critic(obs, action, concat, adapter).min(dim=1).values
    per_seed = (agent.alpha[:, None] * log_prob - q).mean(-1)
    metrics = {"loss_actor": per_seed.mean(), "entropy": -log_prob.detach().mean()}
    return per_seed.sum(), metrics, (concat, adapter)


def alpha_loss(agent: Agent, obs: torch.Tensor, conditioning: tuple) -> torch.Tensor:
    """The authors' `-exp(log alpha) (log pi + target entropy)` on a fresh no-grad log pi."""
    concat, adapter = (c.detach() if c is not None else None for c in conditioning)
    with torch.no_grad():
        _, log_prob = agent.sample(*agent.actor(obs, concat, adapter))
    per_seed = (-agent.log_alpha.exp()[:, None] * (log_prob + agent.target_entropy)).mean(-1)
    return per_seed.sum()


@dataclass(frozen=True)
class Losses:
    """The loss functions an update calls; `compiled(mode)` gives `torch.compile`d ones."""

    dynamics: Callable = dynamics_loss
    critic: Callable = critic_loss
    actor: Callable = actor_loss
    alpha: Callable = alpha_loss

    @classmethod
    def compiled(cls, mode: str) -> Losses:
        """Each loss (forward and, through AOTAutograd, backward) compiled by `torch.compile(mode=mode)`.

        `reduce-overhead` replays CUDA graphs on a GPU (an update of these small networks is
        launch-bound there); optimiser steps stay eager (fused Adam: one kernel per group). The
        losses equal the eager ones up to rounding (`tests/test_agent.py`).
        """
        return cls(
            *(
                torch.compile(fn, mode=mode, dynamic=False)
                for fn in (dynamics_loss, critic_loss, actor_loss, alpha_loss)
            )
        )


EAGER = Losses()


def update(
    agent: Agent,
    batch: Batch,
    optimizers: Optimizers,
    step: int,
    step_fn: StepFn = plain_step,
    losses: Losses = EAGER,
    rollback: Rollback | None = None,
) -> dict[str, torch.Tensor]:
    """One update (steps 1-4 of the module docstring); returns detached metrics (seed means).

    Every loss is checked before its step; a non-finite one raises `NonFiniteError`, after
    `rollback` (when given) has put back what the update's earlier steps changed.
    """
    if rollback is not None:
        rollback.save()
    try:
        metrics = _steps(agent, batch, optimizers, step, step_fn, losses)
    except NonFiniteError:
        if rollback is not None:
            rollback.restore()
        raise
    agent.soft_update_targets()
    metrics["alpha"] = agent.alpha.mean()
    return {k: v.detach() for k, v in metrics.items()}


def _steps(
    agent: Agent, batch: Batch, optimizers: Optimizers, step: int, step_fn: StepFn, losses: Losses
) -> dict[str, torch.Tensor]:
    metrics: dict[str, torch.Tensor] = {}
    rl_grad = agent.spec.method.rl_grad
    if agent.dynamics is not None:
        loss, info = losses.dynamics(agent, batch)
        check_finite({"loss_dynamics": loss})
        step_fn([optimizers.dynamics], loss)
        metrics.update(info)
    loss, info = losses.critic(agent, batch)
    check_finite({"loss_critic": loss})
    step_fn([optimizers.critic, *([optimizers.dynamics] if "critic" in rl_grad else [])], loss)
    metrics.update(info)
    every = agent.spec.sac.actor_every
    if step % every == 0:
        for _ in range(every):
            loss, info, conditioning = losses.actor(agent, batch)
            check_finite({"loss_actor": loss})
            step_fn([optimizers.actor, *([optimizers.dynamics] if "actor" in rl_grad else [])], loss)
            loss_alpha = losses.alpha(agent, batch.transition()[0], conditioning)
            check_finite({"loss_alpha": loss_alpha})
            step_fn([optimizers.alpha], loss_alpha)
            metrics.update(info, loss_alpha=loss_alpha.detach() / agent.num_seeds)
    return metrics
