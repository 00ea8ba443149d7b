"""Moved to `lit_dmash.experiments.grid`; this old path is the same module object (private names included)."""

import sys

from lit_dmash.experiments import grid as _moved

sys.modules[__name__] = _moved
