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
class KeyHolder:
    """Whoever acts through an API key of the HTTP API (ops and their tools), named as
    the cohort's timeline shows them."""

    key_id: int
    name: str

    @property
    def by(self) -> str:
        return f"api key {self.name}"
