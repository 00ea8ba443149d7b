"""The paper's tasks as data, and the authors' rule that picks each split's fixed contexts.

A task is a YAML file shipped in `lit_dmash/envs/tasks/<name>.yaml`: its context keys in the
authors' order (default, train range `[lo, hi]`, out range `[olo, ohi]`, or `binary: true`), its
group, episode length, the authors' window K, update budget N and env id.

The selection rule (the authors' `setup_context_env` / `select_context_instances`), with margin
`m = 0.01 * (hi - lo)` and every value rounded to 4 decimals:

- grids: train = 50 points from lo to hi; eval_in = 50 points from lo + m to hi - m; eval_out =
  25 points from olo to lo - m, then 25 from hi + m to ohi. A binary key is {-1, +1} everywhere.
- <= 2 keys: the full product of the grids, sorted lexicographically in key order, and the entries
  at `floor(linspace(0, n - 1, C))`; with fewer than C candidates, each is repeated C // n times
  and the first C % n are appended.
- > 2 keys: C independent draws per key (`np.random.choice` on its grid, legacy numpy
  `RandomState(seed)`), drawn for train, then eval_in, then eval_out from one stream, each split's
  instances then sorted lexicographically. So these contexts depend on the run seed.

Contexts are float64 here (the exact grid values the simulators are built with).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import torch
import yaml

from lit_dmash.errors import ConfigError, check_int
from lit_dmash.names import GROUPS, SPLITS

TASK_OPTIONS = ("k", "reset_streams")
RESET_STREAMS = ("shared", "independent")
GRID_POINTS, OUT_POINTS_PER_SIDE, DECIMALS = 50, 25, 4


@dataclass(frozen=True)
class ContextKey:
    """One varied quantity: continuous with train/out ranges, or a binary +-1 factor."""

    name: str
    default: float
    train: tuple[float, float] = (-1.0, 1.0)
    out: tuple[float, float] = (-1.0, 1.0)
    binary: bool = False

    @property
    def margin(self) -> float:
        return abs(self.train[1] - self.train[0]) * 0.01

    def grid(self, split: str) -> list[float]:
        """The candidate values of this key in `split` (the authors' grids, 4 decimals)."""
        if self.binary:
            return [-1.0, 1.0]
        (lo, hi), (olo, ohi), m = self.train, self.out, self.margin
        if split == "train":
            return np.linspace(lo, hi, GRID_POINTS).round(DECIMALS).tolist()
        if split == "eval_in":
            return np.linspace(lo + m, hi - m, GRID_POINTS).round(DECIMALS).tolist()
        below = np.linspace(olo, lo - m, OUT_POINTS_PER_SIDE).round(DECIMALS).tolist()
        return below + np.linspace(hi + m, ohi, OUT_POINTS_PER_SIDE).round(DECIMALS).tolist()


@dataclass(frozen=True)
class TaskSpec:
    """A paper task: its context keys (authors' order) and the authors' run settings."""

    name: str
    keys: tuple[ContextKey, ...]
    group: str
    horizon: int
    window: int
    updates: int
    authors_id: str | None

    @property
    def context_names(self) -> list[str]:
        return [key.name for key in self.keys]

    @property
    def binary_keys(self) -> list[str]:
        return [key.name for key in self.keys if key.binary]

    @classmethod
    def from_dict(cls, name: str, data: Any, **options: Any) -> TaskSpec:
        """Validate a parsed task YAML; `options` fill a `repeat` block (ode_k's `k`)."""
        if not isinstance(data, dict):
            raise ConfigError(f"{name}.yaml", data, "expected a mapping with keys, group, horizon, window, updates")
        allowed = {"authors_id", "group", "horizon", "window", "updates", "keys", "repeat"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(f"{name}.{unknown[0]}", data[unknown[0]], f"allowed fields: {sorted(allowed)}")
        if data.get("group") not in GROUPS:
            raise ConfigError(f"{name}.group", data.get("group"), f"expected one of {list(GROUPS)}")
        for field in ("horizon", "window", "updates"):
            check_int(f"{name}.{field}", data.get(field))
        raw_keys, authors_id = data.get("keys"), data.get("authors_id")
        if not isinstance(raw_keys, list) or not raw_keys:
            raise ConfigError(f"{name}.keys", raw_keys, "expected a non-empty list of context keys")
        repeat_option = data["repeat"].get("option") if isinstance(data.get("repeat"), dict) else None
        for option in options:
            if option != repeat_option:
                allowed = ["reset_streams", *([repeat_option] if repeat_option else [])]
                raise ConfigError("task option", option, f"task {name!r} accepts {allowed}")
        if "repeat" in data:  # one key template repeated `option` times: parameter_0..parameter_{k-1}
            count = _repeat_count(name, data["repeat"], options)
            raw_keys = [{**key, "name": key["name"].format(j=j)} for j in range(count) for key in raw_keys]
            authors_id = None if authors_id is None else authors_id.format(**{data["repeat"]["option"]: count})
        keys = tuple(_parse_key(f"{name}.keys.{i}", raw) for i, raw in enumerate(raw_keys))
        return cls(name, keys, data["group"], data["horizon"], data["window"], data["updates"], authors_id)


def _repeat_count(name: str, repeat: Any, options: dict[str, Any]) -> int:
    if not isinstance(repeat, dict) or set(repeat) != {"option", "low", "high"}:
        raise ConfigError(f"{name}.repeat", repeat, "expected {option: <task option>, low: <int>, high: <int>}")
    option, low, high = repeat["option"], repeat["low"], repeat["high"]
    if option not in options:
        raise ConfigError(option, None, f"task {name!r} needs the task option {option} (an integer in {low}..{high})")
    check_int(option, options[option], low, high)
    return options[option]


def _parse_key(field: str, raw: Any) -> ContextKey:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ConfigError(field, raw, "expected a mapping with name, default and train/out ranges or binary: true")
    name = raw["name"]
    default = raw.get("default")
    if not _finite(default):
        raise ConfigError(f"{field}.default", default, "expected a finite number")
    if raw.get("binary", False) is True:
        if set(raw) - {"name", "default", "binary"}:
            raise ConfigError(f"{field}.{name}", raw, "a binary key takes only name, default and binary (values +-1)")
        return ContextKey(name, float(default), binary=True)
    ranges = []
    for part in ("train", "out"):
        rng = raw.get(part)
        if not (isinstance(rng, list) and len(rng) == 2 and all(map(_finite, rng)) and rng[0] < rng[1]):
            raise ConfigError(f"{field}.{part}", rng, "expected [low, high] with finite low < high")
        ranges.append((float(rng[0]), float(rng[1])))
    key = ContextKey(name, float(default), ranges[0], ranges[1])
    (lo, hi), (olo, ohi), m = key.train, key.out, key.margin
    if not (olo < lo - m and hi + m < ohi):
        raise ConfigError(
            f"{field}.out",
            list(key.out),
            f"expected out range strictly outside train {list(key.train)} plus the margin {m:g}: "
            f"out low < {lo - m:g} and out high > {hi + m:g}",
        )
    return key


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@functools.cache
def _task_yaml(name: str) -> dict[str, Any]:
    path = resources.files("lit_dmash.envs").joinpath("tasks", f"{name}.yaml")
    return yaml.safe_load(path.read_text())


def task_names() -> list[str]:
    """The paper tasks shipped with the package."""
    folder = resources.files("lit_dmash.envs").joinpath("tasks")
    return sorted(entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def task_spec(name: str, **task_options: Any) -> TaskSpec:
    """The validated spec of paper task `name` (`k=` for ode_k)."""
    if name not in task_names():
        raise ConfigError("env", name, f"expected one of the paper tasks {task_names()}")
    return TaskSpec.from_dict(name, _task_yaml(name), **task_options)


def paper_task_window(name: str, **task_options: Any) -> int:
    """The authors' window K of paper task `name`; a repeat option left out (ode_k's k) takes its lowest value."""
    options = {k: v for k, v in task_options.items() if k not in ("reset_streams", "context_file")}
    repeat = _task_yaml(name).get("repeat") if name in task_names() else None
    if isinstance(repeat, dict) and repeat.get("option") not in options:
        options[repeat["option"]] = repeat.get("low")  # the window is the same for every k
    return task_spec(name, **options).window


def context_names(name: str, **task_options: Any) -> list[str]:
    """The varied keys of task `name`, in the authors' order (the columns of its contexts)."""
    return task_spec(name, **task_options).context_names


def check_split(spec: TaskSpec, split: str) -> None:
    if split not in SPLITS:
        raise ConfigError("split", split, f"task {spec.name!r} has splits {list(SPLITS)}")


def select_instances(grids: list[list[float]], count: int, rng: np.random.RandomState) -> list[tuple[float, ...]]:
    """`count` contexts from per-key grids, by the authors' rule (see the module docstring)."""
    if len(grids) <= 2:
        mesh = sorted(itertools.product(*grids))
        if len(mesh) < count:
            idx = np.repeat(np.arange(len(mesh)), count // len(mesh))
            idx = np.concatenate([idx, np.arange(count % len(mesh))]).astype(int)
        else:
            idx = np.linspace(0, len(mesh) - 1, count, dtype=int)
        return [mesh[i] for i in idx]
    draws = [tuple(float(rng.choice(grid)) for grid in grids) for _ in range(count)]
    return sorted(draws)


def split_contexts(
    name: str, split: str, contexts_per_split: int = 20, seed: int = 0, **task_options: Any
) -> torch.Tensor:
    """The `[contexts_per_split, n_keys]` float64 contexts of `split`, as the authors select them."""
    spec = task_spec(name, **{k: v for k, v in task_options.items() if k != "reset_streams"})
    check_split(spec, split)
    check_int("contexts_per_split", contexts_per_split)
    check_int("seed", seed, minimum=None)
    rng = np.random.RandomState(seed % 2**32)  # one stream for train, eval_in, eval_out, in that order
    for current in SPLITS:
        chosen = select_instances([key.grid(current) for key in spec.keys], contexts_per_split, rng)
        if current == split:
            return torch.tensor(chosen, dtype=torch.float64)
    raise AssertionError("unreachable")
