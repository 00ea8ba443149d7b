"""A trained agent outside Lightning: `load_agent(checkpoint)` and a TensorDict policy for `env.rollout`.

    from lit_dmash import load_agent
    from lit_dmash.envs import make_env

    agent = load_agent("runs/quickstart/lightning_logs/version_0/checkpoints/last.ckpt")
    env = make_env(agent.config["env"]["name"], "eval_out", num_envs=20)
    rollout = env.rollout(100, agent.act)  # deterministic actions, the context window carried in the tensordict

The checkpoint is read weights-only; the agent is rebuilt from the hyper-parameters saved in it.
`act` is stateful through the tensordict only: it reads `"observation"` (and `"context"` for the
true-context arms), keeps the last K transitions under `"agent_window_*"` and the step it just
took under `"agent_last_*"`, and TorchRL's rollout carries those keys to the next step, so any
number of sub-envs (and `env.rollout`, a collector, or a hand loop) work without hidden state. A
fresh episode is recognised by missing window keys, or by `"is_init"` (add TorchRL's
`InitTracker` transform when a rollout spans several episodes); the window then starts as K
copies of `(obs, 0, obs)`, as the authors' does before any transition. For the paper's protocol
(a K-step warm-up before each scored episode), use the module's `evaluate` or
`lit_dmash.experience.rollout.run_episodes`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase

from lit_dmash.agent.agent import Agent
from lit_dmash.checkpointing import load_safely
from lit_dmash.config import ContextConfig, EnvConfig, ProtocolConfig, SACConfig, without_inert
from lit_dmash.methods import get_method


class LoadedAgent:
    """A trained `Agent` (one seed of it), its config, and `act(td)` for TensorDict rollouts."""

    def __init__(self, agent: Agent, config: dict[str, Any], seed_index: int = 0) -> None:
        self.agent, self.config, self.seed_index = agent.eval(), config, seed_index

    @property
    def window(self) -> int:
        return self.agent.spec.window

    @torch.no_grad()
    def act(self, td: TensorDictBase) -> TensorDictBase:
        """Set `td["action"]` to the deterministic action for `td["observation"]` `[n, d]`."""
        obs = td["observation"]
        window = self._window(td, obs)
        context = self._for_every_seed(td["context"]) if "context" in td else None
        seq = tuple(self._for_every_seed(w) for w in window) if self.agent.encoder is not None else None
        action = self.agent.act(self._for_every_seed(obs), seq, context, deterministic=True)[self.seed_index]
        td.set("action", action)
        for key, value in zip(WINDOW_KEYS, window, strict=True):
            td.set(key, value)
        td.set("agent_last_obs", obs)
        td.set("agent_last_action", action)
        return td

    def _for_every_seed(self, x: torch.Tensor) -> torch.Tensor:
        """`[n, ...]` -> `[S, n, ...]`: the agent computes all its seeds; `act` returns `seed_index`'s."""
        return x.unsqueeze(0).expand(self.agent.num_seeds, *x.shape)

    def _window(self, td: TensorDictBase, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The K transitions before `obs`: pushed from the previous step, or fresh at an episode start."""
        init = td.get("is_init", None)
        if WINDOW_KEYS[0] not in td or (init is not None and bool(init.any())):
            copies = obs.unsqueeze(-2).expand(*obs.shape[:-1], self.window, obs.shape[-1])
            actions = obs.new_zeros(*obs.shape[:-1], self.window, self.agent.spec.action_dim)
            return copies.clone(), actions, copies.clone()
        new = (td["agent_last_obs"], td["agent_last_action"], obs)
        return tuple(
            torch.cat([td[key][..., 1:, :], value.unsqueeze(-2)], dim=-2)
            for key, value in zip(WINDOW_KEYS, new, strict=True)
        )


WINDOW_KEYS = ("agent_window_obs", "agent_window_action", "agent_window_next_obs")


def module_from_config(config: dict[str, Any]):
    """A `ContextualSAC` built from the plain hyper-parameters a checkpoint stores."""
    from lit_dmash.module import ContextualSAC

    def group(cls, values: dict) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    return ContextualSAC(
        method=config["method"],
        env=group(EnvConfig, config["env"]),
        protocol=group(ProtocolConfig, config["protocol"]),
        sac=group(SACConfig, config["sac"]),
        # Checkpoints from before inert options were refused may hold some: they did nothing, so drop them.
        context=without_inert(get_method(config["method"]), group(ContextConfig, config["context"])),
        seed=config["seed"],
        seeds=config["seeds"],
    )


def load_agent(path: str | Path, seed: int | None = None) -> LoadedAgent:
    """The trained agent of a checkpoint (weights-only read), for seed `seed` (default: its first seed)."""
    checkpoint = load_safely(path, map_location="cpu")
    config = dict(checkpoint["hyper_parameters"])
    module = module_from_config(config)
    module.load_state_dict(checkpoint["state_dict"])
    seeds = list(module.seeds)
    index = 0 if seed is None else seeds.index(seed)
    return LoadedAgent(module.agent, config, index)
