"""Statistics of a grid's final scores: min-max normalisation, IQM with stratified-bootstrap CIs,
probability of improvement and relative gains, as the paper aggregates them.

`rliable` (Agarwal et al., 2021) does the statistics: the interquartile mean (IQM), 95% percentile
CIs from a stratified bootstrap over runs (each task resampled on its own) and the probability of
improvement with stratified independent-bootstrap CIs. rliable draws from numpy's global generator,
so every call here seeds it (and restores the caller's state afterwards): outputs are reproducible.

Scores are nested dicts `{task: {method: {split: {seed: AER}}}}` (see `lit_dmash.analysis.aggregate.collect`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats

from lit_dmash.names import BASELINES, CHALLENGER, GROUPS, PAPER_ARMS, SPLITS

Scores = dict[str, dict[str, dict[str, dict[int, float]]]]  # task -> method -> split -> seed -> AER

ARMS = PAPER_ARMS  # the paper's seven, in its order (the name results' readers import)
GROUP_TASKS = {
    GROUPS[0]: ("di", "di_perm", "cartpole", "cheetah", "reacher_easy", "reacher_hard", "reacher_perm"),
    GROUPS[1]: ("ode", "ode_k"),
    GROUPS[2]: ("di_friction", "ball_in_cup", "walker", "walker_gym", "hopper_gym"),
}
TASK_GROUPS = {task: group for group, tasks in GROUP_TASKS.items() for task in tasks}
UNGROUPED = "ungrouped"

# Min-max bounds per task. The paper's Table 5 was not available: these are OUR natural bounds, from a
# per-step reward in [0, 1] over the episode (DI family 100 steps, ODE 200, DMC 1000). None: the task has
# no natural bound, so the min and max of its final AERs over the grid being aggregated are used.
NATURAL_BOUNDS: dict[str, tuple[float, float] | None] = {
    **dict.fromkeys(("di", "di_friction", "di_perm"), (0.0, 100.0)),
    **dict.fromkeys(("ode", "ode_k"), (0.0, 200.0)),
    **dict.fromkeys(
        ("cartpole", "ball_in_cup", "walker", "cheetah", "reacher_easy", "reacher_hard", "reacher_perm"), (0.0, 1000.0)
    ),
    **dict.fromkeys(("walker_gym", "hopper_gym"), None),
}


# --- seeding -----------------------------------------------------------------------------------


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed numpy's global generator (rliable's bootstrap draws from it) and restore it on exit."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


# --- normalisation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bounds:
    """Min-max bounds of one task and where they come from (`natural`, `override` or `data`)."""

    low: float
    high: float
    source: str

    def normalise(self, x: Any) -> Any:
        """(x - low) / (high - low); a degenerate range (high == low) divides by 1."""
        width = self.high - self.low
        return (np.asarray(x, dtype=np.float64) - self.low) / (width if width > 0 else 1.0)

    def describe(self) -> str:
        sources = {
            "natural": "natural bound (ours; the paper's Table 5 was not available)",
            "override": "given by the user",
            "data": "no natural bound: min / max of the final AERs over all runs and splits of this grid",
        }
        return f"[{self.low:g}, {self.high:g}]: {sources[self.source]}"


def load_bounds(path: str | Path) -> dict[str, tuple[float, float] | None]:
    """A YAML or JSON file `{task: [low, high]}` (or `{task: null}` for min / max of the grid)."""
    import yaml

    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping task -> [low, high] or null")
    return {task: None if value is None else _pair(task, value) for task, value in raw.items()}


def _pair(task: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2 or float(value[0]) >= float(value[1]):
        raise ValueError(f"bounds of {task!r}: expected [low, high] with low < high, got {value!r}")
    return float(value[0]), float(value[1])


def resolve_bounds(scores: Scores, overrides: Mapping[str, tuple[float, float] | None] | None = None) -> dict:
    """`{task: Bounds}`: the override, else the natural bound, else the grid's min / max of that task."""
    overrides = dict(overrides or {})
    resolved = {}
    for task, methods in scores.items():
        bound, source = (overrides[task], "override") if task in overrides else (NATURAL_BOUNDS.get(task), "natural")
        if bound is None:
            values = [v for splits in methods.values() for seeds in splits.values() for v in seeds.values()]
            bound, source = (min(values), max(values)), "data"
        resolved[task] = Bounds(float(bound[0]), float(bound[1]), source)
    return resolved


