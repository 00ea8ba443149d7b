"""Aggregate zero-shot results over seeds: mean, IQM with stratified-bootstrap CIs, relative gains.

IQM and its confidence interval come from `rliable` (Agarwal et al., 2021): the interquartile
mean over runs, and a 95% percentile CI from a stratified bootstrap over runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def iqm_with_ci(returns: Sequence[float], reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(IQM, CI low, CI high) of per-seed returns, 95% stratified bootstrap (rliable)."""
    from rliable import library as rly
    from rliable import metrics

    scores = np.asarray(returns, dtype=np.float64).reshape(-1, 1)  # [runs, tasks=1]
    np.random.seed(seed)  # rliable's bootstrap draws from numpy's global generator
    point, interval = rly.get_interval_estimates(
        {"m": scores}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps, confidence_interval_size=0.95
    )
    return float(point["m"][0]), float(interval["m"][0, 0]), float(interval["m"][1, 0])


def relative_gain(method: float, baseline: float) -> float:
    """`(R_method - R_baseline) / |R_baseline|`, the paper's relative improvement."""
    return (method - baseline) / abs(baseline)


def aggregate(per_seed: dict[str, dict[str, list[float]]], reps: int = 2000) -> dict[str, dict[str, dict]]:
    """`{method: {split: [per-seed returns]}}` -> `{method: {split: {mean, iqm, ci, returns}}}`."""
    out: dict[str, dict[str, dict]] = {}
    for method, splits in per_seed.items():
        out[method] = {}
        for split, returns in splits.items():
            iqm, low, high = iqm_with_ci(returns, reps=reps)
            out[method][split] = {
                "mean": float(np.mean(returns)),
                "iqm": iqm,
                "ci": [low, high],
                "returns": list(returns),
            }
    return out


def markdown_table(results: dict[str, dict[str, dict]], baselines: Sequence[str] = ("dr", "dma")) -> str:
    """One row per method and split: mean, IQM [95% CI], and the relative gain over each baseline."""
    splits = list(next(iter(results.values())))
    present = [b for b in baselines if b in results]
    head = ["method", "split", "mean AER", "IQM [95% CI]", *[f"gain vs {b}" for b in present]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for split in splits:
        for method, by_split in results.items():
            stats = by_split[split]
            gains = [f"{100 * relative_gain(stats['mean'], results[b][split]['mean']):+.1f}%" for b in present]
            ci = f"{stats['iqm']:.1f} [{stats['ci'][0]:.1f}, {stats['ci'][1]:.1f}]"
            lines.append("| " + " | ".join([method, split, f"{stats['mean']:.1f}", ci, *gains]) + " |")
    return "\n".join(lines) + "\n"
