"""The names the code, the configs and the result folders share, each spelled once.

Torch-free on purpose: the grid, submitit's job processes and the aggregation import it without
pulling in torch or Lightning. Modules that used to define these names re-export them from here.
"""

from __future__ import annotations

import re

SPLITS = ("train", "eval_in", "eval_out")
"""The context splits every task has: train, interpolation (eval_in), extrapolation (eval_out)."""

GROUPS = ("non-overlapping", "weakly non-overlapping", "overlapping")
"""The paper's task groups (a task's YAML names one), in the paper's order."""

PAPER_ARMS = ("dr", "concat", "da", "dma", "dma_pearl", "dma_star", "dmash")
"""The paper's seven arms, in its order (`lit_dmash.methods.METHODS` holds them and the ablations)."""

BASELINES = ("dr", "concat")
"""The arms relative gains are reported against by default."""

CHALLENGER = "dmash"
"""The arm whose probability of improvement over the others is reported."""

ADAPTER_KINDS = ("bottleneck", "scale_shift", "lowrank", "full")
"""`--model.context.adapter` values (`lit_dmash.nets.adapters` builds them); the paper's is bottleneck."""

ENCODER_KINDS = ("lstm", "plstm", "meanpool")
"""`--model.context.encoder` values (`lit_dmash.nets.encoder` builds them); meanpool is ours."""

SEED_FOLDER_PATTERN = "seed*"
"""A glob matching seed folders (and, on its own, some other names: check with `parse_seed_folder`)."""

_SEED_FOLDER = re.compile(r"seed(\d+)")


def seed_folder(seed: int) -> str:
    """The folder of one seed's outputs (`seed<k>`) under a run's `default_root_dir` or a grid cell."""
    return f"seed{seed}"


def parse_seed_folder(name: str) -> int | None:
    """The seed of a folder named by `seed_folder`; None for any other name."""
    match = _SEED_FOLDER.fullmatch(name)
    return int(match.group(1)) if match else None
