"""The Actuator Inversion Benchmark's MuJoCo domains, registered by name for `make_env`.

| name          | simulator                      | actuators | default horizon |
|---------------|--------------------------------|-----------|-----------------|
| `ball_in_cup` | dm_control `ball_in_cup-catch` | 2         | 1000            |
| `cheetah`     | dm_control `cheetah-run`       | 6         | 1000            |
| `walker`      | dm_control `walker-walk`       | 6         | 1000            |
| `walker_gym`  | gymnasium `Walker2d-v5`        | 6         | 1000            |

Context spaces and splits: `conf/envs/<name>.yaml`; permutation variants under
`conf/envs/variants/` (pass one as `context_file`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import torch

from lit_dmash.envs.contexts import ContextSpace
from lit_dmash.envs.registry import register_env

if TYPE_CHECKING:  # MuJoCo is imported when a MuJoCo env is built, not when lit_dmash.envs is
    from lit_dmash.envs.mujoco_batch import BatchedMujocoEnv
    from lit_dmash.envs.simulators import Simulator


@dataclass(frozen=True)
class Domain:
    """How to build one simulation of a domain, and its episode length."""

    kind: str  # "dm_control" or "gymnasium"
    ident: tuple[str, ...]  # (domain, task) or (gymnasium id,)
    horizon: int = 1000

    def simulator(self, seed: int) -> Simulator:
        from lit_dmash.envs.simulators import DMControlSimulator, GymSimulator

        if self.kind == "dm_control":
            return DMControlSimulator(*self.ident, seed=seed)
        return GymSimulator(*self.ident, seed=seed)


DOMAINS: dict[str, Domain] = {
    "ball_in_cup": Domain("dm_control", ("ball_in_cup", "catch")),
    "cheetah": Domain("dm_control", ("cheetah", "run")),
    "walker": Domain("dm_control", ("walker", "walk")),
    "walker_gym": Domain("gymnasium", ("Walker2d-v5",)),
}


def make_mujoco_env(
    domain: Domain,
    context_space: ContextSpace,
    split: str = "train",
    num_envs: int = 1,
    seed: int = 0,
    device: torch.device | str = "cpu",
    horizon: int | None = None,
) -> BatchedMujocoEnv:
    """The registry factory of a MuJoCo domain: `register_env(name)(partial(make_mujoco_env, domain))`."""
    from lit_dmash.envs.mujoco_batch import BatchedMujocoEnv

    return BatchedMujocoEnv(
        context_space,
        domain.simulator,
        split=split,
        num_envs=num_envs,
        seed=seed,
        device=device,
        horizon=domain.horizon if horizon is None else horizon,
    )


for _name, _domain in DOMAINS.items():
    register_env(_name)(partial(make_mujoco_env, _domain))
