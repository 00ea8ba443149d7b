"""The JSON records a run writes per seed: `seed<k>/eval.json` (every evaluation of training) and
`seed<k>/test.json` (`python -m lit_dmash test`), one writer for both."""

from __future__ import annotations

from typing import Any

import torch

from lit_dmash.io import atomic_write_json, repo_commit


def split_entry(returns: torch.Tensor, contexts: torch.Tensor) -> dict[str, Any]:
    """One seed's split: AER, per-context mean returns, every episode's return, the contexts."""
    per_context = returns.mean(dim=-1)
    return {
        "aer": per_context.mean().item(),
        "per_context": per_context.tolist(),
        "returns": returns.tolist(),
        "contexts": contexts.tolist(),
    }


def write_record(module, seed: int, name: str, **fields: Any) -> None:
    """`<run>/seed<k>/<name>` (atomically): what the run is (task, method, seed, group, commit), then `fields`."""
    header = {
        "task": module.env_cfg.name,
        "method": module.method.name,
        "seed": seed,
        "group": getattr(module.task_spec, "group", None),
        "commit": repo_commit(),
    }
    atomic_write_json(module.seed_dir(seed) / name, header | fields)


def write_test_results(module, results: dict[str, dict[str, torch.Tensor]]) -> dict[str, float]:
    """Write each seed's `test.json` and return the metrics to log (seed means, and per seed)."""
    metrics: dict[str, float] = {}
    for i, seed in enumerate(module.seeds):
        splits = {split: split_entry(r["returns"][i], r["contexts"][i]) for split, r in results.items()}
        write_record(
            module,
            seed,
            "test.json",
            checkpoint={"updates": module.updates, "env_frames": module.env_frames},
            episodes_per_context=module.test_episodes,
            config=dict(module.hparams),
            splits=splits,
        )
        if len(module.seeds) > 1:
            metrics.update({f"test/seed{seed}/{s}/return": v["aer"] for s, v in splits.items()})
    for split, r in results.items():
        metrics[f"test/{split}/return"] = r["returns"].mean().item()
    return metrics
