"""Moved to `lit_dmash.analysis.report_markdown`; this old path is the same module object (private names included)."""

import sys

from lit_dmash.analysis import report_markdown as _moved

sys.modules[__name__] = _moved
