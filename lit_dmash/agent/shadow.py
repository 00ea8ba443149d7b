"""Shadow gradients: how hard the actor and critic losses would pull on `z` if it were not detached.

The paper's diagnostic `E ||grad_z L||` (the authors' `track_hnet_gradients`): the stop-gradient on
`z` is lifted for one backward pass, the gradient measured and never applied. We report the mean
over samples of the per-sample gradient norm `||d l_i / d z_i||` (`l_i`: sample i's loss term).
"""

from __future__ import annotations

import torch

from lit_dmash.agent.agent import Agent
from lit_dmash.agent.update import Batch


def _conditioning(agent: Agent, z: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The actor's and critics' input from `z`, keeping the gradient (cf. `Agent.policy_conditioning`)."""
    policy = agent.spec.method.policy
    if policy == "concat":
        return z, None
    if policy == "own_adapter":
        return None, z
    return None, agent.shared_adapter(z)


def shadow_gradients(agent: Agent, batch: Batch) -> dict[str, torch.Tensor]:
    """`{"actor": [S], "critic": [S]}`: mean per-sample `||d loss_i / d z_i||` per seed (inferred methods)."""
    window = batch.window(agent.spec.leak_free)
    obs, action, next_obs = batch.transition()
    z = agent.embed(window, training=True).detach().requires_grad_(True)
    concat, adapter = _conditioning(agent, z)
    frozen = [p for p in agent.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        new_action, log_prob = agent.sample(*agent.actor(obs, concat, adapter))
        actor = agent.alpha[:, None] * log_prob - agent.critic(obs, new_action, concat, adapter).min(dim=1).values
        (actor_grad,) = torch.autograd.grad(actor.sum(), z)
        z.grad = None
        concat, adapter = _conditioning(agent, z)
        with torch.no_grad():
            next_action, next_log_prob = agent.sample(*agent.actor(next_obs, concat, adapter))
            next_q = agent.target_critic(next_obs, next_action, concat, adapter).min(dim=1).values
            ends = batch.terminated if agent.spec.sac.bootstrap_timeouts else batch.done
            soft = next_q - agent.alpha[:, None] * next_log_prob
            target = batch.reward + (1 - ends.float()) * agent.spec.sac.gamma * soft
        q = agent.critic(obs, action, concat, adapter)
        critic = (q - target.unsqueeze(1)).pow(2).sum(1)
        (critic_grad,) = torch.autograd.grad(critic.sum(), z)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return {"actor": actor_grad.norm(dim=-1).mean(-1), "critic": critic_grad.norm(dim=-1).mean(-1)}
