"""Methods are configurations of the same parts; this table is the whole difference between them.

| method | context | conditioning | norm | mask | hypernet | RL loss trains E/H |
| --- | --- | --- | --- | --- | --- | --- |
| `dr` | none | - | | | | |
| `oracle` | true | concat | | | | |
| `dma` | inferred | concat `z` | no | no | | no |
| `dma_star` | inferred | concat `z` | yes | yes | | no |
| `dmash` | inferred | shared adapter | yes | yes | shared | no |
| `dmash_nomask` | inferred | shared adapter | yes | no | shared | no |
| `dmash_nonorm` | inferred | shared adapter | no | yes | shared | no |
| `dmash_separate` | inferred | own adapter per network | yes | yes | one per network | own H only |
| `dmash_rlgrad` | inferred | shared adapter | yes | yes | shared | yes |

"norm" is the encoder's input normalisation (running mean/std) and output normalisation of `z`;
the dynamics model's inputs and targets are normalised in every method (its loss is defined on
normalised `Δo`). In `dmash_separate` the encoder is still trained only by the dynamics loss;
the actor's and critics' own hypernetworks read a detached `z` and are trained by their losses.
"""

from __future__ import annotations

from dataclasses import dataclass

from lit_dmash.errors import check_choice


@dataclass(frozen=True)
class Method:
    """What a method's networks read and how its context parts are trained."""

    name: str
    description: str
    context: str = "none"  # "none" | "true" | "inferred"
    conditioning: str = "none"  # "none" | "concat" | "adapter"
    normalize: bool = False
    mask: bool = False
    shared_hypernet: bool = True
    rl_grad: bool = False

    @property
    def infers_context(self) -> bool:
        return self.context == "inferred"

    @property
    def uses_adapter(self) -> bool:
        return self.conditioning == "adapter"

    @property
    def conditioning_key(self) -> str | None:
        """The tensordict key the actor and critics read their context from (besides the observation)."""
        if self.context == "true":
            return "context"
        if not self.infers_context:
            return None
        return "adapter" if self.uses_adapter and self.shared_hypernet else "z"

    @property
    def input_keys(self) -> tuple[str, ...]:
        """Keys the actor and critics read, in order; an adapter source comes last."""
        key = self.conditioning_key
        return ("observation",) if key is None else ("observation", key)


_DMASH = {"context": "inferred", "conditioning": "adapter", "normalize": True, "mask": True}

METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("dr", "domain randomisation: plain SAC, no context"),
        Method("oracle", "true context concatenated (upper bound, not zero-shot)", "true", "concat"),
        Method("dma", "inferred context concatenated; no normalisation, no masking", "inferred", "concat"),
        Method(
            "dma_star",
            "inferred context concatenated, with normalisation and masking",
            "inferred",
            "concat",
            normalize=True,
            mask=True,
        ),
        Method("dmash", "DMA*-SH: one hypernetwork, one adapter shared by dynamics, actor and critics", **_DMASH),
        Method("dmash_nomask", "DMA*-SH without input masking", **{**_DMASH, "mask": False}),
        Method("dmash_nonorm", "DMA*-SH without input/output normalisation", **{**_DMASH, "normalize": False}),
        Method("dmash_separate", "DMA*-SH with one hypernetwork per network", **_DMASH, shared_hypernet=False),
        Method("dmash_rlgrad", "DMA*-SH whose hypernetwork is trained by the RL losses too", **_DMASH, rl_grad=True),
    ]
}


def get_method(name: str) -> Method:
    """The method called `name`; a `ConfigError` listing the known methods otherwise."""
    check_choice("method", name, METHODS)
    return METHODS[name]
