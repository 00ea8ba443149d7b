"""Resolve (method, task, config) into the concrete shape of an agent: `AgentSpec`.

Config fields left `None` take the method's value (masking, norms, encoder) or the task's
(window K); everything the agent builds is decided here, once, so the agent itself only
assembles parts.
"""

from __future__ import annotations

from dataclasses import dataclass

from lit_dmash.config import ContextConfig, SACConfig
from lit_dmash.errors import ConfigError
from lit_dmash.methods import Method
from lit_dmash.nets.adapters import AdapterSpec
from lit_dmash.nets.encoder import EncoderSpec


@dataclass(frozen=True)
class AgentSpec:
    """Everything that fixes the agent's parameters and its update."""

    method: Method
    obs_dim: int
    action_dim: int
    context_dim: int  # true context (raw varied keys)
    hidden: tuple[int, ...]
    window: int
    encoder: EncoderSpec | None
    running_norm: bool
    adapter: AdapterSpec | None
    hypernet_hidden: tuple[int, ...]
    p_mask: float
    kl_weight: float
    leak_free: bool
    sac: SACConfig
    lr_encoder: float
    lr_dynamics: float

    @property
    def z_dim(self) -> int:
        return self.encoder.z_dim if self.encoder is not None else 0

    def architecture(self) -> dict[str, object]:
        """What a checkpoint must agree on to be loaded into an agent of this spec."""
        return {
            "method": self.method.name,
            "obs_dim": self.obs_dim,
            "action_dim": self.action_dim,
            "context_dim": self.context_dim,
            "sac.hidden_dims": list(self.hidden),
            "context.window": self.window,
            "encoder": None if self.encoder is None else f"{self.encoder.kind}/{self.encoder.model_dim}/{self.z_dim}",
            "adapter": None if self.adapter is None else f"{self.adapter.kind}/{self.adapter.rank}",
            "context.hypernet_hidden": list(self.hypernet_hidden),
            "context.input_norm": "running" if self.running_norm else None,
        }


def resolve(
    method: Method,
    obs_dim: int,
    action_dim: int,
    context_dim: int,
    task_window: int,
    sac: SACConfig,
    context: ContextConfig,
) -> AgentSpec:
    """The `AgentSpec` of `method` on a task, with `context`'s overrides applied."""
    hidden = tuple(sac.hidden_dims)
    window = context.resolved_window(task_window)
    encoder = None
    if method.infers_context:
        star = method.stabilisers
        input_norm = context.input_norm or ("avgl1" if star else "none")
        encoder = EncoderSpec(
            kind=context.encoder or method.encoder,
            window=window,
            select_fraction=context.select_fraction,
            model_dim=context.model_dim,
            z_dim=context.z_dim,
            input_norm="avgl1" if input_norm == "avgl1" else "none",
            output_norm=context.output_norm or ("simnorm" if star else "none"),
        )
        if encoder.output_norm == "simnorm" and encoder.z_dim % 2:
            raise ConfigError("context.z_dim", encoder.z_dim, "expected an even size with SimNorm")
    running = encoder is not None and (context.input_norm == "running")
    adapter = None
    if method.policy in ("shared_adapter", "own_adapter") or method.dynamics == "adapter":
        width = hidden[-1]
        default_rank = max(1, width // 8) if context.adapter == "bottleneck" else 4
        adapter = AdapterSpec(context.adapter, width, context.adapter_rank or default_rank)
    return AgentSpec(
        method=method,
        obs_dim=obs_dim,
        action_dim=action_dim,
        context_dim=context_dim,
        hidden=hidden,
        window=window,
        encoder=encoder,
        running_norm=running,
        adapter=adapter,
        hypernet_hidden=tuple(context.hypernet_hidden),
        p_mask=(method.p_mask if context.p_mask is None else context.p_mask) if encoder is not None else 0.0,
        kl_weight=(method.kl_weight if context.kl_weight is None else context.kl_weight),
        leak_free=context.leak_free,
        sac=sac,
        lr_encoder=context.lr_encoder,
        lr_dynamics=context.lr_dynamics,
    )
