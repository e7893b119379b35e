"""Values in messages: input can be a megabyte long, a message about it should not be."""

from __future__ import annotations

LIMIT = 40


def cut(text: str, limit: int = LIMIT) -> str:
    """``text``, cut to ``limit`` characters with "..." when longer."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def brief(value: object, limit: int = LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters."""
    return cut(repr(value), limit)
