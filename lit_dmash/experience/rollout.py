"""Stepping S seeds' envs together, the context window, and the warm-up the authors run.

`SeedEnvs` holds one TorchRL env per seed (each built with its own seed, hence its own start
states and, for `ode_k`, its own contexts) and steps them as one `[S, n, ...]` batch.
`ContextWindow` is the last K transitions `(s, a, s')` of every sub-env; it starts as K copies
of `(reset obs, 0, reset obs)` and is *not* cleared at resets: during the random phase it
carries over between episodes of the same context, after it the warm-up refills it.

`EnvGroup` steps several `SeedEnvs` (a task's splits) as one batch, so that one policy pass per
step serves every split of an evaluation.

`warm_up` is the authors' `fill_context_window`: reset, K steps with the deterministic policy
pushed into the window only (no replay, no score, no frame count), then the caller resets
again. `run_episodes` is their evaluation: per episode a reset, the warm-up, a reset, then one
scored episode with deterministic actions and the eval-mode encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tensordict import TensorDict
from torchrl.envs import EnvBase

from lit_dmash.agent.agent import Agent
from lit_dmash.envs.simulators import SimulationFailure


@dataclass
class StepResult:
    next_obs: torch.Tensor  # [S, n, d_s]
    reward: torch.Tensor  # [S, n]
    terminated: torch.Tensor  # [S, n] bool
    truncated: torch.Tensor  # [S, n] bool
    context: torch.Tensor  # [S, n, c]

    @property
    def done(self) -> torch.Tensor:
        return self.terminated | self.truncated


class SeedEnvs:
    """S batched envs (one per seed, `n` sub-envs each) stepped as one `[S, n]` batch."""

    def __init__(self, envs: Sequence[EnvBase]) -> None:
        self.envs = list(envs)
        first = self.envs[0]
        self.num_envs = first.batch_size[0]
        self.obs_dim = first.observation_spec["observation"].shape[-1]
        self.context_dim = first.observation_spec["context"].shape[-1]
        self.action_dim = first.action_spec.shape[-1]
        self.action_low = float(first.action_spec.space.low.min())
        self.action_high = float(first.action_spec.space.high.max())
        self.horizon = getattr(first, "horizon", None)

    def reset(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Reset every sub-env of every seed: `(obs [S, n, d_s], context [S, n, c])`."""
        tds = [env.reset() for env in self.envs]
        return torch.stack([td["observation"] for td in tds]), torch.stack([td["context"] for td in tds])

    def step(self, action: torch.Tensor) -> StepResult:
        """One step of every seed's env; a `SimulationFailure` says which seed (`seed_index`) failed."""
        outs = []
        for index, (env, act) in enumerate(zip(self.envs, action.to(self.envs[0].device), strict=True)):
            try:
                outs.append(env.step(TensorDict(action=act, batch_size=env.batch_size, device=env.device))["next"])
            except SimulationFailure as failure:
                failure.seed_index = index
                raise
        stack = lambda key: torch.stack([o[key] for o in outs])  # noqa: E731
        return StepResult(
            next_obs=stack("observation"),
            reward=stack("reward").squeeze(-1),
            terminated=stack("terminated").squeeze(-1),
            truncated=stack("truncated").squeeze(-1),
            context=stack("context"),
        )

    def episode_over(self, done: torch.Tensor) -> bool:
        """Whether the scored episode stops after a step that ended `done [S, n]`: when any
        sub-env's does, as the authors' evaluation loop stops (the paper's tasks never terminate:
        all truncate together)."""
        return bool(done.any())

    def close(self) -> None:
        for env in self.envs:
            env.close()


