"""The garbage collector, tuned for a process that handles crowds of small updates."""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Take what start-up left alive out of the garbage collector's sight.

    aiogram and pydantic leave tens of thousands of long-lived objects (classes, schemas,
    validators); every full collection walks them all, which showed as pauses of up to
    a few hundred milliseconds in a crowd's taps on a red envelope. Frozen, they stay
    alive and are skipped; objects made afterwards are collected as usual.

    Then the collector runs less often. With the start-up heap frozen, what is left is
    small, so CPython's rule for a full collection (objects surviving into the oldest
    generation add up to a quarter of it) fires during every burst of hundreds of
    updates, walking all of their tasks and payloads: 20 to 80 ms each, about once per
    storm of taps. Collecting the youngest generation every 10,000 allocations rather
    than 700, and the older ones 20 times more rarely than that, takes those pauses out
    of the bursts; cyclic garbage waits a little longer (a few megabytes at most).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
