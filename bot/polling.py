"""Long polling that hands raw updates to the dispatcher.

aiogram's own polling reads every update into its models before the dispatcher sees it;
ours reads ``getUpdates`` through :class:`~bot.direct_api.DirectBotAPI` and feeds each
update raw (``feed_raw_update``), so the dispatcher can handle a red envelope's taps
without the models. Otherwise it behaves as aiogram's: each update is a task of its own,
a failed fetch is logged and retried with aiogram's backoff (or after Telegram's
``retry_after``), and an update whose handling fails is logged, not retried.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.utils.backoff import Backoff, BackoffConfig

from bot.direct_api import DirectBotAPI, UpdatesRefused

log = logging.getLogger("funnelbot.polling")

BACKOFF = BackoffConfig(min_delay=1.0, max_delay=5.0, factor=1.3, jitter=0.1)
GRACE = 10.0
"""Seconds that updates being handled get to finish when polling stops."""


async def poll(
    dp: Dispatcher,
    bot: Bot,
    direct: DirectBotAPI,
    allowed_updates: list[str] | None = None,
    *,
    wait: int = 30,
    backoff: BackoffConfig = BACKOFF,
) -> None:
    """Poll until cancelled; on cancellation the updates in hand get :data:`GRACE`
    seconds to finish, so a tap being claimed is still answered."""
    running: set[asyncio.Task[None]] = set()
    retry = Backoff(backoff)
    offset: int | None = None
    failing = False
    try:
        while True:
            try:
                updates = await direct.get_updates(offset, wait, allowed_updates)
            except (UpdatesRefused, OSError, TimeoutError) as exc:
                failing = True
                delay = _delay(exc, retry)
                log.error("could not fetch updates (%s); trying again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            if failing:
                log.info("fetching updates again")
                retry.reset()
                failing = False
            for update in updates:
                update_id = update.get("update_id")
                if isinstance(update_id, int):  # the next call confirms this one
                    offset = update_id + 1 if offset is None else max(offset, update_id + 1)
                task = asyncio.create_task(_handle(dp, bot, update))
                running.add(task)
                task.add_done_callback(running.discard)
    finally:
        if running:
            await asyncio.wait(running, timeout=GRACE)


def _delay(exc: Exception, retry: Backoff) -> float:
    if isinstance(exc, UpdatesRefused) and exc.retry_after is not None:
        return float(exc.retry_after)  # Telegram's flood wait, to the second
    return next(retry)


async def _handle(dp: Dispatcher, bot: Bot, update: dict[str, Any]) -> None:
    try:
        await dp.feed_raw_update(bot, update)
    except Exception:
        log.exception("update %s failed", update.get("update_id"))
