"""The spine: one factory per part, and one iteration of the authors' training loop.

Every driver builds with these and trains with `train_iteration`: the LightningModule
(`lit_dmash.module`), the benchmarks (`bench/`), and a bare loop such as

    envs = make_envs(env, "train", seeds)
    agent = make_agent(agent_spec(method, env.name, envs, sac, context), envs, seeds)
    collector = make_collector(agent, envs, make_replay(agent, envs, protocol), protocol)
    optimizers = make_optimizers(agent)
    while collector.vector_steps <= protocol.random_steps + protocol.total_steps:
        train_iteration(collector, agent, optimizers, batch_per_env=sac.batch_size // env.num_envs,
                        random_steps=protocol.random_steps)

which is what `python -m lit_dmash fit` runs, minus logging, evaluation and checkpoints.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lit_dmash.agent.agent import Agent
from lit_dmash.agent.rollback import Rollback
from lit_dmash.agent.spec import AgentSpec, resolve
from lit_dmash.agent.update import EAGER, Losses, NonFiniteError, Optimizers, StepFn, plain_step, update
from lit_dmash.config import ContextConfig, EnvConfig, ProtocolConfig, SACConfig
from lit_dmash.envs import make_env, task_window
from lit_dmash.experience.collector import Collector, SimulationFailed
from lit_dmash.experience.replay import EpisodeReplay
from lit_dmash.experience.rollout import SeedEnvs
from lit_dmash.methods import get_method


def make_envs(
    env: EnvConfig, split: str, seeds: Sequence[int], num_envs: int | None = None, seed_offset: int = 0
) -> SeedEnvs:
    """One batched env per seed on `split` (sub-env i in context i), each seeded by its seed (+ offset)."""
    options = dict(env.options)
    if env.context_file is not None:
        options["context_file"] = env.context_file
    n = env.num_envs if num_envs is None else num_envs
    sizes = {"num_envs": n, "contexts_per_split": env.contexts_per_split, "horizon": env.horizon}
    return SeedEnvs([make_env(env.name, split, seed=s + seed_offset, **sizes, **options) for s in seeds])


def agent_spec(method: str, task: str, envs: SeedEnvs, sac: SACConfig, context: ContextConfig) -> AgentSpec:
    """What `method`'s agent is on the task: its shapes (read from `envs`), window and settings."""
    return resolve(get_method(method), envs.obs_dim, envs.action_dim, envs.context_dim, task_window(task), sac, context)


def make_agent(spec: AgentSpec, envs: SeedEnvs, seeds: Sequence[int]) -> Agent:
    """The networks of `spec`, one stack per seed, acting in `envs`' action bounds."""
    return Agent(spec, seeds, envs.action_low, envs.action_high)


def replay_capacity(protocol: ProtocolConfig, horizon: int) -> int:
    """Episodes kept per sub-env: min(buffer_size, total_steps) // horizon, at least 2 (the authors')."""
    transitions = min(protocol.buffer_size, max(protocol.total_steps, 1))
    return max(2, transitions // horizon)


def replay_bytes(spec: AgentSpec, num_seeds: int, num_envs: int, horizon: int, capacity: int) -> int:
    """What `make_replay` will allocate, for a check before allocating it."""
    slots = num_seeds * num_envs * capacity * (spec.window + horizon)
    return slots * (4 * (2 * spec.obs_dim + spec.action_dim + 1) + 2)


def make_replay(
    agent: Agent, envs: SeedEnvs, protocol: ProtocolConfig, capacity: int | None = None, device=None
) -> EpisodeReplay:
    """The episodic replay for `envs` (capacity: `replay_capacity` unless given) on `device`."""
    horizon = int(envs.horizon)
    capacity = replay_capacity(protocol, horizon) if capacity is None else capacity
    dims = (envs.obs_dim, envs.action_dim, envs.context_dim)
    device = agent.log_alpha.device if device is None else device
    return EpisodeReplay(agent.seeds, envs.num_envs, capacity, agent.spec.window, horizon, *dims, device=device)


def make_collector(agent: Agent, envs: SeedEnvs, replay: EpisodeReplay, protocol: ProtocolConfig) -> Collector:
    return Collector(agent, envs, replay, agent.spec.window, protocol.random_steps, protocol.warm_up)


def make_optimizers(agent: Agent) -> Optimizers:
    """Adam per role with the spec's learning rates (fused when every parameter is on cpu/cuda); the
    encoder and the dynamics model share one with two parameter groups, as the authors have them."""
    groups, spec = agent.parameter_groups(), agent.spec

    def adam(param_groups: list[dict]) -> torch.optim.Adam:
        params = [p for g in param_groups for p in g["params"]]
        fused = all(p.device.type in ("cpu", "cuda") for p in params)
        return torch.optim.Adam(param_groups, fused=fused or None)

    dynamics = None
    if groups["dynamics"]:
        dynamics = adam(
            [
                {"params": groups["encoder"], "lr": spec.lr_encoder, "name": "encoder"},
                {"params": groups["dynamics"], "lr": spec.lr_dynamics, "name": "dynamics"},
            ]
        )
    sac = spec.sac
    return Optimizers(
        dynamics=dynamics,
        critic=adam([{"params": groups["critic"], "lr": sac.lr_critic, "name": "critic"}]),
        actor=adam([{"params": groups["actor"], "lr": sac.lr_actor, "name": "actor"}]),
        alpha=adam([{"params": groups["alpha"], "lr": sac.lr_alpha, "name": "alpha"}]),
    )


@dataclass
class Iteration:
    """What one `train_iteration` did. `t`: the authors' step index (< 0 in the random phase)."""

    t: int
    metrics: dict[str, torch.Tensor] | None = None  # the update's, when one ran
    skipped: str | None = None  # "collect" or "update": a non-finite value was met and dropped
    sim_failures: int = 0  # sub-envs whose simulation failed in a dropped collect step
    collect_s: float = 0.0
    update_s: float = 0.0


def train_iteration(
    collector: Collector,
    agent: Agent,
    optimizers: Optimizers,
    batch_per_env: int,
    random_steps: int,
    skip_nonfinite: bool = False,
    step_fn: StepFn = plain_step,
    losses: Losses = EAGER,
    rollback: Rollback | None = None,
) -> Iteration:
    """One vector step of the authors' loop (`sac.py: train`): act and step every sub-env (uniform
    random actions for the first `random_steps`; warm-up and resets when episodes end), insert into
    the window and the replay; then, once learning has started, sample `batch_per_env` windows from
    every sub-env and run one update (`lit_dmash.agent.update`).

    A non-finite observation, reward or loss, or a failed simulation (`SimulationFailed`), raises
    `NonFiniteError` unless `skip_nonfinite`: then the step is dropped (the collector restarts its
    episodes; the update is rolled back) and `Iteration.skipped` says which.
    """
    start = time.perf_counter()
    try:
        collector.step()
    except NonFiniteError as err:
        if not skip_nonfinite:
            raise
        collector.recover()
        failures = err.simulations if isinstance(err, SimulationFailed) else 0
        return Iteration(collector.vector_steps - random_steps - 1, skipped="collect", sim_failures=failures)
    collected = time.perf_counter()
    result = Iteration(collector.vector_steps - random_steps - 1, collect_s=collected - start)
    if result.t < 0:
        return result
    batch = collector.replay.sample(batch_per_env, windows=agent.encoder is not None)
    try:
        result.metrics = update(agent, batch, optimizers, result.t, step_fn, losses, rollback)
    except NonFiniteError:
        if not skip_nonfinite:
            raise
        result.skipped = "update"
    result.update_s = time.perf_counter() - collected
    return result
