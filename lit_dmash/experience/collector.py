"""Training collection as the authors run it: one vector step at a time, windows, warm-ups, replay.

`Collector.step()` is one iteration of their loop before the update: act (uniformly random in
the first `random_steps` vector steps; afterwards the training-mode encoder and a sampled
action), step every sub-env of every seed, push the transition into the window and the replay,
and when an episode ends, reset every sub-env (episodes are synchronous: the paper's tasks never
terminate). Once learning has started, the next episode is preceded by the warm-up
(`rollout.warm_up`) and a reset. Frames count scored steps only, per seed (`n` per vector step).

Written by hand rather than with TorchRL's `Collector`: that auto-resets sub-envs one by one
and has no hook for an unscored warm-up rollout between episodes, nor for seeds stacked as a
batch dimension; the loop below is the whole protocol.
"""

from __future__ import annotations

import torch

from lit_dmash.agent.agent import Agent
from lit_dmash.agent.update import NonFiniteError
from lit_dmash.envs.simulators import SimulationFailure
from lit_dmash.experience.replay import EpisodeReplay
from lit_dmash.experience.rollout import ContextWindow, SeedEnvs, act
from lit_dmash.nets.rng import SeedRandom


class SimulationFailed(NonFiniteError):
    """A simulator failed during collection (`SimulationFailure`); nothing of that step was stored."""

    def __init__(self, message: str, simulations: int) -> None:
        super().__init__(message)
        self.simulations = simulations  # how many sub-envs failed in that step


