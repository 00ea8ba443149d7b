"""The agent: networks, their conditioning, and acting, as a plain `nn.Module` (no Lightning).

One agent holds S independent seeds stacked on a leading dim: every tensor it reads or returns
is `[S, batch, ...]`. A bare loop, a benchmark or the LightningModule drive it the same way:
`act(...)` to collect, `lit_dmash.agent.update.update(agent, batch, ...)` to learn.

Parts by method (`lit_dmash.methods`): the encoder E and dynamics model f (context inference;
in DMA*-SH f owns the one hypernetwork H), the actor, twin critics and their Polyak targets,
log(alpha) per seed, and the random streams of the update (`rng`). What the actor and critics
read is `policy_conditioning`: nothing, the true context or `z` appended, or adapter weights,
either H(z) (shared, detached) or the input of their own hypernetwork.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from lit_dmash.agent.networks import Actor, Conditioning, DynamicsModel, TwinCritic
from lit_dmash.agent.spec import AgentSpec
from lit_dmash.nets.encoder import ContextEncoder
from lit_dmash.nets.ensemble import init_members
from lit_dmash.nets.normalizer import RunningNorm
from lit_dmash.nets.rng import SeedRandom

Window = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""`(obs, action, next_obs)` of K transitions: `[S, B, K, d]` each."""


