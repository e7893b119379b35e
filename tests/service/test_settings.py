"""Unit tests for bot.settings: admin ids are Telegram user ids in ASCII digits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("given", "ids"),
    [("1,2, 3", [1, 2, 3]), ("[4, 5]", [4, 5]), (7, [7]), ("", []), (str(2**53 - 1), [2**53 - 1])],
)
def test_admin_ids_in_any_accepted_form(
    monkeypatch: pytest.MonkeyPatch, given: object, ids: list[int]
) -> None:
    monkeypatch.setenv("FUNNELBOT_ADMIN_IDS", str(given))
    assert settings().admin_ids == ids


@pytest.mark.parametrize(
    "given", ["٣", "1,²", "0", "-5", "abc", str(2**53), f"[{2**76}]", "[0]", "9" * 5000]
)
def test_admin_ids_that_are_not_telegram_user_ids(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("FUNNELBOT_ADMIN_IDS", given)
    with pytest.raises(ValidationError, match="admin_ids"):
        settings()
