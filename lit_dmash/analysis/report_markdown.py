"""`results.md`: a grid's summary (`lit_dmash.analysis.results.summarise`) as markdown tables, baselines first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _interval(stats: Mapping[str, Any] | None, digits: int) -> str:
    if stats is None:
        return "–"
    value = stats.get("value", stats.get("iqm"))
    low, high = stats["ci"]
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _gain(gain: float | None) -> str:
    return "–" if gain is None else f"{100 * gain:+.1f}%"


def _scope_tasks(summary: Mapping[str, Any], scope: str) -> set[str]:
    """The tasks a scope holds: every task, or those of one group."""
    return {t for t, info in summary["tasks"].items() if scope == "all" or info["group"] == scope}


def overview_markdown(summary: Mapping[str, Any]) -> str:
    """Header: how scores are made, then the bounds used for normalisation."""
    meta = summary["meta"]
    rows = [[t, info["group"], info["bounds"]["note"]] for t, info in summary["tasks"].items()]
    return (
        f"Score of a run on a split: {meta['score']}. IQM and 95% CIs from rliable: stratified bootstrap over "
        f"runs ({meta['reps']} reps, seed {meta['seed']}). std: over seeds, ddof 0. Gains: "
        "(R_m - R_b) / |R_b|.\n\n## Normalisation bounds (min-max)\n\n" + _table(["task", "group", "bounds"], rows)
    )


def aggregates_markdown(summary: Mapping[str, Any]) -> str:
    """Normalised IQM [CI] per split: rows = method, columns = all tasks and each group."""
    aggregates, methods = summary["aggregates"], summary["meta"]["methods"]
    scopes = list(aggregates)
    sections = ["## Normalised IQM [95% CI] over runs and tasks\n"]
    partial = truncated = False
    for split in summary["meta"]["splits"]:
        rows = []
        for method in methods:
            row = [method]
            for scope in scopes:
                stats = aggregates[scope][split].get(method)
                missing = stats is not None and set(stats["tasks"]) != _scope_tasks(summary, scope)
                cut = stats is not None and stats["runs"] < stats["most_runs"]
                partial, truncated = partial or missing, truncated or cut
                row.append(_interval(stats, 3) + (" †" if missing else "") + (" ‡" if cut else ""))
            rows.append(row)
        sections.append(f"### {split}\n\n" + _table(["method", *scopes], rows))
    if partial:
        sections.append("† over only the tasks this method has runs of (see `tasks` in results.json).\n")
    if truncated:
        sections.append(
            "‡ the tasks have unequal numbers of runs: each task keeps the fewest any has (its lowest seeds),"
            " as the stratified bootstrap needs (`runs` in results.json).\n"
        )
    return "\n".join(sections)


def improvement_markdown(summary: Mapping[str, Any]) -> str:
    """P(challenger > other) [CI] per split."""
    improvement, challenger = summary["improvement"], summary["meta"]["challenger"]
    if not improvement:
        return ""
    splits = list(improvement)
    others = [m for m in summary["meta"]["methods"] if m != challenger]
    rows = [[other, *(_interval(improvement[s].get(other), 2) for s in splits)] for other in others]
    head = f"## Probability of improvement of {challenger} (normalised scores, 95% CI)\n\n"
    return head + _table([f"{challenger} vs", *splits], rows) + _improvement_by_task(summary, others, splits)


def _improvement_by_task(summary: Mapping[str, Any], others: list[str], splits: list[str]) -> str:
    """The same per task (one column per task and split), for claims about one task."""
    by_task = summary.get("improvement_by_task", {})
    if len(by_task) < 2:  # one task: the table above already is that task's
        return ""
    columns = [(task, split) for task in by_task for split in splits]
    rows = [[other, *(_interval(by_task[t][s].get(other), 2) for t, s in columns)] for other in others]
    head = "\nPer task (that task's runs only)\n\n"
    return head + _table(["vs", *(f"{t} {s}" for t, s in columns)], rows)


def gains_markdown(summary: Mapping[str, Any]) -> str:
    """Gains of each method's normalised IQM over each baseline's: one table per baseline and split."""
    sections = []
    for baseline, gains in summary["gains"].items():
        for split in summary["meta"]["splits"]:
            scopes = [s for s in gains["normalised"] if split in gains["normalised"][s]]
            rows = [
                [method, *(_gain(gains["normalised"][s][split].get(method)) for s in scopes)]
                for method in summary["meta"]["methods"]
            ]
            sections.append(f"### vs {baseline}, {split}\n\n" + _table(["method", *scopes], rows))
    if not sections:
        return ""
    return "## Relative gain on the normalised IQM, (R_m - R_b) / |R_b|\n\n" + "\n".join(sections)


def task_markdown(summary: Mapping[str, Any], task: str) -> str:
    """One task: mean AER +- std, IQM [CI], normalised IQM [CI] and mean-AER gains; rows = method."""
    info = summary["tasks"][task]
    table = info["methods"]
    splits = [s for s in summary["meta"]["splits"] if any(s in by_split for by_split in table.values())]

    def cells(method: str, fmt: Any) -> list[str]:
        return [fmt(table[method][s]) if s in table[method] else "–" for s in splits]

    mean_rows = [
        [m, str(len(next(iter(table[m].values()))["seeds"])), *cells(m, lambda x: f"{x['mean']:.1f} ± {x['std']:.1f}")]
        for m in table
    ]
    iqm_rows = [[m, *cells(m, lambda x: _interval(x, 1))] for m in table]
    norm_rows = [[m, *cells(m, lambda x: _interval(x["normalised"], 3))] for m in table]
    parts = [
        f"### {task} ({info['group']})\n\nBounds {info['bounds']['note']}.\n",
        "Mean AER ± std over seeds\n\n" + _table(["method", "seeds", *splits], mean_rows),
        "IQM [95% CI] of the AER\n\n" + _table(["method", *splits], iqm_rows),
        "Normalised IQM [95% CI]\n\n" + _table(["method", *splits], norm_rows),
    ]
    return "\n".join([*parts, raw_gains_markdown(summary, task, splits)])


def raw_gains_markdown(summary: Mapping[str, Any], task: str, splits: Sequence[str]) -> str:
    """One task's gains in mean AER over each baseline: rows = method, columns = split x baseline."""
    methods = list(summary["tasks"][task]["methods"])
    head, rows = [], {m: [m] for m in methods}
    for baseline, gains in summary["gains"].items():
        for split in splits:
            by_method = gains["raw"].get(task, {}).get(split)
            if by_method is not None:
                head.append(f"{split} vs {baseline}")
                for m in methods:
                    rows[m].append(_gain(by_method.get(m)))
    return "Gain in mean AER\n\n" + _table(["method", *head], list(rows.values())) if head else ""


def markdown(summary: Mapping[str, Any], title: str) -> str:
    """The whole `results.md`."""
    sections = [
        f"# Results: {title}\n",
        overview_markdown(summary),
        aggregates_markdown(summary),
        improvement_markdown(summary),
        gains_markdown(summary),
        "## Per task\n",
        *(task_markdown(summary, task) for task in summary["tasks"]),
    ]
    return "\n".join(s for s in sections if s)
