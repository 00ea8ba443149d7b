"""Moved to `lit_dmash.experiments.grid_cli`; this old path is the same module object (private names included)."""

import sys

from lit_dmash.experiments import grid_cli as _moved

sys.modules[__name__] = _moved
