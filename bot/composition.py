"""The composition root: the one place that builds the object graph.

``funnelbot run``, the command line and the simulation all get their store, messenger,
``Deps`` and (with a bot token) their Telegram side from here, so each is built one way:
the embedded database is migrated before it is opened, the domain gets the same parts
whoever drives it.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.clock import SystemClock
from bot.telegram.offline import LoggingMessenger
from funnels.deps import Deps, ScriptCache
from funnels.kernel.clock import Clock
from funnels.kernel.messaging import Messenger
from funnels.kernel.records import CohortRecord, MemberRef
from storage.db import create_engine
from storage.migrate import upgrade_async
from storage.uow import SqlStore

if TYPE_CHECKING:  # the Telegram side is imported where it is built (see below)
    from aiogram import Bot

    from bot.http.events import EventApplier, EventIntake
    from bot.http.links import LinkRedirects
    from bot.payouts import PayoutWorker
    from bot.settings import Settings
    from bot.telegram.app import FunnelDispatcher
    from bot.telegram.i18n import Catalog
    from bot.telegram.inbox import UpdateInbox
    from bot.telegram.services import Services
    from bot.telegram.throttle import Limits


@asynccontextmanager
async def open_store(url: str) -> AsyncIterator[SqlStore]:
    """The store over the database at ``url``, closed on the way out. The embedded
    SQLite database is migrated to the newest schema first; PostgreSQL is migrated
    explicitly (``funnelbot migrate``), since several processes share it."""
    if url.startswith("sqlite"):
        await upgrade_async(url)
    engine = create_engine(url)
    try:
        yield SqlStore(engine)
    finally:
        await engine.dispose()


def build_deps(
    store: SqlStore,
    messenger: Messenger | None = None,
    clock: Clock | None = None,
    *,
    scripts: ScriptCache | None = None,
) -> Deps:
    """What every use case gets. No messenger: what would be sent is logged."""
    return Deps(
        store=store,
        messenger=messenger or LoggingMessenger(),
        clock=clock or SystemClock(),
        scripts=scripts or ScriptCache(),
    )


def build_applier(deps: Deps, dialect: str) -> EventApplier:
    """What applies stored events (the platform's, clicks) in the background."""
    from bot.http.events import EventApplier, apply_batch

    return EventApplier(deps, apply_batch(dialect))


def build_intake(settings: Settings, deps: Deps, applier: EventApplier) -> EventIntake | None:
    """The inbound events intake, when a signing secret is set (else the route says
    events are off)."""
    if settings.events_secret is None:
        return None
    from bot.http.events import EventIntake

    return EventIntake(deps, settings.events_secret.get_secret_value(), applier)


def build_services(
    settings: Settings,
    store: SqlStore,
    clock: Clock,
    bot: Bot,
    *,
    limits: Limits | None = None,
    catalog: Catalog | None = None,
    scripts: ScriptCache | None = None,
) -> Services:
    """The Telegram side's parts around one bot: the throttled messenger (limits shared
    through Redis when several processes share the bot), the catalogue and renderer, the
    caches the hot paths use, and ``Deps`` with that messenger."""
    # Imported here: the command line and the simulation build a store and Deps without
    # loading aiogram and the rest of the Telegram side (seconds and ~150 MB).
    from redis.asyncio import Redis

    from bot import metrics
    from bot.outage import REDIS_TIMEOUT
    from bot.telegram.batching import ActivityBuffer, TapBatcher
    from bot.telegram.direct_api import DirectBotAPI
    from bot.telegram.i18n import Catalog
    from bot.telegram.messenger import TelegramMessenger
    from bot.telegram.render import Renderer
    from bot.telegram.services import ChatDirectory, Services, UserDirectory
    from bot.telegram.shared_throttle import SharedThrottle
    from bot.telegram.slowmode import SharedSlowMode, SlowMode, SlowModes
    from bot.telegram.throttle import Throttle, Throttling
    from funnels.cohorts.status import CohortOfChat
    from funnels.ladder.links import TaskLinkCode
    from funnels.people.users import MarkUnreachable, MeetUser
    from funnels.warmup.envelopes import ClaimShares

    catalog = catalog or Catalog.load()
    renderer = Renderer(catalog)
    throttle: Throttling
    slow_mode: SlowModes
    if settings.redis_url:  # several processes share the bot: its limits and slow mode
        redis = Redis.from_url(
            settings.redis_url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
        )
        throttle = SharedThrottle(redis, limits)
        slow_mode = SharedSlowMode(redis)
    else:
        throttle = Throttle(limits)
        slow_mode = SlowMode()
    metrics.THROTTLE_WAITS.throttles = [throttle]
    messenger = TelegramMessenger(bot, renderer, throttle, slow_mode=slow_mode)
    deps = build_deps(store, messenger, clock, scripts=scripts)
    services = Services(
        settings=settings,
        deps=deps,
        bot=bot,
        catalog=catalog,
        renderer=renderer,
        messenger=messenger,
        throttle=throttle,
        slow_mode=slow_mode,
        chats=ChatDirectory(CohortOfChat(deps)),
        users=UserDirectory(MeetUser(deps)),
        taps=TapBatcher(ClaimShares(deps)),
        direct=DirectBotAPI(bot),
        activity=ActivityBuffer(),
    )
    code_for = TaskLinkCode(deps)

    async def task_link(cohort: CohortRecord, member: MemberRef, task_id: str) -> str | None:
        code = await code_for(cohort, member, task_id)
        return settings.tracked_link(code) if code else None

    services.task_link = task_link  # the link a task's how-to shows
    messenger.on_migrated = services.migrated
    messenger.on_unreachable = MarkUnreachable(deps)
    return services


def build_inbox(store: SqlStore, services: Services, dp: FunnelDispatcher) -> UpdateInbox:
    """The update inbox in front of the dispatcher (polling and the webhook feed it).

    It names this process by host and HTTP port (no two processes on one host share a
    port, and a restart keeps both), and holds an update long enough for three ticks,
    since group chatter is marked handled when the tick writes its counts."""
    from bot.telegram.inbox import LEASE, Handlers, UpdateInbox
    from bot.telegram.routers.envelopes import close_after, grab, settle

    bot = services.bot
    settings = services.settings
    return UpdateInbox(
        store,
        services.deps.clock,
        bot.id,
        Handlers(
            update=lambda update: dp.feed_raw_update(bot, update),
            tap=lambda tap: grab(tap, services),
            deferred=services.activity.holds,
            settle=lambda tap: settle(tap, services),
            after=lambda answer: close_after(answer, services),
        ),
        owner=f"{socket.gethostname()[:50]}:{settings.http_port}",
        lease=max(LEASE, timedelta(seconds=3 * settings.tick_seconds)),
    )


@dataclass
class TelegramSide:
    bot: Bot
    services: Services
    dispatcher: FunnelDispatcher
    inbox: UpdateInbox


def build_telegram(settings: Settings, store: SqlStore, clock: Clock) -> TelegramSide:
    """The bot, its services, the dispatcher with the routers, and the update inbox."""
    from bot.telegram.app import build_bot, build_dispatcher

    bot = build_bot(settings)
    services = build_services(settings, store, clock, bot)
    dp = build_dispatcher(services)
    return TelegramSide(bot, services, dp, build_inbox(store, services, dp))


def build_payouts(
    settings: Settings,
    store: SqlStore,
    deps: Deps,
    owner: str,
    applier: EventApplier | None = None,
) -> PayoutWorker:
    """The payout worker over ``deps`` (reward notices always; deliveries when
    ``FUNNELBOT_PAYOUT_WEBHOOK_URL`` is set), woken by the store after each commit that
    recorded a reward; its deliveries give way to a burst of events being applied
    (``applier.settled``)."""
    from bot.payouts import PayoutWorker, WebhookSender

    sender = None
    if settings.payout_webhook_url and settings.payout_secret is not None:
        secret = settings.payout_secret.get_secret_value()
        sender = WebhookSender(settings.payout_webhook_url, secret, SystemClock())
    worker = PayoutWorker(deps, sender, owner, give_way=applier.settled if applier else None)
    store.on_rewards = worker.wake
    return worker


def build_link_redirects(
    settings: Settings, deps: Deps, applier: EventApplier, catalog: Catalog | None = None
) -> LinkRedirects:
    """``GET /r/{code}``'s parts: link lookups (remembered), clicks stored before the
    redirect in group commits and counted by the applier, the installation's cookie
    key."""
    from bot.http.links import ClickWriter, LinkRedirects, not_found_pages
    from bot.telegram.i18n import Catalog
    from funnels.ladder.links import FindLink, RecordClicks, VisitorKey

    return LinkRedirects(
        find=FindLink(deps),
        clicks=ClickWriter(RecordClicks(deps), applier),
        visitor_key=VisitorKey(deps),
        clock=deps.clock,
        not_found=not_found_pages(catalog or Catalog.load()),
        secure_cookie=settings.links_base.startswith("https://"),
    )
