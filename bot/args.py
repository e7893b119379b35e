"""Numbers typed after a bot command or on the command line: plain ASCII digits only.

``str.isdigit`` and ``int`` accept far more than a person means by a number: ``"²"``
is a digit that ``int`` refuses, ``"٣"`` (Arabic-Indic three) reads as 3, and a few
thousand digits make ``int`` itself refuse. Every command that takes a number reads it
through :func:`ascii_int`, so each of these is a clear "that's not a number" instead
of a crash or a surprise.
"""

from __future__ import annotations

TELEGRAM_ID_LIMIT = 2**53
"""Telegram user and chat ids have at most 52 significant bits: ``|id| < 2**53``."""


def ascii_int(text: str, *, high: int, low: int = 1) -> int | None:
    """``text`` as an integer from ``low`` to ``high`` (``low`` >= 0), or ``None`` when it
    is anything but ASCII digits or falls outside those bounds."""
    if not text or not (text.isascii() and text.isdigit()):
        return None
    if len(text.lstrip("0")) > len(str(high)):
        return None  # far too large: don't even ask int() to read it
    value = int(text)
    return value if low <= value <= high else None


def telegram_user_id(text: str) -> int | None:
    """A Telegram user id (1 .. 2**53 - 1) written in ASCII digits, or ``None``."""
    return ascii_int(text, high=TELEGRAM_ID_LIMIT - 1)
