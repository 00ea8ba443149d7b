"""The authors' zero-shot evaluation of one agent on several splits at once.

Kept apart from the LightningModule (which only supplies its envs and settings) so that the
envs an evaluation builds are closed on every path, and a failed simulation is reported with
its seed and split, in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from lit_dmash.agent.agent import Agent
from lit_dmash.agent.update import NonFiniteError
from lit_dmash.envs.simulators import SimulationFailure
from lit_dmash.experience.rollout import EnvGroup, SeedEnvs, run_episodes


@torch.no_grad()
def evaluate_splits(
    agent: Agent,
    make_split_envs: Callable[[str], SeedEnvs],
    splits: Sequence[str],
    seeds: Sequence[int],
    window: int,
    episodes: int,
    warm: bool,
) -> dict[str, dict[str, torch.Tensor]]:
    """Per split `{returns [S, C, episodes], contexts [S, C, c]}`: `episodes` per context.

    The splits step together (`EnvGroup`: one policy pass per step for all), each scoring what it
    scores alone (on the CPU bit for bit). `make_split_envs` builds a split's envs afresh, so that
    every evaluation sees the same start states; they are closed whatever happens.
    """
    parts: list[SeedEnvs] = []
    try:
        for split in splits:
            parts.append(make_split_envs(split))
        group = EnvGroup(parts)
        out = run_episodes(agent, group, window, episodes, warm)
    except SimulationFailure as failure:  # an episode's return would be made up: never skipped
        index, split = failure.seed_index or 0, splits[getattr(failure, "part_index", 0)]
        raise NonFiniteError(f"{failure} (seed {seeds[index]}) while evaluating split {split}") from failure
    finally:
        for part in parts:
            part.close()
    return dict(zip(splits, group.per_part(out), strict=True))
