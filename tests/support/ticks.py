"""A monotonic time source moved by hand (``time_source=``, ``loop_time=`` parameters)."""

from __future__ import annotations


class Ticks:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
