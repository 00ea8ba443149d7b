"""Reading a grid folder: every run's eval.json, by task, method and seed, and the scores and curves in them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lit_dmash.analysis.results import Scores
from lit_dmash.names import SEED_FOLDER_PATTERN, parse_seed_folder

Runs = dict[str, dict[str, dict[int, dict]]]  # task -> method -> seed -> eval.json content
LAYOUT = "<grid>/<task>/<method>/seed<k>/eval.json"


def _eval_files(grid_dir: Path) -> dict[Path, Path]:
    """`{seed folder: its eval.json}`; a single-seed job keeps it one level deeper, in `seed<k>/seed<k>/`."""
    seed = SEED_FOLDER_PATTERN
    found = grid_dir.glob(f"*/*/{seed}/eval.json")
    files = {p.parent: p for p in found if parse_seed_folder(p.parent.name) is not None}
    for path in grid_dir.glob(f"*/*/{seed}/{seed}/eval.json"):
        if path.parent.name == path.parent.parent.name and parse_seed_folder(path.parent.name) is not None:
            files[path.parent.parent] = path
    return dict(sorted(files.items()))


def collect(grid_dir: str | Path) -> Runs:
    """`{task: {method: {seed: eval.json}}}` for every run with at least one evaluation.

    Task, method and seed come from the folder names (a method variant such as `dmash_lowrank` is
    its own method); the file's `group` names the task's overlap group.
    """
    runs: Runs = {}
    for seed_dir, path in _eval_files(Path(grid_dir)).items():
        record = json.loads(path.read_text())
        if not record.get("evaluations"):
            continue
        seed = parse_seed_folder(seed_dir.name)
        runs.setdefault(seed_dir.parent.parent.name, {}).setdefault(seed_dir.parent.name, {})[seed] = record
    return runs


def final_scores(runs: Runs) -> Scores:
    """`{task: {method: {split: {seed: AER of the last evaluation}}}}`."""
    scores: Scores = {}
    for task, methods in runs.items():
        for method, by_seed in methods.items():
            for seed, record in by_seed.items():
                for split, stats in record["evaluations"][-1]["splits"].items():
                    scores.setdefault(task, {}).setdefault(method, {}).setdefault(split, {})[seed] = float(stats["aer"])
    return scores


def declared_groups(runs: Runs) -> dict[str, str]:
    """`{task: group}` as the run files declare it (the first run that names one)."""
    groups = {}
    for task, methods in runs.items():
        named = [r.get("group") for by_seed in methods.values() for r in by_seed.values() if r.get("group")]
        if named:
            groups[task] = named[0]
    return groups


def curves(by_seed: Mapping[int, dict], split: str) -> tuple[np.ndarray, np.ndarray]:
    """`(updates [T], AER [seeds, T])` on the evaluation points every seed reached."""
    evaluations = {seed: record["evaluations"] for seed, record in by_seed.items()}
    reached = [{e["updates"] for e in evals if split in e["splits"]} for evals in evaluations.values()]
    updates = sorted(set.intersection(*reached))
    rows = []
    for seed in sorted(evaluations):
        by_update = {e["updates"]: e["splits"][split]["aer"] for e in evaluations[seed] if split in e["splits"]}
        rows.append([by_update[u] for u in updates])
    return np.asarray(updates), np.asarray(rows, dtype=np.float64).reshape(len(rows), len(updates))
