"""Moved to `lit_dmash.analysis.grid_results`; this old path is the same module object (private names included)."""

import sys

from lit_dmash.analysis import grid_results as _moved

sys.modules[__name__] = _moved
