"""Moved to `lit_dmash.analysis.aggregate`; this old path is the same module object (private names included)."""

import sys

from lit_dmash.analysis import aggregate as _moved

sys.modules[__name__] = _moved
