"""What `python -m lit_dmash test` writes: per seed, `seed<k>/test.json` in the run folder."""

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


def write_test_results(module, results: dict[str, dict[str, torch.Tensor]]) -> dict[str, float]:
    """Write each seed's `test.json` (atomically) and return the metrics to log (seed means, and per seed)."""
    metrics: dict[str, float] = {}
    for i, seed in enumerate(module.seeds):
        splits = {split: split_entry(r["returns"][i], r["contexts"][i]) for split, r in results.items()}
        atomic_write_json(
            module.seed_dir(seed) / "test.json",
            {
                "task": module.env_cfg.name,
                "method": module.method.name,
                "seed": seed,
                "commit": repo_commit(),
                "checkpoint": {"updates": module.updates, "env_frames": module.env_frames},
                "episodes_per_context": module.test_episodes,
                "config": dict(module.hparams),
                "splits": splits,
            },
        )
        if len(module.seeds) > 1:
            metrics.update({f"test/seed{seed}/{s}/return": v["aer"] for s, v in splits.items()})
    for split, r in results.items():
        metrics[f"test/{split}/return"] = r["returns"].mean().item()
    return metrics
