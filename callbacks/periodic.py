"""When a periodic callback is due, by one of our counters (env frames, updates)."""

from __future__ import annotations


class Periodic:
    """Due each time `count` reaches the next multiple of `every`; never when `every` is 0.

    Catches up in one step if `count` jumps past several multiples (a large collection), and
    keys on our counters rather than Lightning's step, so a resumed run keeps its rhythm.
    """

    def __init__(self, every: int) -> None:
        self.every = every
        self.next = every

    def due(self, count: int) -> bool:
        if not self.every or count < self.next:
            return False
        self.next = (count // self.every + 1) * self.every
        return True
