"""Time zones by their IANA names, with every way a name can be wrong answered alike."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def find_zone(name: str) -> ZoneInfo | None:
    """The zone called ``name``, or None for anything that is not one: an unknown name,
    a malformed one, or one the zone database reads as a folder ("Europe") or that is
    too long for the file system (``OSError``)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
