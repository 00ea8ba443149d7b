"""Undo a partly applied update: the parameters and optimiser states as they were before it.

One update steps up to four optimisers in sequence (dynamics, critic, actor, alpha; the actor and
alpha twice on even steps), each loss computed after the previous step, as the authors order
them. A loss found non-finite half-way therefore meets parameters that earlier steps of the same
update already moved; to leave the run untouched (`on_nonfinite=stop` saves that state in
`last.ckpt`, `skip` goes on from it), `Rollback.save()` copies every trained parameter, the
optimisers' states and the agent's random stream before the update, and `restore()` writes them
back. The copies go into buffers allocated once, with one `_foreach_copy_` per kind: ~2 % of a
DMA*-SH update at the authors' sizes, ~1 % of DR's.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from lit_dmash.agent.agent import Agent


class Rollback:
    """Saved copies of `agent`'s trained parameters, `optimizers`' states and `agent.rng`."""

    def __init__(self, agent: Agent, optimizers: Iterable[torch.optim.Optimizer]) -> None:
        self.agent = agent
        self.optimizers = [getattr(o, "optimizer", o) for o in optimizers]  # Lightning wraps them
        self.params = [p for o in self.optimizers for g in o.param_groups for p in g["params"]]
        self._param_copies = [torch.empty_like(p) for p in self.params]
        self._state_copies: dict[int, dict[str, torch.Tensor]] = {}  # per parameter, kept between saves
        self._had_state: set[int] = set()
        self._rng = agent.rng.state_dict()

    def save(self) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self._param_copies, self.params)
            sources, copies = [], []
            self._had_state = set()
            for p in self.params:
                state = self._state_of(p)
                if not state:
                    continue
                self._had_state.add(id(p))
                buffers = self._state_copies.setdefault(id(p), {})
                for key, value in state.items():
                    if torch.is_tensor(value):
                        sources.append(value)
                        copies.append(buffers.setdefault(key, torch.empty_like(value)))
            if sources:
                torch._foreach_copy_(copies, sources)
            self._rng = {k: v.clone() for k, v in self.agent.rng.state_dict().items()}

    def restore(self) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self.params, self._param_copies)
            for p in self.params:
                state = self._state_of(p)
                if not state:
                    continue
                if id(p) not in self._had_state:  # created by this update's first step: forget it
                    state.clear()
                    continue
                for key, value in self._state_copies[id(p)].items():
                    state[key].copy_(value)
            self.agent.rng.load_state_dict(self._rng)

    def _state_of(self, p: torch.Tensor) -> dict | None:
        for opt in self.optimizers:
            if p in opt.state:
                return opt.state[p]
        return None
