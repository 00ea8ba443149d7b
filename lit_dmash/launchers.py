"""Moved to `lit_dmash.experiments.launchers`; this old path is the same module object (private names included)."""

import sys

from lit_dmash.experiments import launchers as _moved

sys.modules[__name__] = _moved
