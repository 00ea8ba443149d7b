"""Checkpoints that a crash cannot corrupt, and errors that say what is wrong with one.

Lightning's own `_atomic_save` goes through an fsspec transaction, which on a local disk writes a
temporary file in the system temp folder and `shutil.move`s it: across filesystems that is a
copy, so a crash mid-copy can leave a truncated `last.ckpt`. `AtomicCheckpointIO` writes next to
the target, fsyncs, then `os.replace`s: the old file stays intact until the new one is complete.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lit_dmash.io import atomic_open


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: unreadable, or from a different method, env or network."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Temp file in the same folder + fsync + rename; unreadable files raise `CheckpointError`."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        with atomic_open(path, "wb") as f:
            torch.save(checkpoint, f)

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        try:
            # Our checkpoints hold replay buffers and RNG states: not weights-only.
            checkpoint = super().load_checkpoint(path, map_location=map_location, weights_only=False)
        except FileNotFoundError:
            raise
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
            raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {err})") from err
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise CheckpointError(f"checkpoint {path} is not a Lightning checkpoint (no state_dict)")
        return checkpoint


def latest_last_checkpoint(root: str | Path) -> Path | None:
    """The most recently written `*/checkpoints/last.ckpt` under a run root, if any."""
    found = [p for p in Path(root).glob("**/checkpoints/last.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None
