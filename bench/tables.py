"""Markdown tables for bench/README.md from the committed JSON under results/ (no measuring here).

    python bench/tables.py env_throughput results/env_throughput.json
    python bench/tables.py switches results/zero_shot_di_ode results/protocol_switches/leak_free \\
        results/protocol_switches/bootstrap_timeouts --method dmash --tasks di ode
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lit_dmash.names import SPLITS


def env_throughput(path: Path) -> str:
    """One row per task and batch size: our steps/s, the raw loops', and our cost relative to them."""
    rows = json.loads(path.read_text())["rows"]
    lines = ["| task | envs | make_env steps/s | raw per-env loop | raw batched | cost vs raw loop | vs raw batched |"]
    lines.append("|---|---|---|---|---|---|---|")
    raw = {(r["env"], r["num_envs"], r["impl"]): r["steps_per_s"] for r in rows if r["impl"] != "make_env"}
    for r in rows:
        if r["impl"] != "make_env":
            continue
        key = (r["env"], r["num_envs"])
        per_env, batched = raw.get((*key, "raw_per_env")), raw.get((*key, "raw_batched"))
        cells = [r["env"], str(r["num_envs"]), f"{r['steps_per_s']:,.0f}"]
        cells += [f"{per_env:,.0f}" if per_env else "-", f"{batched:,.0f}" if batched else "-"]
        cells += [f"{r['cost_vs_raw_per_env']:.2f}x" if "cost_vs_raw_per_env" in r else "-"]
        cells += [f"{r['cost_vs_raw_batched']:.2f}x" if "cost_vs_raw_batched" in r else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def switches(folders: list[Path], method: str, tasks: list[str]) -> str:
    """AER of one method per zero-shot output folder (one protocol variant each): mean and IQM [95 % CI]."""
    columns = [f"{t} {s}" for t in tasks for s in SPLITS]
    lines = ["| variant | fit args | " + " | ".join(columns) + " |"]
    lines.append("|---|---|" + "---|" * (3 * len(tasks)))
    for folder in folders:
        meta = json.loads((folder / "meta.json").read_text())
        cells = [folder.name, " ".join(f"`{a}`" for a in meta.get("fit_args", [])) or "(the authors')"]
        for task in tasks:
            table = json.loads((folder / f"{task}.json").read_text())[method]
            for split in SPLITS:
                s = table[split]
                cells.append(f"{s['mean']:.2f} ({s['iqm']:.2f} [{s['ci'][0]:.2f}, {s['ci'][1]:.2f}])")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=["env_throughput", "switches"])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--method", default="dmash")
    parser.add_argument("--tasks", nargs="+", default=["di", "ode"])
    args = parser.parse_args(argv)
    if args.table == "env_throughput":
        print(env_throughput(args.paths[0]))
    else:
        print(switches(args.paths, args.method, args.tasks))


if __name__ == "__main__":
    main()
