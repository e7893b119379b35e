"""Time: the ``Clock`` every use case reads ``now`` from, and a settable one for
tests and simulations. The system clock lives in ``bot/clock.py``, the only reader of
the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class ManualClock:
    """:class:`funnels.kernel.clock.Clock` that only moves when told to, and never backwards."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        moment = moment.astimezone(UTC)
        if moment < self._now:
            raise ValueError(f"time cannot go back from {self._now} to {moment}")
        self._now = moment

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, aware UTC."""
        ...
