"""Keep the console to what a user can act on: drop known messages that are not about their run.

Each filter matches one message by its text, never a whole category or logger:
- Lightning's "Tip: ... litlogger" advertisement (an INFO line at every start);
- Lightning's own use of a deprecated torch pytree API (`isinstance(treespec, LeafSpec)`), a
  FutureWarning about Lightning's code, not ours;
- GLFW's "The DISPLAY environment variable is missing" warning, raised when dm_control imports
  glfw on a headless machine; we render offscreen (EGL / OSMesa) and say so when we cannot.
"""

from __future__ import annotations

import logging
import warnings

_LIGHTNING_TIPS = ("💡 Tip: For seamless cloud",)


class _DropLightningTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_LIGHTNING_TIPS)


def quiet_known_noise() -> None:
    """Install the filters above (idempotent)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)  # Lightning's rank_zero_info writes to one of these
        if not any(isinstance(f, _DropLightningTips) for f in logger.filters):
            logger.addFilter(_DropLightningTips())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    warnings.filterwarnings("ignore", message=r".*The DISPLAY environment variable is missing")
