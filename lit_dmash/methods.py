"""The paper's seven arms and its ablations: configurations of the same parts, in one table.

| method | paper | context | actor/critics read | encoder | norms | mask p | dynamics model |
| --- | --- | --- | --- | --- | --- | --- | --- |
| `dr` | DR | none | observation | - | - | - | - |
| `concat` | Concat | true | true context appended | - | - | - | - |
| `da` | DA (Decision Adapter) | true | adapter, own hypernet per network | - | - | - | - |
| `dma` | DMA | inferred | `z` appended | LSTM | no | 0 | `z` appended |
| `dma_pearl` | DMA-Pearl | inferred | `z` appended | Gaussian LSTM, KL 0.4 | no | 0 | `z` appended |
| `dma_star` | DMA* | inferred | `z` appended | LSTM | yes | 0.2 | `z` appended |
| `dmash` | DMA*-SH | inferred | the dynamics model's adapter, shared | LSTM | yes | 0.4 | adapter, owns H |
| `dma_sh` | DMA-SH | inferred | shared adapter | LSTM | no | 0 | adapter, owns H |
| `dma_star_h` | DMA*-H | inferred | adapter, own hypernet per network | LSTM | yes | 0.4 | adapter, own H |
| `dma_star_h_rl` | DMA*-H RL-only | inferred | adapter, own hypernet per network | LSTM | yes | 0.4 | `z` appended |
| `dmash_critic_grad` | DMA*-SH, critic not detached | inferred | shared adapter | LSTM | yes | 0.4 | adapter, owns H |
| `dmash_actor_grad` | DMA*-SH, actor not detached | inferred | shared adapter | LSTM | yes | 0.4 | adapter, owns H |
| `dmash_rl_grad` | DMA*-SH, neither detached | inferred | shared adapter | LSTM | yes | 0.4 | adapter, owns H |

"norms": AvgL1Norm on the per-slot embedding and SimNorm on `z`. The encoder (and, in the
shared variants, the hypernetwork) is trained by the dynamics loss only: the actor and critics
read `z` and the adapter detached, except where a `*_grad` ablation lets the critic and/or
actor loss through to the shared hypernetwork and the encoder. The networks' own hypernetworks
(`da`, `dma_star_h*`) are trained by their network's RL loss, their target critics' copies by
Polyak averaging. Rows map to the authors' presets (`config.py: modify_groups`): `unaware_dr`,
`aware_concat`, `aware_hypernet`, `inferred_plain_concat`, `inferred_plain_pearl`,
`inferred_concat`, `inferred_hypernet_shared`, `inferred_plain_hypernet_shared`,
`inferred_hypernet_all`, `inferred_hypernet_nonaligned`. The `dmash_*_grad` rows are the paper's
"not detached" ablation as we implement it; the authors' code has no counterpart (their shared
weights are always computed without gradient): there the RL loss steps E, f and H together.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lit_dmash.errors import check_choice
from lit_dmash.names import PAPER_ARMS as PAPER_ARMS  # re-exported: benches import it from here


@dataclass(frozen=True)
class Method:
    """What a method's networks read and how its context parts are trained."""

    name: str
    paper_name: str
    context: str = "none"  # "none" | "true" | "inferred"
    policy: str = "none"  # actor and critics: "none" | "concat" | "shared_adapter" | "own_adapter"
    encoder: str = "lstm"  # "lstm" | "plstm"
    stabilisers: bool = False  # AvgL1Norm + SimNorm
    p_mask: float = 0.0
    kl_weight: float = 0.0
    dynamics: str = "none"  # "none" | "concat" | "adapter"
    rl_grad: frozenset[str] = frozenset()  # RL losses that reach the shared hypernetwork and encoder

    @property
    def infers_context(self) -> bool:
        return self.context == "inferred"

    @property
    def uses_true_context(self) -> bool:
        return self.context == "true"

    @property
    def shares_adapter(self) -> bool:
        return self.policy == "shared_adapter"


_DMASH = Method(
    "dmash",
    "DMA*-SH",
    context="inferred",
    policy="shared_adapter",
    stabilisers=True,
    p_mask=0.4,
    dynamics="adapter",
)
_DMA_STAR = Method(
    "dma_star", "DMA*", context="inferred", policy="concat", stabilisers=True, p_mask=0.2, dynamics="concat"
)

METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("dr", "DR"),
        Method("concat", "Concat", context="true", policy="concat"),
        Method("da", "DA", context="true", policy="own_adapter"),
        replace(_DMA_STAR, name="dma", paper_name="DMA", stabilisers=False, p_mask=0.0),
        replace(
            _DMA_STAR,
            name="dma_pearl",
            paper_name="DMA-Pearl",
            stabilisers=False,
            p_mask=0.0,
            encoder="plstm",
            kl_weight=0.4,
        ),
        _DMA_STAR,
        _DMASH,
        replace(_DMASH, name="dma_sh", paper_name="DMA-SH", stabilisers=False, p_mask=0.0),
        replace(_DMASH, name="dma_star_h", paper_name="DMA*-H", policy="own_adapter"),
        replace(_DMASH, name="dma_star_h_rl", paper_name="DMA*-H RL-only", policy="own_adapter", dynamics="concat"),
        replace(_DMASH, name="dmash_critic_grad", paper_name="DMA*-SH (critic grad)", rl_grad=frozenset({"critic"})),
        replace(_DMASH, name="dmash_actor_grad", paper_name="DMA*-SH (actor grad)", rl_grad=frozenset({"actor"})),
        replace(_DMASH, name="dmash_rl_grad", paper_name="DMA*-SH (RL grad)", rl_grad=frozenset({"critic", "actor"})),
    ]
}


def get_method(name: str) -> Method:
    """The method called `name`; a `ConfigError` listing the known methods otherwise."""
    check_choice("method", name, METHODS)
    return METHODS[name]