def normalise_scores(scores: Scores, bounds: Mapping[str, Bounds]) -> Scores:
    """The same nested dict with every AER min-max normalised by its task's bounds."""
    return {
        task: {
            method: {
                split: {seed: float(bounds[task].normalise(v)) for seed, v in seeds.items()}
                for split, seeds in splits.items()
            }
            for method, splits in methods.items()
        }
        for task, methods in scores.items()
    }


# --- estimators --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95% CI."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci": [self.low, self.high]}


def column_iqm(matrix: np.ndarray) -> np.ndarray:
    """IQM of each column: rliable's `aggregate_iqm` (scipy's 25% trimmed mean) along axis 0 in one call."""
    return scipy.stats.trim_mean(matrix, proportiontocut=0.25, axis=0)


def _bootstrap(
    score_dict: dict[str, Any], func: Callable[..., np.ndarray], reps: int, seed: int, confidence: float = 0.95
) -> tuple[dict, dict]:
    from rliable import library as rly

    with seeded(seed):  # rliable's resampling ignores `random_state` and draws from np.random
        return rly.get_interval_estimates(score_dict, func, reps=reps, confidence_interval_size=confidence)


def per_column_iqm(matrix: np.ndarray, reps: int = 2000, seed: int = 0) -> list[Interval]:
    """IQM [95% CI] of each column of `[runs, columns]`, columns resampled independently (stratified)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    point, interval = _bootstrap({"m": matrix}, column_iqm, reps, seed)
    return [Interval(float(p), float(lo), float(hi)) for p, lo, hi in zip(point["m"], *interval["m"], strict=True)]


def aggregate_iqm(
    matrix: np.ndarray, subsets: Mapping[str, Sequence[int]], reps: int = 2000, seed: int = 0
) -> dict[str, Interval]:
    """IQM [95% CI] over runs and tasks of each column subset of one `[runs, tasks]` matrix.

    One stratified bootstrap (runs resampled within each task) serves every subset, e.g.
    `{"all": [0, 1, 2], "overlapping": [2]}`.
    """
    from rliable import metrics

    names = list(subsets)
    columns = [list(subsets[name]) for name in names]

    def func(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x[:, cols]) for cols in columns])

    point, interval = _bootstrap({"m": np.asarray(matrix, dtype=np.float64)}, func, reps, seed)
    return {
        name: Interval(float(point["m"][i]), float(interval["m"][0, i]), float(interval["m"][1, i]))
        for i, name in enumerate(names)
    }


def iqm_with_ci(returns: Sequence[float], reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(IQM, CI low, CI high) of one task's per-seed scores."""
    (interval,) = per_column_iqm(np.asarray(returns, dtype=np.float64).reshape(-1, 1), reps=reps, seed=seed)
    return interval.value, interval.low, interval.high


