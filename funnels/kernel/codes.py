"""Short codes without look-alike characters (no I, O, 0 or 1): cohort codes that leaders
type in ``/taskgroup``, members' referral codes."""

from __future__ import annotations

import secrets

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
COHORT_CODE_LENGTH = 6
"""Short enough to type; 32⁶ ≈ 10⁹ codes, and the table is unique on it."""


def new_code(length: int = COHORT_CODE_LENGTH) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))
