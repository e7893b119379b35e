"""A settable clock for tests and simulation; the system clock lives in ``bot.clock``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class ManualClock:
    """:class:`funnels.ports.Clock` that only moves when told to, and never backwards."""

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
