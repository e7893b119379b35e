"""Reaching the Bot API at start: the webhook set (or removed, for long polling) and the
command menus registered, before updates flow.

Telegram out of reach at start (no network, no DNS, a proxy's error page, a 5xx, a
flood wait) does not stop the service: the HTTP API, the events intake and the
scheduler run meanwhile, and the start is tried again in the background with the
polling loop's backoff until it gets through (a warning when it begins, a line when it
ends, nothing per try). A refusal is another matter: a token the Bot API does not know,
a webhook URL it will not take. No retry mends those, so the start ends with one line
naming the setting to fix (:class:`BotApiRefused`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.utils.backoff import Backoff, BackoffConfig

from bot.telegram.polling import BACKOFF

log = logging.getLogger("funnelbot")

OUT_OF_REACH: tuple[type[Exception], ...] = (
    TelegramNetworkError,
    TelegramServerError,
    TelegramRetryAfter,
    ClientDecodeError,  # an answer that is not the Bot API's JSON: a proxy's error page
    OSError,
    TimeoutError,
)
"""What the Bot API's absence looks like: worth trying again."""


class BotApiRefused(Exception):
    """The Bot API refused the start: nothing a retry would mend. ``str()`` is the line
    for the operator, naming the setting to fix."""


def refusal(exc: TelegramAPIError, api_url: str) -> BotApiRefused:
    """What to tell the operator of a refusal at start (never the token itself)."""
    said = exc.message
    if isinstance(exc, TelegramUnauthorizedError):
        return BotApiRefused(
            f"FUNNELBOT_BOT_TOKEN: the Bot API at {api_url} refused it ({said}); "
            "check it with @BotFather"
        )
    if isinstance(exc, TelegramNotFound):
        return BotApiRefused(
            f"FUNNELBOT_BOT_TOKEN: the Bot API at {api_url} knows no such bot ({said}); "
            "check the token, and FUNNELBOT_TELEGRAM_API_URL if it is set"
        )
    if isinstance(exc, TelegramBadRequest) and exc.method.__api_method__ == "setWebhook":
        return BotApiRefused(f"FUNNELBOT_WEBHOOK_URL: the Bot API refused the webhook ({said})")
    return BotApiRefused(
        f"the Bot API at {api_url} refused {exc.method.__api_method__} at start ({said})"
    )


class Reach:
    """Runs ``connect`` (the webhook or polling set up, the menus) until it gets
    through: once in :meth:`start`, then, if the Bot API was out of reach, in the
    background until it answers or :meth:`stop`."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[None]],
        api_url: str,
        *,
        backoff: BackoffConfig = BACKOFF,
        time_source: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._api_url = api_url
        self._retry = Backoff(backoff)
        self._time = time_source
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect now. A refusal raises :class:`BotApiRefused`; out of reach, this
        returns and the connecting goes on in the background."""
        try:
            await self._connect()
        except OUT_OF_REACH as exc:
            log.warning(
                "the Bot API at %s is out of reach (%s): the HTTP API and the scheduler "
                "run meanwhile; trying again in the background",
                self._api_url,
                _one_line(exc),
            )
            self._task = asyncio.create_task(self._until_reached(), name="reach-bot-api")
        except TelegramAPIError as exc:
            raise refusal(exc, self._api_url) from None

    async def _until_reached(self) -> None:
        began = self._time()
        while not self._stopping.is_set():
            delay = next(self._retry)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            try:
                await self._connect()
            except TelegramRetryAfter as exc:  # Telegram's own wait, to the second
                self._retry.reset()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), exc.retry_after)
            except OUT_OF_REACH as exc:
                log.debug("the Bot API is still out of reach (%s)", _one_line(exc))
            except TelegramAPIError as exc:
                log.error(
                    "%s; the bot stays off until the service starts with settings the "
                    "Bot API takes",
                    refusal(exc, self._api_url),
                )
                return
            else:
                log.info("reached the Bot API after %.0f s", self._time() - began)
                return

    def stop(self) -> None:
        """No more tries (one under way is cut short by :meth:`stopped`)."""
        self._stopping.set()

    async def stopped(self) -> None:
        """Until the background connecting, if any, has ended."""
        self.stop()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
