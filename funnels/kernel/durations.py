"""Durations written the way script authors write them: "30s", "10m", "24h", "1h30m", "2d"."""

from __future__ import annotations

import re
from datetime import timedelta

from funnels.kernel.text import brief, cut

_PART = re.compile(r"(\d+)\s*([dhms])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[dhms]\s*)+$")
_UNIT = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_SECOND = timedelta(seconds=1)


def parse_duration(text: str | int | timedelta, longest: timedelta = timedelta.max) -> timedelta:
    """Parse "10m" / "1h30m" / "2d" (an int counts seconds). Raises ValueError otherwise,
    and for a duration longer than ``longest`` (by default, the longest ``timedelta``)."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return _seconds(text, str(text), longest)
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise ValueError(
            f"{brief(text)} is not a duration; write it like 30s, 10m, 24h, 1h30m or 2d"
        )
    # Leading zeros dropped and the length checked before int(): int() of thousands of
    # digits is slow (Python refuses past 4300), and the duration would be refused anyway.
    parts = [(n.lstrip("0") or "0", u) for n, u in _PART.findall(text)]
    if any(len(n) > len(str(longest // _SECOND)) for n, _ in parts):
        raise _too_long(text, longest)
    return _seconds(sum(int(n) * _UNIT[u] for n, u in parts), text, longest)


def _seconds(seconds: int, text: str, longest: timedelta) -> timedelta:
    if seconds > longest // _SECOND:
        raise _too_long(text, longest)
    return timedelta(seconds=seconds)


def _too_long(text: str, longest: timedelta) -> ValueError:
    return ValueError(f"the duration {cut(text)} is too long; at most {format_duration(longest)}")


def format_duration(value: timedelta) -> str:
    """The shortest script spelling of a duration ("1h30m")."""
    seconds = value // _SECOND  # exact; total_seconds() is a float
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in _UNIT.items():
        n, seconds = divmod(seconds, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)
