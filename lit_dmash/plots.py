"""Moved to `lit_dmash.analysis.plots`; this old path is the same module object (private names included)."""

import sys

from lit_dmash.analysis import plots as _moved

sys.modules[__name__] = _moved
