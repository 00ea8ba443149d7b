"""`python -m lit_dmash fit -c conf/...`: the LightningCLI entry point.

User mistakes (`ConfigError`) print one line naming the field and exit with status 2, no
traceback; everything the CLI instantiates lives in the package (see shared/PITFALLS.md).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("RL_WARNINGS", "0")  # torchrl's C++-extension warning; nothing we use needs it

from lightning.pytorch.cli import LightningCLI

from lit_dmash.errors import ConfigError
from lit_dmash.module import ContextualSAC

TRAINER_DEFAULTS = {
    "max_epochs": -1,  # one endless epoch; the module stops at collector.total_frames
    "default_root_dir": "runs",
    "log_every_n_steps": 10,
    "num_sanity_val_steps": 0,
}


class LitDmashCLI(LightningCLI):
    """LightningCLI with one seed: `seed_everything` also seeds the module (its envs, its nets)."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("seed_everything", "model.seed")


def main(args: list[str] | None = None) -> None:
    try:
        LitDmashCLI(
            ContextualSAC,
            seed_everything_default=0,
            trainer_defaults=TRAINER_DEFAULTS,
            save_config_kwargs={"overwrite": True},
            args=args,
        )
    except ConfigError as err:
        print(f"lit-dmash: error: {err}", file=sys.stderr)
        sys.exit(2)
