"""Long polling: fetch updates, store them, and only then confirm them.

aiogram's own polling reads every update into its models before the dispatcher sees it
and confirms a batch before handling it, so a crash loses what was fetched. Ours reads
``getUpdates`` through :class:`~bot.telegram.direct_api.DirectBotAPI` and hands each batch raw to
``accept`` (the update inbox, :mod:`bot.telegram.inbox`), which returns once the batch is stored;
only then does the next ``getUpdates`` carry the offset that confirms it. If the batch
cannot be stored, it is not confirmed: Telegram sends it again.

Otherwise it behaves as aiogram's: a failed fetch is logged and retried with aiogram's
backoff (or after Telegram's ``retry_after``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.utils.backoff import Backoff, BackoffConfig

from bot.telegram.direct_api import DirectBotAPI, UpdatesRefused

log = logging.getLogger("funnelbot.polling")

BACKOFF = BackoffConfig(min_delay=1.0, max_delay=5.0, factor=1.3, jitter=0.1)

Accept = Callable[[list[dict[str, Any]]], Awaitable[object]]


class Poller:
    """Polls until :meth:`stop`; a stop cuts a long poll short, but a batch being stored
    is stored first."""

    def __init__(
        self,
        direct: DirectBotAPI,
        accept: Accept,
        allowed_updates: list[str] | None = None,
        *,
        wait: int = 30,
        backoff: BackoffConfig = BACKOFF,
    ) -> None:
        self.direct = direct
        self.accept = accept
        self.allowed_updates = allowed_updates
        self.wait = wait
        self._retry = Backoff(backoff)
        self._stopping = asyncio.Event()
        self.offset: int | None = None

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        failing = False
        while not self._stopping.is_set():
            try:
                updates = await self._until_stopped(
                    self.direct.get_updates(self.offset, self.wait, self.allowed_updates)
                )
                if updates is None:
                    return
                if updates:
                    await self.accept(updates)
            except (UpdatesRefused, OSError, TimeoutError) as exc:
                failing = True
                await self._pause(exc, "could not fetch updates")
                continue
            except Exception as exc:  # not stored: not confirmed, fetched again
                failing = True
                await self._pause(exc, "could not store updates")
                continue
            if failing:
                log.info("fetching updates again")
                self._retry.reset()
                failing = False
            for update in updates:
                update_id = update.get("update_id")
                if isinstance(update_id, int):  # the next call confirms this one
                    self.offset = max(self.offset or 0, update_id + 1)

    async def _until_stopped(self, fetch: Awaitable[list[dict[str, Any]]]) -> Any:
        """The fetch's result, or None if polling was stopped while it waited."""
        task = asyncio.ensure_future(fetch)
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return None
        return task.result()

    async def _pause(self, exc: Exception, what: str) -> None:
        delay = _delay(exc, self._retry)
        log.error("%s (%s); trying again in %.1f s", what, exc, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)


def _delay(exc: Exception, retry: Backoff) -> float:
    if isinstance(exc, UpdatesRefused) and exc.retry_after is not None:
        return float(exc.retry_after)  # Telegram's flood wait, to the second
    return next(retry)