class Agent(nn.Module):
    """S stacked seeds of one method's networks; see the module docstring."""

    def __init__(self, spec: AgentSpec, seeds: Sequence[int], action_low: float = -1.0, action_high: float = 1.0):
        super().__init__()
        self.spec, self.seeds = spec, [int(s) for s in seeds]
        num, method = len(self.seeds), spec.method
        obs_dim, act_dim = spec.obs_dim, spec.action_dim
        self.encoder = ContextEncoder((num,), obs_dim, act_dim, spec.encoder) if spec.encoder else None
        self.normalizer = RunningNorm((num,), 2 * obs_dim + act_dim) if spec.running_norm else None
        self.dynamics = None
        if method.infers_context:
            self.dynamics = DynamicsModel(num, obs_dim, act_dim, spec.hidden, self._dynamics_conditioning())
        policy_cond = self._policy_conditioning()
        self.actor = Actor(num, obs_dim, act_dim, spec.hidden, policy_cond)
        self.critic = TwinCritic(num, obs_dim, act_dim, spec.hidden, policy_cond)
        init_members(self, self.seeds)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.full((num,), math.log(spec.sac.alpha_init)))
        self.register_buffer("action_scale", torch.tensor((action_high - action_low) / 2.0))
        self.register_buffer("action_bias", torch.tensor((action_high + action_low) / 2.0))
        self.target_entropy = -float(act_dim)
        self.rng = SeedRandom(self.seeds, stream=1)  # masks, slot subsets, action noise

    # ------------------------------------------------------------------ construction
    def _policy_conditioning(self) -> Conditioning:
        spec, method = self.spec, self.spec.method
        hidden = spec.hypernet_hidden
        if method.policy == "concat":
            return Conditioning(concat_dim=spec.context_dim if method.uses_true_context else spec.z_dim)
        if method.policy == "shared_adapter":
            return Conditioning(adapter=spec.adapter)
        if method.policy == "own_adapter":
            true = method.uses_true_context
            return Conditioning(
                adapter=spec.adapter,
                hypernet_in=spec.context_dim if true else spec.z_dim,
                hypernet_hidden=hidden,
                repeated_inputs=true,
            )
        return Conditioning()

    def _dynamics_conditioning(self) -> Conditioning:
        spec = self.spec
        if spec.method.dynamics == "adapter":
            return Conditioning(adapter=spec.adapter, hypernet_in=spec.z_dim, hypernet_hidden=spec.hypernet_hidden)
        return Conditioning(concat_dim=spec.z_dim)

    @property
    def num_seeds(self) -> int:
        return len(self.seeds)

    @property
    def alpha(self) -> torch.Tensor:
        """The entropy coefficient per seed, `[S]` (no gradient)."""
        return self.log_alpha.detach().exp()

    # ------------------------------------------------------------------ context
    def embed(self, window: Window, training: bool) -> torch.Tensor:
        """`z [S, B, d_z]` of windows; training mode draws slot subsets, masks (and Pearl noise)."""
        obs, action, next_obs = window
        if self.normalizer is not None:
            return self._embed_normalized(obs, action, next_obs, training)
        rng = self.rng if training else None
        return self.encoder(obs, action, next_obs, rng, self.spec.p_mask if training else 0.0)

    def _embed_normalized(self, obs, action, next_obs, training: bool) -> torch.Tensor:
        # Normalise (o, a, o' - o) with running statistics, then hand the encoder an equivalent
        # window (it recomputes the difference of the last two parts).
        entry = self.normalizer(torch.cat([obs, action, next_obs - obs], dim=-1))
        d = self.spec.obs_dim
        n_obs, n_act, n_delta = entry.split([d, self.spec.action_dim, d], dim=-1)
        rng = self.rng if training else None
        return self.encoder(n_obs, n_act, n_obs + n_delta, rng, self.spec.p_mask if training else 0.0)

    def shared_adapter(self, z: torch.Tensor) -> torch.Tensor:
        """H(z): the dynamics model's adapter weights `[S, B, P]`, for the actor and critics."""
        return self.dynamics.trunk.adapter_params(z)

    def policy_conditioning(
        self, z: torch.Tensor | None, context: torch.Tensor | None, grad: bool = False
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """`(concat, adapter)` for the actor and critics from `z` (inferred) or the true context.

        Detached unless `grad` (the `*_grad` ablations let RL losses reach H and E).
        """
        policy = self.spec.method.policy
        source = context if self.spec.method.uses_true_context else z
        if policy == "none":
            return None, None
        if policy == "concat":
            return source.detach(), None
        if policy == "own_adapter":
            return None, source.detach()
        if grad:
            return None, self.shared_adapter(z)
        with torch.no_grad():
            return None, self.shared_adapter(z)

    def dynamics_prediction(self, obs: torch.Tensor, action: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """f's predicted `s' - s` given `z` (concatenated, or through its own hypernetwork)."""
        if self.spec.method.dynamics == "adapter":
            return self.dynamics(obs, action, adapter=z)
        return self.dynamics(obs, action, concat=z)

    # ------------------------------------------------------------------ policy
    def sample(
        self, mean: torch.Tensor, log_std: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tanh-Gaussian action and its log-probability `[S, B]`, as the authors compute it.

        `log pi = log N(x; mean, std) - sum log(scale (1 - tanh(x)^2) + 1e-6)` with the 1e-6 the
        authors add; deterministic returns tanh(mean).
        """
        std = log_std.exp()
        x = mean if deterministic else mean + std * self.rng.normal(mean.shape[1:])
        y = torch.tanh(x)
        log_normal = -0.5 * ((x - mean) / std).pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        log_prob = (log_normal - torch.log(self.action_scale * (1 - y.pow(2)) + 1e-6)).sum(-1)
        return y * self.action_scale + self.action_bias, log_prob

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        window: Window | None = None,
        context: torch.Tensor | None = None,
        deterministic: bool = True,
    ) -> torch.Tensor:
        """Actions `[S, n, d_a]` for observations `[S, n, d_s]`.

        `window`: the K transitions before `obs` (inferred methods); `context`: the true context
        (`concat`, `da`). `deterministic=False` is training collection: the encoder in training
        mode (slot subsets, masking) and a sampled action, as the authors collect.
        """
        z = self.embed(window, training=not deterministic) if self.encoder is not None else None
        concat, adapter = self.policy_conditioning(z, context)
        mean, log_std = self.actor(obs, concat, adapter)
        return self.sample(mean, log_std, deterministic)[0]

    def soft_update_targets(self) -> None:
        """Polyak averaging of the target critics (their own hypernetworks included)."""
        online = [p.detach() for p in self.critic.parameters()]
        target = list(self.target_critic.parameters())
        torch._foreach_lerp_(target, online, self.spec.sac.tau)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per optimiser role: dynamics (E, f, H), critic, actor, alpha."""
        encoder = list(self.encoder.parameters()) if self.encoder is not None else []
        dynamics = list(self.dynamics.parameters()) if self.dynamics is not None else []
        return {
            "encoder": encoder,
            "dynamics": dynamics,
            "critic": list(self.critic.parameters()),
            "actor": list(self.actor.parameters()),
            "alpha": [self.log_alpha],
        }
