"""The system clock: the one place in funnelbot that reads the wall clock; and the file
clock that drills and benchmarks run real processes on.

Everything else takes ``now`` (or a :class:`funnels.kernel.clock.Clock`) as input, so tests and
``funnelbot simulate`` can run a whole cohort on a virtual clock.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path

from funnels.kernel.clock import Clock

log = logging.getLogger("funnelbot")


class SystemClock:
    """:class:`funnels.kernel.clock.Clock` over the machine's clock; always aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def today(tz: tzinfo, clock: Clock | None = None) -> date:
    """Today's local date in ``tz`` (from the system clock unless another is given)."""
    return (clock or SystemClock()).now().astimezone(tz).date()


class ClockFileError(ValueError):
    """The clock file cannot be read, or does not hold an instant with its offset."""


def read_instant(path: Path) -> datetime:
    """The aware instant ``path`` holds (ISO 8601 with an offset, such as
    ``2026-01-05T08:00:00+00:00``), in UTC."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ClockFileError(f"cannot read the clock file {path}: {exc}") from None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ClockFileError(
            f"the clock file {path} holds {text[:40]!r}, not an ISO 8601 instant "
            "such as 2026-01-05T08:00:00+00:00"
        ) from None
    if moment.tzinfo is None:
        raise ClockFileError(
            f"the clock file {path} holds {text[:40]!r}, an instant without its offset "
            "(add +00:00 or Z)"
        )
    return moment.astimezone(UTC)


REREAD = 0.05
"""Seconds after which :class:`FileClock` reads its file even if it looks unchanged."""


class FileClock:
    """A virtual clock that several processes share: ``now`` is the instant a file holds
    (``FUNNELBOT_CLOCK_FILE``), which a drill or a benchmark moves forward.

    The file is read again when it changed, and at least every :data:`REREAD` seconds
    (a file replaced twice within the file system's timestamp granularity can look
    unchanged); between, a call costs one ``stat``. Time
    never goes back: an earlier instant is ignored. A file that becomes unreadable, or
    is caught half written, leaves the clock where it was (logged once until it mends);
    writers should replace the file whole (write beside it, then rename).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._now = read_instant(path)  # unreadable at the start: the caller says so
        self._seen = self._stamp()
        self._read_at = time.monotonic()
        self._complained = False

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def now(self) -> datetime:
        stamp = self._stamp()
        if stamp != self._seen or time.monotonic() - self._read_at > REREAD:
            self._seen = stamp
            self._read_at = time.monotonic()
            try:
                moment = read_instant(self.path)
            except ClockFileError as exc:
                if not self._complained:
                    log.warning("the clock stays at %s: %s", self._now.isoformat(), exc)
                    self._complained = True
            else:
                self._complained = False
                self._now = max(self._now, moment)
        return self._now


def write_instant(path: Path, moment: datetime) -> None:
    """Set a :class:`FileClock`'s file to ``moment``, whole (write beside, rename)."""
    if moment.tzinfo is None:
        raise ValueError("the clock file takes an aware datetime")
    beside = path.with_name(f".{path.name}.{os.getpid()}")
    beside.write_text(moment.astimezone(UTC).isoformat(), encoding="utf-8")
    os.replace(beside, path)


def service_clock(clock_file: Path | None) -> Clock:
    """The clock ``funnelbot run`` reads: the machine's, or the drill's file."""
    return SystemClock() if clock_file is None else FileClock(clock_file)