def probability_of_improvement(x: np.ndarray, y: np.ndarray, reps: int = 2000, seed: int = 0) -> Interval:
    """P(X > Y) [95% CI]: rliable's probability of improvement of `x` `[runs_x, tasks]` over `y` `[runs_y, tasks]`.

    Per task the Mann-Whitney U statistic / (runs_x runs_y) (ties count one half), averaged over
    tasks; CIs from resampling the runs of x and of y independently within each task.
    """
    from rliable import metrics

    def func(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.array([metrics.probability_of_improvement(a, b)])

    point, interval = _bootstrap({"m": [np.asarray(x, float), np.asarray(y, float)]}, func, reps, seed)
    return Interval(float(point["m"][0]), float(interval["m"][0, 0]), float(interval["m"][1, 0]))


def mean_with_ci(values: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over runs (axis 0) of `[runs, ...]` with a pointwise 95% bootstrap CI: `(mean, low, high)`."""
    values = np.asarray(values, dtype=np.float64)
    shape = values.shape[1:]
    flat = values.reshape(len(values), -1)  # [runs, points]: each point a stratum, as in rliable's curves

    def func(x: np.ndarray) -> np.ndarray:
        return x.mean(axis=0).reshape(-1)

    point, interval = _bootstrap({"m": flat}, func, reps, seed)
    return point["m"].reshape(shape), interval["m"][0].reshape(shape), interval["m"][1].reshape(shape)


def relative_gain(method: float, baseline: float) -> float | None:
    """`(R_method - R_baseline) / |R_baseline|`, the paper's relative improvement; None when R_baseline = 0."""
    if baseline == 0 or not (math.isfinite(method) and math.isfinite(baseline)):
        return None
    return (method - baseline) / abs(baseline)


# --- the whole grid --------------------------------------------------------------------------------


def method_order(methods: Sequence[str], baselines: Sequence[str] = BASELINES) -> list[str]:
    """Baselines first (in the given order), then the paper's arms in its order, then the rest alphabetically."""
    rest = [m for m in methods if m not in baselines]
    return (
        [b for b in baselines if b in methods]
        + [a for a in ARMS if a in rest]
        + sorted(m for m in rest if m not in ARMS)
    )


def group_order(groups: Sequence[str]) -> list[str]:
    """The paper's groups in its order, then any other group alphabetically."""
    return [g for g in GROUPS if g in groups] + sorted(set(groups) - set(GROUPS))


def task_groups(tasks: Sequence[str], declared: Mapping[str, str] | None = None) -> dict[str, str]:
    """`{task: group}`: as the run files declare it, else the paper's grouping, else `ungrouped`."""
    declared = declared or {}
    return {task: declared.get(task) or TASK_GROUPS.get(task, UNGROUPED) for task in tasks}


def split_order(scores: Scores) -> list[str]:
    """Splits present anywhere, train / eval_in / eval_out first."""
    present = {s for methods in scores.values() for splits in methods.values() for s in splits}
    return [s for s in SPLITS if s in present] + sorted(present - set(SPLITS))


def seed_stats(per_seed: Mapping[int, float]) -> dict[str, Any]:
    """Mean and (population, ddof = 0) std over seeds, with the seeds and their scores in seed order."""
    seeds = sorted(per_seed)
    values = np.array([per_seed[s] for s in seeds], dtype=np.float64)
    return {"seeds": seeds, "aer": values.tolist(), "mean": float(values.mean()), "std": float(values.std())}


def task_table(scores: Scores, task: str, bounds: Bounds, reps: int, seed: int) -> dict[str, dict[str, dict]]:
    """`{method: {split: {seeds, aer, mean, std, iqm, ci, normalised: {value, ci}}}}` for one task.

    The normalised IQM [CI] is the raw one mapped through the task's min-max bounds (an increasing
    affine map commutes with the IQM and with percentile CIs), so it uses the same runs and draws.
    """
    table: dict[str, dict[str, dict]] = {}
    for method, splits in scores[task].items():
        names = [s for s in SPLITS if s in splits] + sorted(set(splits) - set(SPLITS))
        counts = {len(splits[s]) for s in names}
        intervals = {}
        for count in sorted(counts):  # columns of one bootstrap must share their number of runs
            same = [s for s in names if len(splits[s]) == count]
            matrix = np.array([[splits[s][k] for k in sorted(splits[s])] for s in same]).T
            intervals.update(zip(same, per_column_iqm(matrix, reps=reps, seed=seed), strict=True))
        table[method] = {}
        for split in names:
            iv = intervals[split]
            norm = Interval(*(float(bounds.normalise(v)) for v in (iv.value, iv.low, iv.high)))
            table[method][split] = {
                **seed_stats(splits[split]),
                "iqm": iv.value,
                "ci": [iv.low, iv.high],
                "normalised": norm.as_dict(),
            }
    return table


def score_matrix(normalised: Scores, method: str, split: str, tasks: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """`[runs, tasks]` normalised scores of `method` on the `tasks` it has run, and those tasks.

    A stratified bootstrap needs the same number of runs per task: tasks with more runs keep their
    lowest-numbered seeds (the count used is the matrix's first dimension).
    """
    present = [t for t in tasks if split in normalised[t].get(method, {})]
    if not present:
        return np.zeros((0, 0)), []
    per_task = [normalised[t][method][split] for t in present]
    runs = min(len(seeds) for seeds in per_task)
    return np.array([[seeds[k] for k in sorted(seeds)[:runs]] for seeds in per_task]).T, present


def aggregate_scopes(
    normalised: Scores, groups: Mapping[str, str], methods: Sequence[str], splits: Sequence[str], reps: int, seed: int
) -> dict[str, dict[str, dict[str, dict]]]:
    """`{scope: {split: {method: {value, ci, tasks, runs, most_runs}}}}` with scopes `all` and each group.

    `runs` is the number of runs per task the bootstrap used; `most_runs` the most any task had (see
    `score_matrix`).
    """
    tasks = sorted(normalised)
    scopes = {"all": tasks} | {g: [t for t in tasks if groups[t] == g] for g in group_order(list(groups.values()))}
    out: dict[str, dict[str, dict[str, dict]]] = {scope: {split: {} for split in splits} for scope in scopes}
    for method in methods:
        for split in splits:
            matrix, present = score_matrix(normalised, method, split, tasks)
            most_runs = max((len(normalised[t][method][split]) for t in present), default=0)
            subsets = {s: [present.index(t) for t in ts if t in present] for s, ts in scopes.items()}
            subsets = {s: cols for s, cols in subsets.items() if cols}
            if not subsets:
                continue
            for scope, iv in aggregate_iqm(matrix, subsets, reps=reps, seed=seed).items():
                out[scope][split][method] = {
                    **iv.as_dict(),
                    "tasks": [present[c] for c in subsets[scope]],
                    "runs": int(matrix.shape[0]),
                    "most_runs": most_runs,
                }
    return out


def improvement_of(
    normalised: Scores, challenger: str, methods: Sequence[str], splits: Sequence[str], reps: int, seed: int
) -> dict[str, dict[str, dict]]:
    """`{split: {other: {value, ci, tasks}}}`: P(challenger > other) over the tasks both have run."""
    out: dict[str, dict[str, dict]] = {}
    for split in splits:
        out[split] = {}
        for other in methods:
            common = [t for t in sorted(normalised) if _has_run(normalised[t], (challenger, other), split)]
            if other == challenger or not common:
                continue
            x, _ = score_matrix(normalised, challenger, split, common)
            y, _ = score_matrix(normalised, other, split, common)
            out[split][other] = {**probability_of_improvement(x, y, reps=reps, seed=seed).as_dict(), "tasks": common}
    return out


def _improvement_by_task(
    normalised: Scores,
    tasks: Sequence[str],
    pooled: dict[str, dict[str, dict]],
    challenger: str,
    methods: Sequence[str],
    splits: Sequence[str],
    reps: int,
    seed: int,
) -> dict[str, dict[str, dict[str, dict]]]:
    """`improvement_of` on each of `tasks` (in that order) the challenger ran; with one task that is
    `pooled` itself, so its bootstrap (the slow part of a summary) is not run twice."""
    ran = [t for t in tasks if challenger in normalised[t]]
    if len(tasks) == 1:
        return {t: pooled for t in ran}
    return {t: improvement_of({t: normalised[t]}, challenger, methods, splits, reps, seed) for t in ran}


def _has_run(task: Mapping[str, Mapping[str, Any]], methods: Sequence[str], split: str) -> bool:
    return all(split in task.get(m, {}) for m in methods)


def normalised_gains(
    aggregates: Mapping[str, Mapping[str, Mapping[str, dict]]], baseline: str
) -> dict[str, dict[str, dict[str, float | None]]]:
    """`{scope: {split: {method: gain}}}` of each method's normalised IQM over the baseline's, same scope.

    A method is compared only where it covers the same tasks as the baseline (else the gain is None).
    """
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for scope, by_split in aggregates.items():
        out[scope] = {}
        for split, by_method in by_split.items():
            base = by_method.get(baseline)
            if base is None:
                continue
            out[scope][split] = {
                method: relative_gain(stats["value"], base["value"]) if stats["tasks"] == base["tasks"] else None
                for method, stats in by_method.items()
            }
    return out


def raw_gains(tables: Mapping[str, Mapping[str, Mapping[str, dict]]], baseline: str) -> dict[str, dict]:
    """`{task: {split: {method: gain}}}` of each method's mean AER over the baseline's, per task."""
    out: dict[str, dict] = {}
    for task, table in tables.items():
        if baseline not in table:
            continue
        out[task] = {
            split: {
                method: relative_gain(splits[split]["mean"], base["mean"])
                for method, splits in table.items()
                if split in splits
            }
            for split, base in table[baseline].items()
        }
    return out


def summarise(
    scores: Scores,
    groups: Mapping[str, str] | None = None,
    bounds: Mapping[str, tuple[float, float] | None] | None = None,
    baselines: Sequence[str] = BASELINES,
    challenger: str = CHALLENGER,
    reps: int = 2000,
    seed: int = 0,
    improvement_splits: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Everything the paper reports, as one JSON-ready dict.

    `improvement_splits`: splits to compute the probability of improvement on (its bootstrap is the
    slow part, one Mann-Whitney test per task and replication); default `eval_out` (held-out contexts),
    or every split when the grid has no `eval_out`.

    - `tasks[task]`: group, bounds, and per method and split the raw AERs, mean +- std, IQM [CI] and
      the normalised IQM [CI];
    - `aggregates[scope][split][method]`: normalised IQM [CI] over runs and tasks, scope `all` or a group;
    - `improvement[split][other]`: P(challenger > other) [CI] on normalised scores, over the tasks both ran
      (the paper's figure); `improvement_by_task[task][split][other]`: the same on one task's runs, for
      claims about one task (with a few seeds its interval is wide);
    - `gains[baseline]`: `(R_m - R_b) / |R_b|` on the normalised IQMs (`normalised[scope][split][method]`)
      and on each task's mean raw AER (`raw[task][split][method]`).
    """
    if not scores:
        raise ValueError("no scores to summarise")
    groups = task_groups(sorted(scores), groups)
    resolved = resolve_bounds(scores, bounds)
    methods = method_order(sorted({m for task in scores.values() for m in task}), baselines)
    splits = split_order(scores)
    tasks = sorted(scores, key=lambda t: (group_order(list(groups.values())).index(groups[t]), t))
    tables = {task: _ordered(task_table(scores, task, resolved[task], reps, seed), methods) for task in tasks}
    normalised = normalise_scores(scores, resolved)
    aggregates = aggregate_scopes(normalised, groups, methods, splits, reps, seed)
    if improvement_splits is None:
        improvement_splits = ["eval_out"] if "eval_out" in splits else splits
    poi_splits = [s for s in splits if s in improvement_splits]
    present = [b for b in baselines if b in methods]
    pooled = improvement_of(normalised, challenger, methods, poi_splits, reps, seed) if challenger in methods else {}
    return {
        "meta": {
            "score": "AER (mean over contexts of the per-context mean return) of each run's last evaluation",
            "methods": methods,
            "splits": splits,
            "baselines": present,
            "challenger": challenger,
            "reps": reps,
            "seed": seed,
            "confidence": 0.95,
        },
        "tasks": {
            task: {"group": groups[task], "bounds": _bounds_dict(resolved[task]), "methods": tables[task]}
            for task in tasks
        },
        "aggregates": aggregates,
        "improvement": pooled,
        "improvement_by_task": _improvement_by_task(
            normalised, tasks, pooled, challenger, methods, poi_splits, reps, seed
        ),
        "gains": {b: {"normalised": normalised_gains(aggregates, b), "raw": raw_gains(tables, b)} for b in present},
    }


def _ordered(table: dict[str, Any], methods: Sequence[str]) -> dict[str, Any]:
    return {m: table[m] for m in methods if m in table}


def _bounds_dict(bounds: Bounds) -> dict[str, Any]:
    return {"low": bounds.low, "high": bounds.high, "source": bounds.source, "note": bounds.describe()}
