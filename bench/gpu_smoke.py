"""One tiny DMA*-SH fit on a GPU with evaluation and diagnostics callbacks: device placement check.

    python bench/gpu_smoke.py [--device cuda] [--frames 2000]

Trains, evaluates every split, runs the variance and representation diagnostics, and prints the
final returns. CI has no GPU, so this is run by hand on a GPU machine (see bench/README.md).
"""

from __future__ import annotations

import argparse
import tempfile

import lightning as L
import torch

from callbacks import RepresentationDiagnostics, VarianceDiagnostics, ZeroShotEvaluation
from lit_dmash.config import CollectorConfig, EnvConfig, SACConfig
from lit_dmash.module import ContextualSAC


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--method", default="dmash")
    args = parser.parse_args()
    module = ContextualSAC(
        method=args.method,
        env=EnvConfig(num_envs=8),
        collector=CollectorConfig(frames_per_batch=64, total_frames=args.frames, init_random_frames=512),
        sac=SACConfig(hidden_dims=[64, 64], batch_size=128, utd=4),
    )
    evaluation = ZeroShotEvaluation(every_n_frames=0, episodes=8)
    trainer = L.Trainer(
        accelerator="gpu",
        devices=1,
        max_epochs=-1,
        default_root_dir=tempfile.mkdtemp(),
        enable_progress_bar=False,
        enable_checkpointing=False,
        callbacks=[evaluation, VarianceDiagnostics(every_n_updates=50), RepresentationDiagnostics(every_n_frames=0)],
    )
    trainer.fit(module)  # Lightning moves the module back to the CPU at teardown
    assert trainer.strategy.root_device.type == "cuda", trainer.strategy.root_device
    final = evaluation.history[-1]["splits"]
    print({split: round(stats["mean"], 2) for split, stats in final.items()}, torch.cuda.get_device_name())


if __name__ == "__main__":
    main()
