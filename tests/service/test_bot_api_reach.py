"""Reaching the Bot API, without a network: at start, what counts as out of reach (tried
again in the background, said once) and what as a refusal (the start ends, naming the
setting to fix and never the token); later, the tick's steps waiting for it, said once
each way."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import cast

import pytest
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import DeleteWebhook, GetMe, SetWebhook
from aiogram.utils.backoff import BackoffConfig

from bot.service import _Ticker
from bot.telegram.reach import BotApiRefused, Reach, refusal
from funnels.cohorts.tick import TickReport

API = "https://api.telegram.org"
QUICK = BackoffConfig(min_delay=0.01, max_delay=0.02, factor=1.5, jitter=0.0)
WEBHOOK = SetWebhook(url="https://funnel.example/telegram/webhook", secret_token="s3cret-token")


class Connect:
    """A ``connect`` that raises what it is given, in turn, then gets through."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


def _network() -> Exception:
    return TelegramNetworkError(DeleteWebhook(), "ClientConnectorError: Cannot connect to host")


@pytest.mark.parametrize(
    "fault",
    [
        _network(),
        TelegramServerError(GetMe(), "Bad Gateway"),
        TelegramRetryAfter(DeleteWebhook(), "Flood control exceeded", retry_after=0),
        ClientDecodeError("not JSON", ValueError("Expecting value"), "<html>502</html>"),
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
    ],
    ids=["network", "5xx", "flood wait", "a proxy's page", "refused connection", "timeout"],
)
async def test_out_of_reach_the_start_goes_on_and_connects_in_the_background(
    fault: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    connect = Connect(fault, _network(), _network())
    reach = Reach(connect, API, backoff=QUICK)
    with caplog.at_level(logging.INFO, "funnelbot"):
        await reach.start()  # returns: the service goes on
        assert connect.calls == 1
        for _ in range(500):
            if "reached the Bot API" in caplog.text:
                break
            await asyncio.sleep(0.01)
        await reach.stopped()
    assert connect.calls == 4
    assert caplog.text.count("out of reach") == 1
    assert caplog.text.count("reached the Bot API after") == 1


async def test_at_once_nothing_runs_in_the_background(caplog: pytest.LogCaptureFixture) -> None:
    connect = Connect()
    reach = Reach(connect, API, backoff=QUICK)
    with caplog.at_level(logging.DEBUG, "funnelbot"):
        await reach.start()
        await reach.stopped()
    assert connect.calls == 1 and caplog.text == ""


async def test_a_stop_ends_the_tries() -> None:
    connect = Connect(*(_network() for _ in range(1000)))
    reach = Reach(connect, API, backoff=QUICK)
    await reach.start()
    await asyncio.sleep(0.1)
    await reach.stopped()
    tried = connect.calls
    await asyncio.sleep(0.1)
    assert 1 < tried == connect.calls


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        (
            TelegramUnauthorizedError(GetMe(), "Unauthorized"),
            f"FUNNELBOT_BOT_TOKEN: the Bot API at {API} refused it (Unauthorized); "
            "check it with @BotFather",
        ),
        (
            TelegramNotFound(DeleteWebhook(), "Not Found"),
            f"FUNNELBOT_BOT_TOKEN: the Bot API at {API} knows no such bot (Not Found); "
            "check the token, and FUNNELBOT_TELEGRAM_API_URL if it is set",
        ),
        (
            TelegramBadRequest(WEBHOOK, "Bad Request: bad webhook: HTTPS url must be provided"),
            "FUNNELBOT_WEBHOOK_URL: the Bot API refused the webhook "
            "(Bad Request: bad webhook: HTTPS url must be provided)",
        ),
        (
            TelegramConflictError(DeleteWebhook(), "Conflict: terminated by other request"),
            f"the Bot API at {API} refused deleteWebhook at start "
            "(Conflict: terminated by other request)",
        ),
    ],
    ids=["token", "no such bot", "webhook url", "other"],
)
async def test_a_refusal_ends_the_start_naming_the_setting(
    fault: TelegramAPIError, says: str
) -> None:
    connect = Connect(fault)
    with pytest.raises(BotApiRefused) as refused:
        await Reach(connect, API, backoff=QUICK).start()
    assert str(refused.value) == says
    assert "s3cret-token" not in says
    assert connect.calls == 1


async def test_a_refusal_after_an_outage_is_logged_and_the_tries_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connect = Connect(_network(), TelegramUnauthorizedError(GetMe(), "Unauthorized"))
    reach = Reach(connect, API, backoff=QUICK)
    with caplog.at_level(logging.INFO, "funnelbot"):
        await reach.start()
        for _ in range(500):
            if connect.calls == 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await reach.stopped()
    assert connect.calls == 2
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.getMessage().startswith("FUNNELBOT_BOT_TOKEN: the Bot API at")
    assert "the bot stays off" in error.getMessage()


def test_the_refusal_of_another_method_names_it() -> None:
    said = str(refusal(TelegramBadRequest(GetMe(), "Bad Request: odd"), API))
    assert said == f"the Bot API at {API} refused getMe at start (Bad Request: odd)"


def test_the_service_says_once_that_steps_wait_and_once_that_they_go_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticker = cast(_Ticker, SimpleNamespace(unreached=False))

    def tick(**report: object) -> None:
        _Ticker._say_reach(ticker, TickReport(**report))  # type: ignore[arg-type]

    with caplog.at_level(logging.INFO, "funnelbot"):
        tick(claimed=1, done=1)
        tick(claimed=1, unreached=True)
        tick(claimed=1, unreached=True)
        tick(claimed=0)  # nothing due: nothing learnt either way
        tick(claimed=1, done=1)
        tick(claimed=1, done=1)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert said[0].startswith("the Bot API cannot be reached: due steps wait")
    assert said[1] == "the Bot API answers again: due steps go out"
