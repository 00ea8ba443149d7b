"""The sign-pattern extension's MuJoCo domains, registered by name for `make_env`.

Our own extension of the Actuator Inversion Benchmark (per-actuator sign patterns, permutations,
continuous scales, a fresh context per episode, an `eval_pattern` split); the paper's tasks of
the same simulators are `ball_in_cup`, `cheetah`, `walker`, `walker_gym` (`lit_dmash.envs.paper`).

| name                | simulator                      | actuators | default horizon |
|---------------------|--------------------------------|-----------|-----------------|
| `ball_in_cup_signs` | dm_control `ball_in_cup-catch` | 2         | 1000            |
| `cheetah_signs`     | dm_control `cheetah-run`       | 6         | 1000            |
| `walker_signs`      | dm_control `walker-walk`       | 6         | 1000            |
| `walker_gym_signs`  | gymnasium `Walker2d-v5`        | 6         | 1000            |

Context spaces and splits: `lit_dmash/envs/extension/<name>.yaml`; permutation variants under
`extension/variants/` (pass one as the `context_file` task option, see `variant_file`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from lit_dmash.envs.extension.contexts import ContextSpace

if TYPE_CHECKING:  # MuJoCo is imported when a MuJoCo env is built, not when lit_dmash.envs is
    from lit_dmash.envs.extension.mujoco_env import BatchedMujocoEnv
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
            return DMControlSimulator.from_suite(*self.ident, seed=seed)
        return GymSimulator.from_id(*self.ident, seed=seed)


DOMAINS: dict[str, Domain] = {
    "ball_in_cup_signs": Domain("dm_control", ("ball_in_cup", "catch")),
    "cheetah_signs": Domain("dm_control", ("cheetah", "run")),
    "walker_signs": Domain("dm_control", ("walker", "walk")),
    "walker_gym_signs": Domain("gymnasium", ("Walker2d-v5",)),
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
    """Build an extension MuJoCo env; register one with `register_extension_env(name, partial(make_mujoco_env, d))`."""
    from lit_dmash.envs.extension.mujoco_env import BatchedMujocoEnv

    return BatchedMujocoEnv(
        context_space,
        domain.simulator,
        split=split,
        num_envs=num_envs,
        seed=seed,
        device=device,
        horizon=domain.horizon if horizon is None else horizon,
    )
