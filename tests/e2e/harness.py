"""The bot as it runs in production (aiogram dispatcher, real HTTP client, throttled
messenger, SQL storage) against the local Bot API server, on a virtual clock.

Updates made by the server's control API (a member joins, says "1", taps Grab) are fed
through the real dispatcher; everything the bot does goes over HTTP to the server, which
records it. Flood windows are scaled down so a week runs in seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiogram import Bot, Dispatcher
from pydantic import SecretStr

from bot.composition import build_services
from bot.settings import Settings
from bot.telegram.app import build_bot, build_dispatcher
from bot.telegram.services import Services
from bot.telegram.throttle import Limits, Window
from funnels.cohorts.tick import RunDueSteps, TickReport
from funnels.kernel.clock import ManualClock
from funnels.people.regions import AddRegion
from storage.uow import SqlStore
from tests.botapi import LocalBotAPI
from tests.integration.funnel_kit import tick_through

TOKEN = "4242:E2E"
ADMIN = 900
LEADER = 500
WARMUP = -1001
TASKS = -1002

# Telegram's limits with the windows shortened 60x / 20x: same shape, fast tests.
SERVER_LIMITS: dict[str, Any] = {
    "group_per_minute": 20,
    "group_window": 1.0,
    "private_interval": 0.05,
    "global_per_second": 30,
}
# A wider margin than in production: with 1 s windows, the few milliseconds between
# the throttle's clock and the server's are a larger share of the window.
BOT_LIMITS = Limits(
    group=Window(20, 1.0), private=Window(1, 0.05), overall=Window(30, 1.0), margin=0.15
)


@dataclass
class Harness:
    api: LocalBotAPI
    bot: Bot
    dp: Dispatcher
    services: Services
    clock: ManualClock
    store: SqlStore

    async def feed(self, update: dict[str, Any]) -> None:
        await self.dp.feed_raw_update(self.bot, update)

    async def say(self, chat_id: int, user_id: int, text: str) -> None:
        await self.feed(self.api.say(chat_id, user_id, text))

    async def tick(self, at: datetime | None = None) -> TickReport:
        if at is not None:
            self.clock.set(at)
        await self.services.flush_activity()
        return await RunDueSteps(self.services.deps)()

    async def run_until(self, until: datetime) -> list[TickReport]:
        """Tick at every due time up to ``until``, then at ``until``."""
        return await tick_through(self.store, self.clock, self.tick, until)

    def texts(self, chat_id: int) -> list[str]:
        return [m.get("text") or m.get("caption") or "" for m in self.api.messages(chat_id)]

    def last_text(self, chat_id: int) -> str:
        texts = self.texts(chat_id)
        return texts[-1] if texts else ""


@asynccontextmanager
async def running_bot(
    store: SqlStore, now: datetime, **server_options: Any
) -> AsyncIterator[Harness]:
    options = {**SERVER_LIMITS, **server_options}
    async with LocalBotAPI(TOKEN, **options) as api:
        settings = Settings(
            bot_token=SecretStr(TOKEN),
            telegram_api_url=api.base_url,
            admin_ids=[ADMIN],
            _env_file=None,  # type: ignore[call-arg]
        )
        clock = ManualClock(now)
        bot = build_bot(settings)
        services = build_services(settings, store, clock, bot, limits=BOT_LIMITS)
        dp = build_dispatcher(services)
        await AddRegion(services.deps)("SEA", "Southeast Asia", "Asia/Singapore")
        try:
            yield Harness(api, bot, dp, services, clock, store)
        finally:
            await services.close()
