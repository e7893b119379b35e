"""The system clock: the one place in funnelbot that reads the wall clock.

Everything else takes ``now`` (or a :class:`funnels.kernel.clock.Clock`) as input, so tests and
``funnelbot simulate`` can run a whole cohort on a virtual clock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo

from funnels.kernel.clock import Clock


class SystemClock:
    """:class:`funnels.kernel.clock.Clock` over the machine's clock; always aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def today(tz: tzinfo, clock: Clock | None = None) -> date:
    """Today's local date in ``tz`` (from the system clock unless another is given)."""
    return (clock or SystemClock()).now().astimezone(tz).date()
