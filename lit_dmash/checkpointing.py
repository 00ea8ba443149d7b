"""Checkpoints that a crash cannot corrupt, that cannot run code, and errors that say what is wrong.

Writing: Lightning's own `_atomic_save` goes through an fsspec transaction, which on a local disk
writes a temporary file in the system temp folder and `shutil.move`s it: across filesystems that
is a copy, so a crash mid-copy can leave a truncated `last.ckpt`. `AtomicCheckpointIO` writes
next to the target, fsyncs, then `os.replace`s: the old file stays intact until the new one is
complete, whatever kills the process (SIGKILL included).

Reading: `torch.load(weights_only=True)` only, so opening a checkpoint never unpickles arbitrary
objects (a shared `last.ckpt` must not be able to run code). Our checkpoints hold tensors and
plain Python values only (see `run_state.py`); nothing needs an allow-listed global. A file that
holds pickled objects is refused with one line saying so; `python -m lit_dmash convert-checkpoint`
re-saves one you trust as tensors and plain values after an explicit `--trust`, and the result
loads (and, if it is a checkpoint of this format with objects added, resumes). A checkpoint of
the older format 1 (another agent layout) is refused by the format check, saying so.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lit_dmash.io import atomic_open


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: unreadable, unsafe, or from a different method, env or network."""


def load_safely(path: str | Path, map_location: Any = None) -> dict:
    """`torch.load(weights_only=True)` with one-line `CheckpointError`s for every way it can fail."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path}: no such file") from None
    except pickle.UnpicklingError as err:
        detail = _unpickler_reason(str(err))
        if _holds_objects(detail):  # the file asks to import and call something: refuse it
            raise CheckpointError(
                f"checkpoint {path} refused: it holds pickled Python objects ({detail}), which weights-only "
                f"loading refuses because unpickling them can run code. Only if you trust the file, convert it "
                f"to tensors and plain values, then use NEW.ckpt: python -m lit_dmash convert-checkpoint {path} "
                f"NEW.ckpt --trust"
            ) from None
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated (UnpicklingError: {detail})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {message})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"checkpoint {path} is not a Lightning checkpoint (no state_dict)")
    return checkpoint


_OBJECT_REFUSALS = ("global", "reduce", "build", "unsupported class")
"""Words of torch's weights-only refusals of an object (an import, a call, a state) rather than of bad bytes
(`Unsupported operand N`: not a pickle torch wrote, or a damaged one)."""


def _holds_objects(detail: str) -> bool:
    return any(word in detail.lower() for word in _OBJECT_REFUSALS)


def _unpickler_reason(message: str) -> str:
    """The one informative line of torch's weights-only error (e.g. `Unsupported global: GLOBAL os.system`,
    `Trying to load unsupported GLOBAL posix.system whose module posix is blocked`)."""
    for line in message.splitlines():
        if "GLOBAL" in line and "WeightsUnpickler" not in line:
            return line.strip().removeprefix("Trying to load ").rstrip(".")
    for line in message.splitlines():
        if "WeightsUnpickler error:" in line:
            reason = line.split("WeightsUnpickler error:", 1)[1].strip()
            if reason:
                return reason.split(" was not an allowed global")[0]
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    after = [lines[i + 1] for i, line in enumerate(lines[:-1]) if line.endswith("WeightsUnpickler error:")]
    return after[0] if after else (lines[0] if lines else "unreadable")


def stale_temp_files(path: str | Path) -> list[Path]:
    """Temp files `atomic_open` left beside `path` when a write was killed (SIGKILL, OOM, power)."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []


def remove_stale_temp_files(path: str | Path) -> int:
    """Remove them (each can be as large as the checkpoint); how many. Only while nothing writes `path`."""
    stale = stale_temp_files(path)
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Temp file in the same folder + fsync + rename; loads weights-only, one-line errors.

    After every successful save, temp files of the same target left by killed writes are removed.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        with atomic_open(path, "wb") as f:
            torch.save(checkpoint, f)
        remove_stale_temp_files(path)

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        # weights_only is forced: nothing we write needs pickled objects, and nothing we read may run code.
        return load_safely(path, map_location)


def latest_last_checkpoint(root: str | Path) -> Path | None:
    """The most recently written `*/checkpoints/last.ckpt` under a run root, if any."""
    found = [p for p in Path(root).glob("**/checkpoints/last.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


# ---------------------------------------------------------------------------------------- conversion
def to_plain(value: Any) -> Any:
    """Tensors and plain Python values only: numpy arrays -> tensors, dataclasses/mappings -> dicts."""
    if isinstance(value, torch.Tensor) or value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {to_plain(k) if not isinstance(k, (str, int)) else k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(to_plain(v) for v in value)
    if hasattr(value, "__dict__"):
        return {k: to_plain(v) for k, v in vars(value).items() if not k.startswith("_")}
    return str(value)


def convert_main(argv: list[str] | None = None) -> int:
    """`python -m lit_dmash convert-checkpoint OLD NEW --trust`: re-save a trusted checkpoint safely."""
    parser = argparse.ArgumentParser(
        prog="python -m lit_dmash convert-checkpoint",
        description="Re-save a checkpoint you trust with tensors and plain values only, so that it loads "
        "with weights_only=True. Loading OLD runs its pickled code: only do this for files you made or trust.",
    )
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--trust", action="store_true", help="required: you trust OLD to run code when loaded")
    args = parser.parse_args(argv)
    if not args.trust:
        print(
            "lit-dmash: error: convert-checkpoint loads OLD with full pickle: pass --trust to confirm", file=sys.stderr
        )
        return 2
    try:
        checkpoint = torch.load(args.old, map_location="cpu", weights_only=False)  # the user vouched for it
    except Exception as err:  # any failure to read is reported in one line
        print(f"lit-dmash: error: cannot read {args.old} ({type(err).__name__}: {err})", file=sys.stderr)
        return 2
    with atomic_open(args.new, "wb") as f:
        torch.save(to_plain(checkpoint), f)
    try:
        load_safely(args.new)
    except CheckpointError as err:
        print(f"lit-dmash: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.new}: loads with weights_only=True")
    return 0