class Collector:
    """One rank's envs, window, episode bookkeeping and replay; see the module docstring."""

    def __init__(
        self,
        agent: Agent,
        envs: SeedEnvs,
        replay: EpisodeReplay,
        window: int,
        random_steps: int,
        warm_up: bool = True,
    ) -> None:
        self.agent, self.envs, self.replay = agent, envs, replay
        self.random_steps, self.use_warm_up = random_steps, warm_up
        self.random = SeedRandom(agent.seeds, stream=3)
        self.vector_steps = 0
        self.episodes = 0
        obs, self.context = envs.reset()
        self.obs = obs
        self.window = ContextWindow(window, obs, envs.action_dim)
        self.returns = torch.zeros(obs.shape[:2])
        self.finished_returns: list[torch.Tensor] = []  # [S] mean over sub-envs, per finished episode
        self._needs_warm_up = False
        self.poisoned = False  # a non-finite step was met: the envs' state is not worth saving
        self.replay.start_episode(self.window.tensors, self.context)

    @property
    def learning(self) -> bool:
        return self.vector_steps >= self.random_steps

    @property
    def frames(self) -> int:
        """Scored env steps per seed."""
        return self.vector_steps * self.envs.num_envs

    def _random_action(self) -> torch.Tensor:
        low, high = self.envs.action_low, self.envs.action_high
        u = self.random.uniform((self.envs.num_envs, self.envs.action_dim))
        return low + (high - low) * u

    def step(self) -> None:
        """One vector step (and the warm-up before it, when an episode starts after learning began).

        Raises `NonFiniteError` (a `SimulationFailed` for a simulator failure) and stores nothing of
        the step when it meets a non-finite observation or reward or a failed simulation; the
        collector is then `poisoned` until `recover()` (or a resume) restarts the episodes.
        """
        try:
            self._step()
        except SimulationFailure as failure:
            self.poisoned = True
            index = failure.seed_index
            seed = f"seed {self.agent.seeds[index]}, " if index is not None else ""
            message = f"{failure} ({seed}vector step {self.vector_steps})"
            raise SimulationFailed(message, len(failure.sub_envs)) from failure

    def _step(self) -> None:
        if self._needs_warm_up:
            self._warm_up()
        if self.learning:
            action = act(self.agent, self.obs, self.window, self.context, deterministic=False)
        else:
            action = self._random_action()
        action = action.to(self.obs.device)
        result = self.envs.step(action)
        if not (torch.isfinite(result.next_obs).all() and torch.isfinite(result.reward).all()):
            self.poisoned = True  # nothing of this step is stored; `recover` or a resume restarts the episodes
            raise NonFiniteError(f"non-finite observation or reward at vector step {self.vector_steps}")
        self.window.push(self.obs, action, result.next_obs)
        if self.agent.normalizer is not None:  # our `context.input_norm: running` option
            entry = torch.cat([self.obs, action, result.next_obs - self.obs], dim=-1)
            self.agent.normalizer.update(entry.to(self.agent.log_alpha.device))
        done = result.done
        self.replay.add(
            obs=self.obs,
            action=action,
            next_obs=result.next_obs,
            reward=result.reward,
            terminated=result.terminated,
            done=done,
        )
        self.returns += result.reward.cpu()
        self.vector_steps += 1
        self.obs, self.context = result.next_obs, result.context
        if done.any():
            self._end_episode()

    def _end_episode(self) -> None:
        self.finished_returns.append(self.returns.mean(dim=1))
        self.returns = torch.zeros_like(self.returns)
        self.episodes += 1
        self.replay.end_episode()
        self.obs, self.context = self.envs.reset()
        if self.learning and self.use_warm_up:
            self._needs_warm_up = True
        else:
            self.replay.start_episode(self.window.tensors, self.context)

    def _warm_up(self) -> None:
        from lit_dmash.experience.rollout import warm_up

        warm_up(self.agent, self.envs, self.window)
        self.obs, self.context = self.envs.reset()
        self._needs_warm_up = False
        self.replay.start_episode(self.window.tensors, self.context)

    def recover(self) -> None:
        """After a non-finite step: drop the episodes in flight (keeping what the replay has) and reset.

        The dropped step still counts against the budget (it was collected), so a stream that stays
        non-finite cannot stall the run.
        """
        self.vector_steps += 1
        if self.replay.position > self.replay.window:
            self.replay.end_episode()
        self.returns = torch.zeros_like(self.returns)
        self.obs, self.context = self.envs.reset()
        self._needs_warm_up = self.learning and self.use_warm_up
        if not self._needs_warm_up:
            self.replay.start_episode(self.window.tensors, self.context)
        self.poisoned = False

    def pop_finished_returns(self) -> torch.Tensor | None:
        """Mean return per seed of the episodes finished since the last call, `[S]`, or None."""
        if not self.finished_returns:
            return None
        out = torch.stack(self.finished_returns).mean(0)
        self.finished_returns.clear()
        return out

    # -- checkpoints
    def state_dict(self) -> dict:
        envs = [env.env_state() if hasattr(env, "env_state") and not self.poisoned else None for env in self.envs.envs]
        return {
            "poisoned": self.poisoned,
            "vector_steps": self.vector_steps,
            "episodes": self.episodes,
            "obs": self.obs.cpu(),
            "context": self.context.cpu(),
            "window": [t.cpu() for t in self.window.tensors],
            "returns": self.returns.clone(),
            "needs_warm_up": self._needs_warm_up,
            "random": self.random.state_dict(),
            "envs": envs,
            "replay": self.replay.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        device = self.obs.device
        self.vector_steps, self.episodes = state["vector_steps"], state["episodes"]
        self.obs, self.context = state["obs"].to(device), state["context"].to(device)
        self.window.obs, self.window.action, self.window.next_obs = (t.to(device) for t in state["window"])
        self.returns = state["returns"].clone()
        self._needs_warm_up = state["needs_warm_up"]
        self.random.load_state_dict(state["random"])
        for env, env_state in zip(self.envs.envs, state["envs"], strict=True):
            if env_state is not None and hasattr(env, "load_env_state"):
                env.load_env_state(env_state)
        self.replay.load_state_dict(state["replay"])
        if state.get("poisoned"):
            self.recover()
