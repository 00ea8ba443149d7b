"""Shadow gradients: how hard the actor and critic losses would pull on `z` if it were not detached.

The paper's diagnostic (the authors' `track_hnet_gradients`): the stop-gradient on `z` is lifted
for one backward pass of the batch-mean loss, the gradient measured and never applied. As the
authors: the norm of that gradient over the whole `[B, d_z]` batch; for the actor loss only the
actor's own stop-gradient is lifted (the critics still read a detached `z`), except in the
shared-adapter arms, where the weights `H(z)` that both read are rebuilt with gradient. Ours
besides: the mean over samples of the per-sample norm `||d l_i / d z_i||` (`l_i` sample i's loss
term, not divided by the batch size), which does not shrink with the batch.
"""

from __future__ import annotations

import torch

from lit_dmash.agent.agent import Agent
from lit_dmash.agent.update import Batch, td_target


def _conditioning(agent: Agent, z: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The actor's and critics' input from `z`, keeping the gradient (cf. `Agent.policy_conditioning`)."""
    policy = agent.spec.method.policy
    if policy == "concat":
        return z, None
    if policy == "own_adapter":
        return None, z
    return None, agent.shared_adapter(z)


def _detached(conditioning: tuple) -> tuple:
    return tuple(c.detach() if c is not None else None for c in conditioning)


def shadow_gradients(agent: Agent, batch: Batch) -> dict[str, torch.Tensor]:
    """Per seed `[S]`: `actor` / `critic` (the authors' batch-gradient norm) and `*_per_sample` (ours)."""
    window = batch.window(agent.spec.leak_free)
    obs, action, _ = batch.transition()
    z = agent.embed(window, training=True).detach().requires_grad_(True)
    frozen = [p for p in agent.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        actor_in = _conditioning(agent, z)
        critic_in = actor_in if agent.spec.method.shares_adapter else _detached(actor_in)
        new_action, log_prob = agent.sample(*agent.actor(obs, *actor_in))
        q_pi = agent.critic(obs, new_action, *critic_in).min(dim=1).values
        actor = agent.alpha[:, None] * log_prob - q_pi  # [S, B]
        (actor_grad,) = torch.autograd.grad(actor.sum(), z)
        conditioning = _conditioning(agent, z)
        target = td_target(agent, batch, *conditioning)
        critic = (agent.critic(obs, action, *conditioning) - target.unsqueeze(1)).pow(2).sum(1)  # [S, B]
        (critic_grad,) = torch.autograd.grad(critic.sum(), z)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    batch_size = z.shape[1]
    return {  # d(mean loss)/dz = (1 / B) d(sum)/dz
        "actor": (actor_grad / batch_size).flatten(1).norm(dim=-1),
        "critic": (critic_grad / batch_size).flatten(1).norm(dim=-1),
        "actor_per_sample": actor_grad.norm(dim=-1).mean(-1),
        "critic_per_sample": critic_grad.norm(dim=-1).mean(-1),
    }