class EnvGroup:
    """Several `SeedEnvs` (a task's splits) stepped as one `[S, n_1 + n_2 + ..., ...]` batch.

    Evaluating splits one after another runs one policy pass per split and step; grouped, one pass
    serves them all (the quick start's three splits: ~1/3 of the passes). Each part keeps its own
    envs, hence its own start states, and the policy is row-wise (a row's action does not depend on
    the other rows), so every part scores what it scores alone: bit for bit on the CPU
    (`tests/test_experience.py`); on a GPU a matrix kernel chosen for the larger batch may round a
    row's last bit differently. A part
    whose episode is over (`SeedEnvs.episode_over`) is no longer stepped while the others go on:
    its rows then read zeros (reward 0, done), which nothing counts.
    """

    def __init__(self, parts: Sequence[SeedEnvs]) -> None:
        self.parts = list(parts)
        first = self.parts[0]
        for name in ("obs_dim", "context_dim", "action_dim", "horizon", "action_low", "action_high"):
            values = {getattr(part, name) for part in self.parts}
            if len(values) > 1:
                raise ValueError(f"EnvGroup: parts differ in {name}: {sorted(values, key=str)}")
        self.obs_dim, self.context_dim, self.action_dim = first.obs_dim, first.context_dim, first.action_dim
        self.action_low, self.action_high, self.horizon = first.action_low, first.action_high, first.horizon
        self.sizes = [part.num_envs for part in self.parts]
        self.num_envs = sum(self.sizes)
        self.running = [True] * len(self.parts)

    def reset(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.running = [True] * len(self.parts)
        obs, context = zip(*(part.reset() for part in self.parts), strict=True)
        return torch.cat(obs, dim=1), torch.cat(context, dim=1)

    def step(self, action: torch.Tensor) -> StepResult:
        """Step the running parts; a `SimulationFailure` also says which part (`part_index`)."""
        results = []
        for index, (part, chunk) in enumerate(zip(self.parts, action.split(self.sizes, dim=1), strict=True)):
            if not self.running[index]:
                results.append(self._idle(part, chunk))
                continue
            try:
                results.append(part.step(chunk))
            except SimulationFailure as failure:
                failure.part_index = index
                raise
        cat = lambda name: torch.cat([getattr(r, name) for r in results], dim=1)  # noqa: E731
        return StepResult(cat("next_obs"), cat("reward"), cat("terminated"), cat("truncated"), cat("context"))

    def episode_over(self, done: torch.Tensor) -> bool:
        """Mark the parts whose episode is over; True once every part's is."""
        for index, (part, part_done) in enumerate(zip(self.parts, self.split_rows(done), strict=True)):
            if self.running[index] and part.episode_over(part_done):
                self.running[index] = False
        return not any(self.running)

    def _idle(self, part: SeedEnvs, chunk: torch.Tensor) -> StepResult:
        seeds, n = chunk.shape[:2]
        ended = torch.ones(seeds, n, dtype=torch.bool, device=chunk.device)
        return StepResult(
            next_obs=chunk.new_zeros(seeds, n, part.obs_dim),
            reward=chunk.new_zeros(seeds, n),
            terminated=torch.zeros_like(ended),
            truncated=ended,
            context=chunk.new_zeros(seeds, n, part.context_dim),
        )

    def split_rows(self, x: torch.Tensor) -> list[torch.Tensor]:
        """`x [S, n_1 + n_2 + ..., ...]` as one tensor per part."""
        return list(x.split(self.sizes, dim=1))

    def per_part(self, out: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """`run_episodes`' output on the group as one output per part."""
        rows = {key: self.split_rows(value) for key, value in out.items()}
        return [{key: value[index] for key, value in rows.items()} for index in range(len(self.parts))]


class ContextWindow:
    """The last K transitions `(obs, action, next_obs)` of each sub-env, oldest first: `[S, n, K, d]`."""

    def __init__(self, length: int, obs: torch.Tensor, action_dim: int) -> None:
        self.length = length
        self.reset_to(obs, action_dim)

    def reset_to(self, obs: torch.Tensor, action_dim: int) -> None:
        """K copies of `(obs, 0, obs)`: the authors' initial window (no transition seen yet)."""
        copies = obs.unsqueeze(-2).expand(*obs.shape[:-1], self.length, obs.shape[-1]).clone()
        self.obs, self.next_obs = copies, copies.clone()
        self.action = obs.new_zeros(*obs.shape[:-1], self.length, action_dim)

    def push(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> None:
        for name, value in (("obs", obs), ("action", action), ("next_obs", next_obs)):
            current = getattr(self, name)
            setattr(self, name, torch.cat([current[..., 1:, :], value.unsqueeze(-2)], dim=-2))

    @property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.obs, self.action, self.next_obs


def policy_inputs(agent: Agent, window: ContextWindow, context: torch.Tensor) -> dict:
    """What `Agent.act` reads besides the observation, on the agent's device."""
    device = agent.log_alpha.device
    inputs: dict = {"context": context.to(device)}
    if agent.encoder is not None:
        inputs["window"] = tuple(t.to(device) for t in window.tensors)
    return inputs


def act(agent: Agent, obs: torch.Tensor, window: ContextWindow, context: torch.Tensor, deterministic: bool):
    device = agent.log_alpha.device
    return agent.act(obs.to(device), deterministic=deterministic, **policy_inputs(agent, window, context))


def warm_up(agent: Agent, envs: SeedEnvs | EnvGroup, window: ContextWindow) -> None:
    """Reset, then K deterministic steps pushed into the window only (the caller resets again)."""
    obs, context = envs.reset()
    for _ in range(window.length):
        action = act(agent, obs, window, context, deterministic=True).to(obs.device)
        result = envs.step(action)
        window.push(obs, action, result.next_obs)
        obs = result.next_obs


@torch.no_grad()
def run_episodes(agent: Agent, envs: SeedEnvs | EnvGroup, window_length: int, episodes: int, warm: bool = True) -> dict:
    """The authors' evaluation: `episodes` scored episodes per sub-env, deterministic actions.

    Returns `returns [S, n, episodes]` and `contexts [S, n, c]` (of the first episode; the paper's
    tasks keep a sub-env's context fixed).
    """
    returns, contexts = [], None
    for _ in range(episodes):
        obs, context = envs.reset()
        window = ContextWindow(window_length, obs, envs.action_dim)
        if warm:
            warm_up(agent, envs, window)
        obs, context = envs.reset()
        contexts = context if contexts is None else contexts
        total = torch.zeros(obs.shape[:2])
        for _ in range(envs.horizon or 10**9):
            action = act(agent, obs, window, context, deterministic=True).to(obs.device)
            result = envs.step(action)
            total += result.reward.cpu()
            window.push(obs, action, result.next_obs)
            obs, context = result.next_obs, result.context
            if envs.episode_over(result.done):
                break
        returns.append(total)
    return {"returns": torch.stack(returns, dim=-1), "contexts": contexts.cpu()}


@torch.no_grad()
def collect_windows(agent: Agent, envs: SeedEnvs, window_length: int, samples: int, warm: bool = True) -> dict:
    """Windows the encoder reads along one deterministic episode per sub-env (after the warm-up).

    `samples` windows per sub-env at evenly spaced steps: `obs`, `action`, `next_obs` `[S, n, m, K, d]`
    and the sub-envs' `contexts [S, n, c]`. For the representation diagnostics.
    """
    obs, context = envs.reset()
    window = ContextWindow(window_length, obs, envs.action_dim)
    if warm:
        warm_up(agent, envs, window)
    obs, context = envs.reset()
    horizon = envs.horizon or samples
    keep = set(torch.linspace(0, horizon - 1, min(samples, horizon)).long().tolist())
    kept: list[tuple[torch.Tensor, ...]] = []
    for t in range(horizon):
        if t in keep:
            kept.append(tuple(part.clone() for part in window.tensors))
        action = act(agent, obs, window, context, deterministic=True).to(obs.device)
        result = envs.step(action)
        window.push(obs, action, result.next_obs)
        obs = result.next_obs
        if result.done.any():
            break
    obs_w, act_w, next_w = (torch.stack([k[i] for k in kept], dim=2) for i in range(3))
    return {"obs": obs_w, "action": act_w, "next_obs": next_w, "contexts": context}
