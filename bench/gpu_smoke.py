"""One tiny fit with evaluation and every diagnostics callback on a device: the placement check.

    python bench/gpu_smoke.py --device cuda [--method dmash] [--seeds 2]

Trains a few hundred updates of `--method` on `di` (two seeds as a batch), evaluates every
split, runs the paper's diagnostics, the policy-gradient variance and the dynamics probe, and
prints the final AERs and the device. CI has no GPU, so this is run by hand on a GPU machine;
`--device cpu` runs the same check here.
"""

from __future__ import annotations

import argparse
import tempfile

import lightning as L
import torch

from callbacks import ContextDiagnostics, DynamicsProbe, PolicyGradientVariance, ZeroShotEvaluation
from lit_dmash.config import ContextConfig, EnvConfig, ProtocolConfig, SACConfig
from lit_dmash.module import ContextualSAC


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--method", default="dmash")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--updates", type=int, default=200)
    args = parser.parse_args()
    module = ContextualSAC(
        method=args.method,
        env=EnvConfig(name="di", num_envs=20),
        protocol=ProtocolConfig(total_steps=args.updates, random_steps=500),
        sac=SACConfig(hidden_dims=[64, 64]),
        context=ContextConfig(window=24),
        seeds=args.seeds,
    )
    evaluation = ZeroShotEvaluation(every_n_updates=0, episodes=2)
    trainer = L.Trainer(
        accelerator="gpu" if args.device == "cuda" else "cpu",
        devices=1,
        max_epochs=-1,
        default_root_dir=tempfile.mkdtemp(),
        enable_progress_bar=False,
        enable_checkpointing=False,
        callbacks=[
            evaluation,
            ContextDiagnostics(every_n_updates=0, samples=8),
            PolicyGradientVariance(every_n_updates=100, num_minibatches=2),
            DynamicsProbe(every_n_frames=0),
        ],
    )
    trainer.fit(module)  # Lightning moves the module back to the CPU at teardown
    assert trainer.strategy.root_device.type == args.device, trainer.strategy.root_device
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print({split: round(value, 2) for split, value in evaluation.final_aer().items()}, device)


if __name__ == "__main__":
    main()
