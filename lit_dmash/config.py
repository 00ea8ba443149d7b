"""Typed configuration groups: each field is a constructor argument the CLI exposes.

The groups mirror the YAML (`model.env.*`, `model.protocol.*`, `model.sac.*`, `model.context.*`).
Defaults are the authors' settings (their `Args` in `dmash/contexts/config.py` after
`modify_groups`); where a default depends on the task (the window K) or the method (masking,
norms), the field is `None` and the task or method decides. Each group's `validate()` raises a
`ConfigError` naming the field; the module calls them all before it builds anything, so a typo
fails in the first second, not after an hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from lit_dmash.errors import ConfigError, check_choice, check_int, check_positive, check_range
from lit_dmash.names import ADAPTER_KINDS, ENCODER_KINDS

if TYPE_CHECKING:
    from lit_dmash.methods import Method


def check_widths(name: str, widths: object) -> None:
    ok = isinstance(widths, (list, tuple)) and len(widths) > 0
    if not ok or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths):
        raise ConfigError(name, widths, "expected a non-empty list of integers >= 1")


@dataclass
class EnvConfig:
    """Which task to train on, and how many sub-envs to step together.

    Args:
        name: Task name (`lit_dmash.envs.env_names()`): the paper's `di`, `di_friction`, `ode`,
            `ode_k`, `cartpole`, `ball_in_cup`, `walker`, `cheetah`, `reacher_easy`,
            `reacher_hard`, `walker_gym`, `hopper_gym`, `di_perm`, `reacher_perm`, or one of our
            sign-pattern extension tasks (`di_signs`, `cheetah_signs`, ...).
        num_envs: Sub-envs per seed stepped together; sub-env i keeps training context
            i mod contexts_per_split for the whole run (the authors: 20).
        contexts_per_split: Contexts selected per split by the authors' grid rule (their 20).
        horizon: Episode length in env steps; None keeps the task's (100 / 200 / 1000).
        options: Task options, e.g. `{k: 5}` for `ode_k` or `{reset_streams: independent}`.
        context_file: A YAML context space replacing the task's (extension tasks only).
    """

    name: str = "di"
    num_envs: int = 20
    contexts_per_split: int = 20
    horizon: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    context_file: str | None = None

    def validate(self) -> None:
        from lit_dmash.envs import env_names

        check_choice("env.name", self.name, env_names())
        check_int("env.num_envs", self.num_envs)
        check_int("env.contexts_per_split", self.contexts_per_split)
        if self.horizon is not None:
            check_int("env.horizon", self.horizon)
        if not isinstance(self.options, dict):
            raise ConfigError("env.options", self.options, "expected a mapping of task options")


@dataclass
class ProtocolConfig:
    """The training loop: one update per vector step after a random warm-up.

    Args:
        total_steps: The authors' `total_timesteps` N: vector steps after learning starts; the loop
            runs t = 0..N, so N + 1 updates (DI/ODE/Cartpole 100k, dm_control 200k, Gym 500k).
        random_steps: Vector steps of uniformly random actions before the first update (5,000).
        buffer_size: Transitions kept per sub-env (context), as whole episodes: the replay holds
            min(buffer_size, total_steps) // episode length episodes per sub-env, FIFO.
        warm_up: Before every training episode after learning starts (and every evaluation
            episode), roll K unscored steps with the deterministic policy in the same context to fill
            the window, then reset (the authors' `context_warm_up`).
        steps_per_batch: Vector steps (each with its update) per Lightning training step, n; more
            amortises Lightning's per-step overhead (a millisecond or so on a CPU, which matters for
            small networks: the main job runs n = 10), the training is the same. Callbacks run
            between Lightning steps, and after the first update a step ends at updates 1, 1 + n,
            1 + 2n, ..., so an evaluation every `k * n` updates still sees the authors' t = 0,
            k * n, ...; with another period it runs at the first step end after its due point.
        compile: `none` (eager), or a `torch.compile` mode for the losses: `default`, or
            `reduce-overhead` (CUDA graphs on a GPU). Opt-in: not yet measured on a GPU here.
    """

    total_steps: int = 100_000
    random_steps: int = 5_000
    buffer_size: int = 100_000
    warm_up: bool = True
    steps_per_batch: int = 1
    compile: str = "none"

    def validate(self) -> None:
        check_int("protocol.total_steps", self.total_steps, minimum=0)
        check_int("protocol.random_steps", self.random_steps, minimum=1)
        check_int("protocol.buffer_size", self.buffer_size)
        if not isinstance(self.warm_up, bool):
            raise ConfigError("protocol.warm_up", self.warm_up, "expected true or false")
        check_int("protocol.steps_per_batch", self.steps_per_batch)
        check_choice("protocol.compile", self.compile, ("none", "default", "reduce-overhead", "max-autotune"))


@dataclass
class SACConfig:
    """Soft actor-critic as the authors run it (CleanRL-style, twin critics, autotuned alpha).

    Args:
        hidden_dims: Hidden widths of the actor, each critic and the dynamics model.
        gamma: Discount factor.
        tau: Polyak rate of the target critics, every update.
        lr_actor: Adam learning rate of the actor.
        lr_critic: Adam learning rate of both critics.
        lr_alpha: Adam learning rate of log(alpha) (the authors use the critic's, 1e-3).
        alpha_init: Initial entropy coefficient (log alpha starts at log of it; the authors: 1).
        batch_size: Transitions per update, split equally over the sub-envs (contexts):
            batch_size // num_envs each (the authors: 256 // 20 = 12, so 240).
        actor_every: Actor (and alpha) updated every `actor_every` updates, `actor_every` times
            (TD3-style delay with compensation; the authors: 2).
        bootstrap_timeouts: False (the authors): the TD target uses done = terminated or
            truncated, so the last step of every episode is treated as terminal. True: bootstrap
            through time-outs (done = terminated), the textbook treatment.
    """

    hidden_dims: list[int] = field(default_factory=lambda: [256, 256])
    gamma: float = 0.99
    tau: float = 0.005
    lr_actor: float = 3e-4
    lr_critic: float = 1e-3
    lr_alpha: float = 1e-3
    alpha_init: float = 1.0
    batch_size: int = 256
    actor_every: int = 2
    bootstrap_timeouts: bool = False

    def validate(self, num_envs: int) -> None:
        check_widths("sac.hidden_dims", self.hidden_dims)
        check_range("sac.gamma", self.gamma, 0.0, 1.0, high_inclusive=False)
        check_range("sac.tau", self.tau, 0.0, 1.0)
        for name in ("lr_actor", "lr_critic", "lr_alpha", "alpha_init"):
            check_positive(f"sac.{name}", getattr(self, name))
        check_int("sac.batch_size", self.batch_size)
        if self.batch_size < num_envs:
            raise ConfigError("sac.batch_size", self.batch_size, f"expected >= env.num_envs={num_envs}")
        check_int("sac.actor_every", self.actor_every)
        if not isinstance(self.bootstrap_timeouts, bool):
            raise ConfigError("sac.bootstrap_timeouts", self.bootstrap_timeouts, "expected true or false")


ENCODERS = ENCODER_KINDS  # the name this module exported before `lit_dmash.names`
INPUT_NORMS = ("avgl1", "running", "none")
OUTPUT_NORMS = ("simnorm", "l2", "layernorm", "none")


@dataclass
class ContextConfig:
    """Context inference (encoder, masking, dynamics model, hypernetwork); `None` = the task's or method's.

    Args:
        window: K, the transitions of the window the encoder reads; None: the task's (24 / 128).
        leak_free: False (the authors): the training window of a sampled transition ends with that
            transition, while acting sees only the K before it. True: the training window is the
            K transitions before it, as at acting time.
        select_fraction: Share of the window's slots the encoder reads (random in training,
            evenly spaced in evaluation): int(0.2 K), so 4 of 24, 25 of 128.
        z_dim: Size of `z`.
        model_dim: Width of the per-slot embedding and the LSTM.
        encoder: None (the method's: `lstm`, or `plstm` for DMA-Pearl) or our `meanpool`.
        input_norm: None (the method's: `avgl1` for the * variants, else `none`), or our `running`
            (running mean/std of the raw window inputs).
        output_norm: None (the method's: `simnorm` for the * variants, else `none`), `l2`, `layernorm`.
        p_mask: Masking probability of window vectors in training; None: the method's (0 / 0.2 / 0.4).
        kl_weight: DMA-Pearl's KL weight; None: the method's (0.4).
        adapter: `bottleneck` (the paper's), or our `scale_shift`, `lowrank`, `full`.
        adapter_rank: Bottleneck / low rank; None: width // 8 for `bottleneck`, 4 for `lowrank`.
        hypernet_hidden: Hidden widths of every hypernetwork (the authors' 64, 64).
        lr_encoder: Adam learning rate of the encoder.
        lr_dynamics: Adam learning rate of the dynamics model and its hypernetwork.
    """

    window: int | None = None
    leak_free: bool = False
    select_fraction: float = 0.2
    z_dim: int = 8
    model_dim: int = 32
    encoder: str | None = None
    input_norm: str | None = None
    output_norm: str | None = None
    p_mask: float | None = None
    kl_weight: float | None = None
    adapter: str = "bottleneck"
    adapter_rank: int | None = None
    hypernet_hidden: list[int] = field(default_factory=lambda: [64, 64])
    lr_encoder: float = 3e-4
    lr_dynamics: float = 3e-4

    def validate(self) -> None:
        if self.window is not None:
            check_int("context.window", self.window)
        if not isinstance(self.leak_free, bool):
            raise ConfigError("context.leak_free", self.leak_free, "expected true or false")
        check_range("context.select_fraction", self.select_fraction, 0.0, 1.0)
        if self.select_fraction <= 0:
            raise ConfigError("context.select_fraction", self.select_fraction, "expected a number in (0, 1]")
        check_int("context.z_dim", self.z_dim, minimum=2)
        check_int("context.model_dim", self.model_dim)
        for name, value, allowed in (
            ("encoder", self.encoder, ENCODERS),
            ("input_norm", self.input_norm, INPUT_NORMS),
            ("output_norm", self.output_norm, OUTPUT_NORMS),
        ):
            if value is not None:
                check_choice(f"context.{name}", value, allowed)
        if self.output_norm == "simnorm" and self.z_dim % 2:
            raise ConfigError("context.z_dim", self.z_dim, "expected an even size with output_norm simnorm")
        if self.p_mask is not None:
            check_range("context.p_mask", self.p_mask, 0.0, 1.0, high_inclusive=False)
        if self.kl_weight is not None:
            check_positive("context.kl_weight", self.kl_weight, allow_zero=True)
        check_choice("context.adapter", self.adapter, ADAPTER_KINDS)
        if self.adapter_rank is not None:
            check_int("context.adapter_rank", self.adapter_rank)
        check_widths("context.hypernet_hidden", self.hypernet_hidden)
        check_positive("context.lr_encoder", self.lr_encoder)
        check_positive("context.lr_dynamics", self.lr_dynamics)

    def resolved_window(self, task_window: int) -> int:
        return task_window if self.window is None else self.window


ENCODER_FIELDS = (
    "leak_free",
    "select_fraction",
    "z_dim",
    "model_dim",
    "encoder",
    "input_norm",
    "output_norm",
    "p_mask",
    "lr_encoder",
    "lr_dynamics",
)
"""Context fields read only by an arm that infers the context (an encoder and a dynamics model)."""
ADAPTER_FIELDS = ("adapter", "adapter_rank", "hypernet_hidden")
"""Context fields read only by an arm with an adapter (and so a hypernetwork)."""
RANKED_ADAPTERS = ("bottleneck", "lowrank")


def inert_context_fields(method: Method, context: ContextConfig) -> dict[str, str]:
    """The context fields set away from their default that `method` never reads, with why.

    `window` is read by every arm: it is the length of the authors' warm-up before each episode
    (and of the replay's window prefix), with or without an encoder.
    """
    default = ContextConfig()
    changed = [f.name for f in fields(ContextConfig) if getattr(context, f.name) != getattr(default, f.name)]
    has_adapter = method.policy in ("shared_adapter", "own_adapter") or method.dynamics == "adapter"
    encoder = context.encoder or method.encoder
    inert: dict[str, str] = {}
    for name in changed:
        if name in ENCODER_FIELDS and not method.infers_context:
            inert[name] = f"for method {method.name!r}, which has no context encoder or dynamics model"
        elif name in ADAPTER_FIELDS and not has_adapter:
            inert[name] = f"for method {method.name!r}, which has no adapter or hypernetwork"
        elif name == "kl_weight" and not (method.infers_context and encoder == "plstm"):
            inert[name] = f"for method {method.name!r} with encoder {encoder!r}: only the Gaussian plstm has a KL term"
        elif name == "output_norm" and encoder == "plstm":
            inert[name] = "with encoder 'plstm', whose z is its Gaussian's (LayerNormed) mean or sample"
        elif name == "adapter_rank" and context.adapter not in RANKED_ADAPTERS:
            inert[name] = (
                f"with context.adapter={context.adapter!r}, which has no rank (only {list(RANKED_ADAPTERS)} do)"
            )
    return inert


def check_context_applies(method: Method, context: ContextConfig) -> None:
    """Refuse (one `ConfigError`) a context option the arm would silently ignore."""
    for name, why in inert_context_fields(method, context).items():
        raise ConfigError(f"context.{name}", getattr(context, name), f"does nothing {why}; leave it unset")


def without_inert(method: Method, context: ContextConfig) -> ContextConfig:
    """`context` with the fields `method` never reads put back to their defaults (for code that
    derives one arm's settings from settings shared by several arms)."""
    default = ContextConfig()
    return replace(context, **{name: getattr(default, name) for name in inert_context_fields(method, context)})
