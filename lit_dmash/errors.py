"""User-facing configuration errors.

A `ConfigError` is a mistake in what the user asked for (a name, a size, a split spec), as
opposed to a bug. The CLI prints it as one line and exits non-zero, without a traceback, so it
must be raised *before* any environment, network or trainer is built.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ConfigError(ValueError):
    """A user-facing configuration value is invalid; the message names the field."""

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"invalid {field}={value!r}: {allowed}")


def check_choice(field: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise a `ConfigError` listing `choices` unless `value` is one of them."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(field, value, f"expected one of {choices}")


def check_int(field: str, value: Any, minimum: int | None = 1, maximum: int | None = None) -> None:
    """Raise a `ConfigError` unless `value` is an integer (never a bool) in `minimum..maximum` (None: unbounded)."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        if minimum is not None and maximum is not None:
            allowed = f"expected an integer in {minimum}..{maximum}"
        elif minimum is not None:
            allowed = f"expected an integer >= {minimum}"
        else:
            allowed = "expected an integer"
        raise ConfigError(field, value, allowed)


def check_positive(field: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raise a `ConfigError` unless `value` is a positive (or non-negative) number."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(field, value, "expected a number >= 0" if allow_zero else "expected a number > 0")


def check_range(field: str, value: Any, low: float, high: float, *, high_inclusive: bool = True) -> None:
    """Raise a `ConfigError` unless `low <= value <= high` (or `< high`)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and low <= value and (value <= high if high_inclusive else value < high)
    if not ok:
        bracket = "]" if high_inclusive else ")"
        raise ConfigError(field, value, f"expected a number in [{low}, {high}{bracket}")
