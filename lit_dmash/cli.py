"""`python -m lit_dmash fit -c conf/...`: the LightningCLI entry point.

User mistakes (`ConfigError`, an unusable checkpoint, a Lightning misconfiguration) print one
line naming the problem and exit with status 2, no traceback. Every run gets `RunCheckpoint`
(`last.ckpt` every 10 minutes or `--checkpoint.every_n_frames`, at the end, on SIGTERM/Ctrl-C)
written atomically and read weights-only, and
`--ckpt_path last` resumes the newest run under the config's `default_root_dir`, in its own folder.
Everything the CLI instantiates lives in the package: classes defined in the script that runs
would be imported twice while the config is parsed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("RL_WARNINGS", "0")  # torchrl's C++-extension warning; nothing we use needs it

from jsonargparse import Namespace
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

from callbacks.progress import TrainingProgress
from callbacks.run_checkpoint import RunCheckpoint
from callbacks.run_summary import RunSummary
from lit_dmash.agent.update import NonFiniteError
from lit_dmash.checkpointing import AtomicCheckpointIO, CheckpointError, latest_last_checkpoint
from lit_dmash.console import quiet_known_noise
from lit_dmash.errors import ConfigError
from lit_dmash.module import ContextualSAC
from lit_dmash.runtime import configure_process

TRAINER_DEFAULTS = {
    "max_epochs": -1,  # one endless epoch; the module stops after protocol.total_steps
    "default_root_dir": "runs",
    "log_every_n_steps": 10,
    "num_sanity_val_steps": 0,
    # RunCheckpoint (added by the CLI as `--checkpoint.*`) keeps last.ckpt; Lightning's default
    # ModelCheckpoint would only add a copy at the end.
    "enable_checkpointing": False,
}


class LitDmashCLI(LightningCLI):
    """LightningCLI with one seed (`seed_everything` also seeds the module), atomic checkpoints
    and `--ckpt_path last` that finds the newest run and continues it in place."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("seed_everything", "model.seed")
        # A callback class added here is instantiated from `--checkpoint.*` and appended to the
        # trainer's callbacks by LightningCLI: every run keeps a resumable last.ckpt.
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")

    def _parse_ckpt_path(self) -> None:
        # Workaround (Lightning 2.6): LightningCLI loads an explicit --ckpt_path here, before the
        # trainer exists (so without our one-line errors), and overwrites the user's config with the
        # checkpoint's hyper-parameters, silently. We keep the user's config; the checkpoint is read
        # once, weights-only, by AtomicCheckpointIO, and ContextualSAC.on_load_checkpoint names any
        # field that does not match.
        return

    def before_instantiate_classes(self) -> None:
        if self.subcommand not in ("fit", "validate", "test"):
            return
        config = self.config[self.subcommand]
        if config.ckpt_path != "last":
            return
        root = Path(config.trainer.default_root_dir or "runs")
        found = latest_last_checkpoint(root)
        if found is None:
            raise CheckpointError(f"--ckpt_path last: no checkpoints/last.ckpt under {root}")
        config.ckpt_path = str(found)
        if config.trainer.logger in (None, True):  # keep logging into the checkpoint's run folder
            run = found.parent.parent
            config.trainer.logger = Namespace(
                class_path="lightning.pytorch.loggers.TensorBoardLogger",
                init_args=Namespace(save_dir=str(run.parent.parent), name=run.parent.name, version=run.name),
            )

    def instantiate_trainer(self, **kwargs):
        # Every run gets the end-of-run summary and, unless the progress bar is off, a bar that knows
        # the run's length; the user's own callbacks come first.
        config = self.config_init[self.subcommand]["trainer"] if self.subcommand else self.config_init["trainer"]
        callbacks = config.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, list) else [callbacks]
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(TrainingProgress())
        kwargs["callbacks"] = [*callbacks, RunSummary()]
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except (ValueError, ModuleNotFoundError) as err:  # Lightning's word on a bad trainer.* value
            raise MisconfigurationException(f"trainer: {err}") from err
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer


def main(args: list[str] | None = None) -> None:
    configure_process()
    quiet_known_noise()  # again, for callers that import this module first
    try:
        LitDmashCLI(
            ContextualSAC,
            seed_everything_default=0,
            trainer_defaults=TRAINER_DEFAULTS,
            save_config_kwargs={"overwrite": True},
            args=args,
        )
    except (ConfigError, CheckpointError, MisconfigurationException) as err:
        print(f"lit-dmash: error: {err}", file=sys.stderr)
        sys.exit(2)
    except NonFiniteError as err:
        print(f"lit-dmash: stopped: {err}; the last good state is in checkpoints/last.ckpt", file=sys.stderr)
        sys.exit(1)
    except SIGTERMException:
        print("lit-dmash: stopped by SIGTERM; checkpoint saved, resume with --ckpt_path last", file=sys.stderr)
        sys.exit(143)
