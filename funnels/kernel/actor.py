"""Who acts: a Telegram user as the use cases see them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Actor:
    """A Telegram user doing something, as the update describes them."""

    telegram_id: int
    name: str
    language: str | None = None


@dataclass(frozen=True, slots=True)
class OpsAuthor:
    """Who in ops took an action on a cohort, named as its timeline shows them: an API
    key's holder (``api key dashboard-sea``, with the key's id) or someone at the
    command line (``ana via the command line``)."""

    by: str
    key_id: int | None = None
