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


def test_payouts_need_a_signing_secret_in_the_standard_webhooks_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FUNNELBOT_PAYOUT_WEBHOOK_URL", "https://platform.example/payouts")
    with pytest.raises(ValidationError, match="FUNNELBOT_PAYOUT_SECRET is not"):
        settings()
    for bad in ("secret", "whsec_", "whsec_not base64!"):
        monkeypatch.setenv("FUNNELBOT_PAYOUT_SECRET", bad)
        with pytest.raises(ValidationError, match="payout_secret"):
            settings()
    monkeypatch.setenv("FUNNELBOT_PAYOUT_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert settings().payout_webhook_url == "https://platform.example/payouts"
    monkeypatch.setenv("FUNNELBOT_PAYOUT_WEBHOOK_URL", "platform.example/payouts")
    with pytest.raises(ValidationError, match="not an http"):
        settings()
