"""Moved to `lit_dmash.analysis.diagnostics`; this old path is the same module object (private names included)."""

import sys

from lit_dmash.analysis import diagnostics as _moved

sys.modules[__name__] = _moved
