"""Short codes without look-alike characters (no I, O, 0 or 1): cohort codes that leaders
type in ``/taskgroup``, members' referral codes."""

from __future__ import annotations

import secrets

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
COHORT_CODE_LENGTH = 6
"""Short enough to type; 32⁶ ≈ 10⁹ codes, and the table is unique on it."""


def new_code(length: int = COHORT_CODE_LENGTH) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


LINK_CODE_LENGTH = 10
"""Tracked links (``/r/{code}``): 32¹⁰ ≈ 10¹⁵ codes, so a link cannot be guessed from
another, and a collision (refused by the unique code) is a one-in-a-billion retry."""


def is_code(text: str, length: int) -> bool:
    """Whether ``text`` could be a code of ``length`` made by :func:`new_code`."""
    return len(text) == length and all(c in ALPHABET for c in text)
