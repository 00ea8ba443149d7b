"""Methods are configurations of the same parts; this table says what each one's networks read.

`dr` (domain randomisation) sees only the observation. `oracle` also sees the true context: an
upper bound, not a zero-shot method. The context-inference methods (`dma`, `dma_star`, `dmash`
and their ablations) extend this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from lit_dmash.errors import check_choice


@dataclass(frozen=True)
class Method:
    """What a method's actor and critics read from the tensordict (besides the action)."""

    name: str
    input_keys: tuple[str, ...]
    description: str


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("dr", ("observation",), "domain randomisation: plain SAC, no context"),
        Method("oracle", ("observation", "context"), "true context concatenated (upper bound, not zero-shot)"),
    ]
}


def get_method(name: str) -> Method:
    """The method called `name`; a `ConfigError` listing the known methods otherwise."""
    check_choice("method", name, METHODS)
    return METHODS[name]
