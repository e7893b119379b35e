"""Unit tests for bot.settings: admin ids are Telegram user ids in ASCII digits, tokens and
secrets are in the form Telegram takes (never repeated in a message), and each problem is
one line naming its variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.cli.common import settings_problems
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


@pytest.mark.parametrize("token", ["4242:E2E", "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"])
def test_a_bot_token_as_botfather_writes_it(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    monkeypatch.setenv("FUNNELBOT_BOT_TOKEN", token)
    got = settings().bot_token
    assert got is not None and got.get_secret_value() == token


@pytest.mark.parametrize(
    "token", ["notatoken", "987654", ":QQQ", "abc:QQQ", "987:QQ dq", "987:QQ@x", "１２:QQQ"]
)
def test_anything_else_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    monkeypatch.setenv("FUNNELBOT_BOT_TOKEN", token)
    with pytest.raises(ValidationError) as caught:
        settings()
    [line] = settings_problems(caught.value)
    assert line.startswith("FUNNELBOT_BOT_TOKEN: not a bot token: @BotFather gives one like")
    assert token not in str(caught.value) and token not in line


def test_an_empty_token_or_webhook_secret_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNNELBOT_BOT_TOKEN", "")
    monkeypatch.setenv("FUNNELBOT_WEBHOOK_SECRET", " ")
    got = settings()
    assert got.bot_token is None and got.webhook_secret is None


def test_a_webhook_secret_telegram_would_refuse_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FUNNELBOT_WEBHOOK_SECRET", "s3cret-token_OK")
    assert settings().webhook_secret is not None
    for bad in ("has space", "ünïcode", "x" * 257, "a/b"):
        monkeypatch.setenv("FUNNELBOT_WEBHOOK_SECRET", bad)
        with pytest.raises(ValidationError) as caught:
            settings()
        [line] = settings_problems(caught.value)
        assert line.startswith("FUNNELBOT_WEBHOOK_SECRET: Telegram takes 1 to 256 characters")
        assert bad not in line


def test_each_problem_is_one_line_naming_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNNELBOT_TICK_SECONDS", "0")
    monkeypatch.setenv("FUNNELBOT_PUBLIC_URL", "notaurl")
    with pytest.raises(ValidationError) as caught:
        settings()
    assert sorted(settings_problems(caught.value)) == [
        "FUNNELBOT_PUBLIC_URL: 'notaurl' is not an http or https address; write a full "
        "address like https://shop.example.com/deal",
        "FUNNELBOT_TICK_SECONDS: Input should be greater than 0",
    ]
    monkeypatch.delenv("FUNNELBOT_TICK_SECONDS")
    monkeypatch.delenv("FUNNELBOT_PUBLIC_URL")
    monkeypatch.setenv("FUNNELBOT_WEBHOOK_URL", "https://bot.example/telegram")
    with pytest.raises(ValidationError) as caught:
        settings()
    # A problem between two variables names both itself (no "FUNNELBOT_:" before it).
    assert settings_problems(caught.value) == [
        "FUNNELBOT_WEBHOOK_URL is set but FUNNELBOT_WEBHOOK_SECRET is not: Telegram's "
        "updates could not be told from anyone else's"
    ]
