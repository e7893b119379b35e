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
from zoneinfo import ZoneInfo

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from pydantic import SecretStr
from sqlalchemy import select

from bot.composition import build_services
from bot.settings import Settings
from bot.telegram.app import build_bot, build_dispatcher
from bot.telegram.services import Services
from bot.telegram.throttle import Limits, Window
from funnels.cohorts.tick import RunDueSteps, TickReport
from funnels.kernel.clock import ManualClock
from funnels.people.regions import AddRegion
from storage.models import CohortMember
from storage.uow import SqlStore
from tests.botapi import LocalBotAPI
from tests.support.funnel_kit import tick_through

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

    async def feed_parsed(self, update: dict[str, Any]) -> None:
        """The update as aiogram's models, past the dispatcher's raw readings."""
        await self.dp.feed_update(
            self.bot, Update.model_validate(update, context={"bot": self.bot})
        )

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
    store: SqlStore, now: datetime, *, shared_clock: bool = False, **server_options: Any
) -> AsyncIterator[Harness]:
    """``shared_clock``: the server reads the bot's virtual clock too (for what Telegram
    times itself: an invite link's ``expire_date``); by default it reads the wall clock."""
    clock = ManualClock(now)
    options = {**SERVER_LIMITS, **server_options}
    if shared_clock:
        options["clock"] = clock
    async with LocalBotAPI(TOKEN, **options) as api:
        settings = Settings(
            bot_token=SecretStr(TOKEN),
            telegram_api_url=api.base_url,
            admin_ids=[ADMIN],
            _env_file=None,  # type: ignore[call-arg]
        )
        bot = build_bot(settings)
        services = build_services(settings, store, clock, bot, limits=BOT_LIMITS)
        dp = build_dispatcher(services)
        await AddRegion(services.deps)("SEA", "Southeast Asia", "Asia/Singapore")
        try:
            yield Harness(api, bot, dp, services, clock, store)
        finally:
            await services.close()


# ------------------------------------------------------------ a warm-up group's world

SG = ZoneInfo("Asia/Singapore")
MEMBERS = list(range(1001, 1031))  # 30 members


def at(day: int, hhmm: str) -> datetime:
    """Local time on warm-up day ``day`` (day 1 = 2026-03-02)."""
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime(2026, 3, 1 + day, h, m, tzinfo=SG)


def setup_world(h: Harness) -> None:
    api = h.api
    api.add_user(ADMIN, "Ada", started_bot=True)
    api.add_user(LEADER, "Lena", started_bot=True)
    api.add_user(777, "Stranger", started_bot=True)
    for user_id in MEMBERS:
        language = {0: "en", 1: "es", 2: "zh-hans"}[user_id % 3]
        api.add_user(user_id, f"Member{user_id}", language_code=language)
    api.add_group(WARMUP, "Spring line", supergroup=True, owner=LEADER, members=[777])
    api.add_group(TASKS, "Spring line tasks", supergroup=True, owner=LEADER)


async def launch(h: Harness) -> str:
    await h.say(ADMIN, ADMIN, f"/grant_leader {LEADER} SEA")
    assert "leader" in h.last_text(ADMIN).lower()
    await h.say(WARMUP, LEADER, "/launch start=2026-03-02")
    async with h.store.transaction() as tx:
        cohort = await tx.cohorts.by_chat(WARMUP)
    assert cohort is not None
    return cohort.code


async def members_of(store: SqlStore) -> dict[int, CohortMember]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(CohortMember.__table__))).all()
    return {r.user_id: r for r in rows}  # type: ignore[misc]
