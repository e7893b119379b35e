"""Short codes without look-alike characters: cohort codes, members' referral codes."""

from __future__ import annotations

import secrets

_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_cohort_code(length: int = 6) -> str:
    """A short code without look-alike characters, typed by leaders in /taskgroup."""
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(length))


_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_code(length: int = 8) -> str:
    """A short code without look-alike characters, for links and /taskgroup."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))
