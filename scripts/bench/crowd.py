"""What the tap benchmarks share: the bot side as ``funnelbot run`` builds it (against a
local Bot API server, with limits no crowd reaches), and a crowd already in a warm-up
group whose cohort has started."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiogram import Bot
from pydantic import SecretStr

from bot.composition import build_inbox, build_services
from bot.settings import Settings
from bot.telegram.app import FunnelDispatcher, build_bot, build_dispatcher
from bot.telegram.inbox import UpdateInbox
from bot.telegram.services import Services
from bot.telegram.throttle import Limits, Window
from funnels.cohorts.launch import StartCohort
from funnels.kernel.actor import Actor
from funnels.kernel.clock import ManualClock
from funnels.kernel.records import CohortRecord
from funnels.scripts.library import DEFAULT_SCRIPT, script_path
from funnels.scripts.loader import load_script
from funnels.warmup.joins import MemberJoined
from storage.uow import SqlStore

UNLIMITED = Limits(
    group=Window(10_000, 1.0), private=Window(10_000, 1.0), overall=Window(10_000, 1.0)
)


@dataclass
class BotSide:
    bot: Bot
    services: Services
    dispatcher: FunnelDispatcher
    inbox: UpdateInbox


def bot_side(token: str, api_url: str, store: SqlStore, now: datetime) -> BotSide:
    settings = Settings(
        bot_token=SecretStr(token),
        telegram_api_url=api_url,
        _env_file=None,  # type: ignore[call-arg]
    )
    bot = build_bot(settings)
    services = build_services(settings, store, ManualClock(now), bot, limits=UNLIMITED)
    dp = build_dispatcher(services)
    return BotSide(bot, services, dp, build_inbox(store, services, dp))


async def crowd_in_group(
    api: Any, services: Services, group: int, members: list[int], now: datetime
) -> tuple[CohortRecord, dict[int, int]]:
    """``members`` (Telegram ids) in ``group``, joined to a cohort started today, as the
    join handler records them; the cohort and each member's user id."""
    api.add_group(group, "Crowd", supergroup=True)
    for tg in members:
        api.add_user(tg, f"M{tg}")
        api.set_member(group, tg, "member")
    cohort = await StartCohort(services.deps)(
        load_script(script_path(DEFAULT_SCRIPT, "en")),
        start=now.date(),
        code=f"C{secrets.token_hex(4).upper()}",
        capacity=len(members),
        warmup_chat_id=group,
    )
    user_of: dict[int, int] = {}
    join = MemberJoined(services.deps)
    for tg in members:
        joined = await join(group, Actor(tg, f"M{tg}", "en"))
        user_of[tg] = joined.user_id
        services.users.remember(tg, joined.user_id, "en")
    return cohort, user_of
