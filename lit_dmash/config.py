"""Typed configuration groups: each field is a constructor argument the CLI exposes.

The groups mirror the YAML (`model.env.*`, `model.collector.*`, `model.sac.*`). Each has a
`validate()` that raises a `ConfigError` naming the field; the LightningModule calls them all
before it builds anything, so a typo fails in the first second, not after an hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lit_dmash.errors import ConfigError, check_choice, check_positive, check_range

LOSS_IMPLS = ("direct", "torchrl")  # SAC loss evaluation: see SACConfig.loss_impl


def _check_int(name: str, value: object, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(name, value, f"expected an integer >= {minimum}")


@dataclass
class EnvConfig:
    """Which environment to train on, and how many copies to step together.

    Args:
        name: Registered env name (see `lit_dmash.envs.env_names()`).
        split: Context split the training episodes draw from.
        num_envs: Sub-environments stepped together in one batched call.
        context_file: YAML context space to use instead of `conf/envs/<name>.yaml`.
        horizon: Episode length in env steps; None keeps the env's default (DI-Friction 50,
            MuJoCo domains 1000). Episodes may end earlier (e.g. WalkerGym falls).
    """

    name: str = "di_friction"
    split: str = "train"
    num_envs: int = 8
    context_file: str | None = None
    horizon: int | None = None

    def validate(self) -> None:
        from lit_dmash.envs import context_space, env_names

        check_choice("env.name", self.name, env_names())
        _check_int("env.num_envs", self.num_envs)
        if self.horizon is not None:
            _check_int("env.horizon", self.horizon)
        space = context_space(self.name, self.context_file)
        if self.split not in space.splits:
            raise ConfigError("env.split", self.split, f"env {self.name!r} defines splits {space.split_names}")


@dataclass
class CollectorConfig:
    """How much experience to gather, when learning starts, and how much to keep.

    Args:
        frames_per_batch: Env frames collected per training step (a multiple of `env.num_envs`).
        total_frames: Training stops after this many env frames.
        init_random_frames: Warm-up frames collected with uniformly random actions, before any update.
        buffer_size: Replay buffer capacity in transitions.
    """

    frames_per_batch: int = 64
    total_frames: int = 100_000
    init_random_frames: int = 1_000
    buffer_size: int = 100_000

    def validate(self, num_envs: int) -> None:
        _check_int("collector.frames_per_batch", self.frames_per_batch)
        if self.frames_per_batch % num_envs:
            raise ConfigError(
                "collector.frames_per_batch", self.frames_per_batch, f"expected a multiple of env.num_envs={num_envs}"
            )
        _check_int("collector.total_frames", self.total_frames)
        _check_int("collector.init_random_frames", self.init_random_frames, minimum=0)
        _check_int("collector.buffer_size", self.buffer_size)


@dataclass
class SACConfig:
    """Soft actor-critic: networks, loss, optimiser and update schedule.

    Args:
        hidden_dims: Hidden layer widths of the actor and of each Q-function.
        gamma: Discount factor.
        tau: Polyak averaging rate of the target Q-networks.
        lr_actor: Adam learning rate of the actor.
        lr_critic: Adam learning rate of the Q-functions.
        lr_alpha: Adam learning rate of the entropy coefficient.
        alpha_init: Initial entropy coefficient (tuned automatically towards `-action_dim` entropy).
        batch_size: Transitions per gradient update.
        utd: Gradient updates per training step (per collected batch of `frames_per_batch` frames).
        loss_impl: How SAC's losses are evaluated: `direct` (default; SACLoss's math on SACLoss's
            parameters without the TensorDict plumbing, ~1.5x faster, equal results) or `torchrl`
            (TorchRL's `SACLoss` forward itself); see `lit_dmash/agents/direct_sac.py`.
    """

    hidden_dims: list[int] = field(default_factory=lambda: [256, 256])
    gamma: float = 0.99
    tau: float = 0.005
    lr_actor: float = 3e-4
    lr_critic: float = 3e-4
    lr_alpha: float = 3e-4
    alpha_init: float = 1.0
    batch_size: int = 256
    utd: int = 1
    loss_impl: str = "direct"

    def validate(self) -> None:
        if not self.hidden_dims:
            raise ConfigError("sac.hidden_dims", self.hidden_dims, "expected a non-empty list of integers >= 1")
        for width in self.hidden_dims:
            _check_int("sac.hidden_dims", width)
        check_range("sac.gamma", self.gamma, 0.0, 1.0, high_inclusive=False)
        check_range("sac.tau", self.tau, 0.0, 1.0)
        for name in ("lr_actor", "lr_critic", "lr_alpha", "alpha_init"):
            check_positive(f"sac.{name}", getattr(self, name))
        _check_int("sac.batch_size", self.batch_size)
        _check_int("sac.utd", self.utd)
        check_choice("sac.loss_impl", self.loss_impl, LOSS_IMPLS)


@dataclass
class ContextConfig:
    """Context inference: encoder, masking, hypernetwork, dynamics model (ignored by `dr`, `oracle`).

    Args:
        history_len: K, the number of recent transitions of the episode the encoder reads.
        z_dim: Size of the context embedding `z`.
        encoder_hidden: Hidden widths of the encoder's per-transition MLP.
        output_norm: Normalisation of `z` in methods with normalisation: `l2`, `layernorm` or `none`.
        p_mask: Probability of dropping each window entry in updates (methods with masking); the
            `MaskingSchedule` callback, when present, sets it over training.
        p_mask_feature: Probability of zeroing single features of window entries in updates.
        adapter_kind: `scale_shift` (h * (1 + g) + b), `lowrank` (I + U V^T) or `full` (d x d).
        adapter_rank: Rank of the `lowrank` adapter.
        adapter_layer: Index of the hidden layer whose activation the adapter modulates.
        adapter_width: Width d of the adapted hidden layer; None takes it from `sac.hidden_dims`.
            Every network's hidden width at `adapter_layer` must equal it.
        hypernet_hidden: Hidden widths of the hypernetwork.
        dynamics_hidden: Hidden widths of the dynamics model; None: same as `sac.hidden_dims`.
        lr_dynamics: Adam learning rate of the encoder, hypernetwork and dynamics model.
    """

    history_len: int = 16
    z_dim: int = 8
    encoder_hidden: list[int] = field(default_factory=lambda: [64, 64])
    output_norm: str = "l2"
    p_mask: float = 0.2
    p_mask_feature: float = 0.0
    adapter_kind: str = "scale_shift"
    adapter_rank: int = 4
    adapter_layer: int = 0
    adapter_width: int | None = None
    hypernet_hidden: list[int] = field(default_factory=lambda: [64])
    dynamics_hidden: list[int] | None = None
    lr_dynamics: float = 1e-3

    def validate(self, sac_hidden: list[int]) -> None:
        from lit_dmash.nets import ADAPTER_KINDS, OUTPUT_NORMS

        _check_int("context.history_len", self.history_len)
        _check_int("context.z_dim", self.z_dim)
        for name in ("encoder_hidden", "hypernet_hidden"):
            widths = getattr(self, name)
            if not widths or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths):
                raise ConfigError(f"context.{name}", widths, "expected a non-empty list of integers >= 1")
        check_choice("context.output_norm", self.output_norm, OUTPUT_NORMS)
        check_range("context.p_mask", self.p_mask, 0.0, 1.0, high_inclusive=False)
        check_range("context.p_mask_feature", self.p_mask_feature, 0.0, 1.0, high_inclusive=False)
        check_choice("context.adapter_kind", self.adapter_kind, ADAPTER_KINDS)
        _check_int("context.adapter_rank", self.adapter_rank)
        _check_int("context.adapter_layer", self.adapter_layer, minimum=0)
        check_positive("context.lr_dynamics", self.lr_dynamics)
        for name, widths in (
            ("sac.hidden_dims", sac_hidden),
            ("context.dynamics_hidden", self.dynamics_widths(sac_hidden)),
        ):
            if not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths) or not widths:
                raise ConfigError(name, widths, "expected a non-empty list of integers >= 1")
            if self.adapter_layer >= len(widths):
                raise ConfigError(
                    "context.adapter_layer", self.adapter_layer, f"{name}={widths} has {len(widths)} layers"
                )
            if self.adapter_width is not None and widths[self.adapter_layer] != self.adapter_width:
                raise ConfigError(
                    "context.adapter_width",
                    self.adapter_width,
                    f"must equal the hidden width at layer {self.adapter_layer} of {name}={widths}",
                )
        width = self.width(sac_hidden)
        if self.dynamics_widths(sac_hidden)[self.adapter_layer] != width:
            raise ConfigError(
                "context.dynamics_hidden",
                self.dynamics_hidden,
                f"hidden width at layer {self.adapter_layer} must equal the shared adapter width {width}",
            )

    def dynamics_widths(self, sac_hidden: list[int]) -> list[int]:
        return list(self.dynamics_hidden) if self.dynamics_hidden is not None else list(sac_hidden)

    def width(self, sac_hidden: list[int]) -> int:
        """The adapter width d: the hidden width of the actor and critics at the adapter slot."""
        return self.adapter_width if self.adapter_width is not None else sac_hidden[self.adapter_layer]
