"""``funnelbot run``: the Telegram side (long polling, or webhook mode behind the HTTP
app), the scheduler tick and the HTTP server, all built by :mod:`bot.composition`; and
the stop: SIGTERM or SIGINT stop fetching, let the updates in hand and the running tick
finish, write what is buffered, close the connections, and exit 0."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import uvicorn
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot import logs, metrics
from bot.clock import SystemClock, service_clock
from bot.composition import (
    build_applier,
    build_deps,
    build_intake,
    build_link_redirects,
    build_payouts,
    build_telegram,
    open_store,
)
from bot.heap import settle_heap
from bot.http.app import create_app
from bot.http.events import apply_batch
from bot.http.webhook import TelegramWebhook
from bot.payouts import PayoutWorker
from bot.settings import Settings
from bot.telegram.app import allowed_updates, register_commands
from bot.telegram.inbox import UpdateInbox
from bot.telegram.polling import Poller
from bot.telegram.reach import BotApiRefused, Reach
from bot.telegram.services import Services
from funnels.cohorts.tick import RunDueSteps, TickReport
from funnels.deps import Deps
from funnels.kernel.clock import Clock
from funnels.ladder.events import CatchUpEvents
from funnels.ops.board import FiguresBoard

if TYPE_CHECKING:
    from redis.asyncio import Redis
from storage.db import wal_checkpointer
from storage.uow import SqlStore

log = logging.getLogger("funnelbot")

GRACE = 7.0
"""Seconds the running tick and the updates in hand get, together, to finish at a stop;
with the HTTP server's own (:data:`HTTP_GRACE`) a stop ends within Docker's default
10 s before it kills the process."""
HTTP_GRACE = 2
"""Seconds requests in flight get when the HTTP server stops (a webhook call only stores
its update)."""
STALE_EVENTS = timedelta(seconds=30)
"""How long an event may wait for the event applier before the tick applies it."""
PRUNE_EVERY = 600.0
"""Seconds between two prunings of old handled updates."""
WAKE_EVERY = 0.05
"""Seconds between two looks at the clock for the next due step (a comparison of two
instants; on a drill's file clock, one ``stat`` of the file)."""


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling. uvicorn re-raises the signal it caught
    once it has stopped serving, which ends the process before the service's own stop
    has run; the service handles SIGTERM and SIGINT itself (see :func:`_signals`)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class _Telegram:
    services: Services
    inbox: UpdateInbox
    poller: Poller | None = None
    polling: asyncio.Task[None] | None = None
    webhook: TelegramWebhook | None = None
    reach: Reach | None = None

    def stop_taking_updates(self) -> None:
        if self.reach is not None:
            self.reach.stop()
        if self.poller is not None:
            self.poller.stop()


@dataclass
class _Ticker:
    """The scheduler's one job, with what the stop needs: a lock held while it runs."""

    deps: Deps
    telegram: _Telegram | None
    payouts: PayoutWorker | None = None
    apply_batch: int = 25
    running: asyncio.Lock = field(default_factory=asyncio.Lock)
    pruned_at: float = 0.0
    next_due: datetime | None = None
    """When the next step is due, as the last tick left it (see :func:`_wake_when_due`)."""
    unreached: bool = False
    """The last step tried could not reach the Bot API (said once, until one does)."""

    def __post_init__(self) -> None:
        self.steps = RunDueSteps(self.deps, owner=f"{socket.gethostname()}:{os.getpid()}")
        # Fresh events are the event applier's; the tick takes what it left behind.
        self.events = CatchUpEvents(
            self.deps,
            batch=self.apply_batch,
            stale_after=STALE_EVENTS,
        )

    async def run(self) -> None:
        async with self.running:
            if self.telegram is not None:
                await self._telegram_chores(self.telegram)
            report = await self.steps()
            metrics.record_tick(report)
            paused = list(report.paused_cohorts)
            while report.claimed >= self.steps.batch and not report.stopped:
                # A full batch: more is due (a busy minute, or a catch-up after a
                # stop); claim on now rather than a tick later.
                report = await self.steps()
                metrics.record_tick(report)
                paused += report.paused_cohorts
            self.next_due = report.next_due
            self._say_reach(report)
            if paused:
                log.warning(
                    "paused cohorts (the bot lost its group): %s",
                    paused,
                    extra={"cohort_ids": paused},
                )
            caught = await self.events()
            if caught.applied or caught.woke or caught.expired:
                log.info(
                    "events: %d pending applied, %d waiting applied, %d given up",
                    caught.applied,
                    caught.woke,
                    caught.expired,
                )
            if self.payouts is not None:
                # In the background: a slow payout receiver never holds up the steps.
                self.payouts.wake()

    def _say_reach(self, report: TickReport) -> None:
        if report.unreached and not self.unreached:
            log.warning(
                "the Bot API cannot be reached: due steps wait (nothing was sent) and go "
                "out as soon as it answers, a step its script skips when late past its grace"
            )
        elif self.unreached and report.claimed and not report.unreached:
            log.info("the Bot API answers again: due steps go out")
        else:
            return
        self.unreached = report.unreached

    async def _telegram_chores(self, telegram: _Telegram) -> None:
        services, inbox = telegram.services, telegram.inbox
        await services.flush_activity()
        services.throttle.forget_idle()  # chats quiet for 10 minutes
        await inbox.retry_stale()
        if time.monotonic() - self.pruned_at > PRUNE_EVERY:
            self.pruned_at = time.monotonic()
            removed = await inbox.prune()
            if removed:
                log.info("pruned %d old handled updates", removed)


async def _start_telegram(settings: Settings, store: SqlStore, clock: Clock) -> _Telegram:
    side = build_telegram(settings, store, clock)
    bot, services, inbox = side.bot, side.services, side.inbox
    updates = allowed_updates(side.dispatcher)
    telegram = _Telegram(services, inbox)
    # What the last run stored and did not handle comes first, in order.
    await inbox.recover()
    await services.flush_activity()
    if settings.webhook_url:
        assert settings.webhook_secret is not None  # the settings insist on it
        url, secret = settings.webhook_url, settings.webhook_secret.get_secret_value()
        # (Updates are taken from now on: Telegram may still post to the webhook an
        # earlier run set while this one cannot reach it.)
        telegram.webhook = TelegramWebhook(inbox, secret)

        async def set_up() -> None:
            await bot.set_webhook(url, secret_token=secret, allowed_updates=updates)
            log.info("Telegram webhook mode: updates arrive at %s", url)
    else:
        poller = telegram.poller = Poller(services.direct, inbox.accept, updates)

        async def set_up() -> None:
            await bot.delete_webhook()
            me = await bot.me()
            telegram.polling = asyncio.create_task(poller.run())
            log.info(
                "Telegram long polling as @%s against %s", me.username, settings.telegram_api_url
            )

    async def connect() -> None:
        await set_up()
        try:
            await register_commands(bot, services.catalog)
        except (TelegramAPIError, ClientDecodeError) as exc:  # menus are a nicety
            log.warning("could not register the command menus: %s", exc)

    telegram.reach = Reach(connect, settings.telegram_api_url)
    try:
        await telegram.reach.start()
    except BotApiRefused:
        await services.close()
        raise
    return telegram


@contextlib.contextmanager
def _signals(server: uvicorn.Server, on_stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM and SIGINT begin the stop; a second SIGINT skips the waiting."""
    loop = asyncio.get_running_loop()
    stopping = False

    def on_signal(sig: signal.Signals) -> None:
        nonlocal stopping
        if stopping:
            if sig == signal.SIGINT:
                log.warning("second interrupt: stopping without waiting")
                server.force_exit = True
            return
        stopping = True
        log.info("%s: stopping", sig.name)
        server.should_exit = True
        on_stop()

    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def serve(settings: Settings) -> None:
    clock = service_clock(settings.clock_file)
    telegram: _Telegram | None = None
    if settings.clock_file is not None:
        log.warning(
            "the clock is virtual: now is read from %s (FUNNELBOT_CLOCK_FILE), at %s",
            settings.clock_file,
            clock.now().isoformat(),
        )
    if settings.public_url is None:
        log.warning(
            "FUNNELBOT_PUBLIC_URL is not set: tracked links start with %s, which only "
            "this machine can open; set it to the address people reach this service at",
            settings.links_base,
        )
    async with open_store(settings.database_url) as store:
        try:
            if settings.bot_token is None:
                log.warning(
                    "FUNNELBOT_BOT_TOKEN is not set: running the scheduler and HTTP API only; "
                    "messages are logged instead of sent"
                )
                deps = build_deps(store, clock=clock)
            else:
                telegram = await _start_telegram(settings, store, clock)
                deps = telegram.services.deps
            await _serve(settings, store, deps, telegram)
        finally:
            if telegram is not None:
                await telegram.services.close()
    log.info("stopped")


async def _serve(
    settings: Settings,
    store: SqlStore,
    deps: Deps,
    telegram: _Telegram | None,
) -> None:
    applier = build_applier(deps, store.engine.dialect.name)
    intake = build_intake(settings, deps, applier)
    if intake is None:
        log.info("inbound events are off: FUNNELBOT_EVENTS_SECRET is not set")
    owner = f"{socket.gethostname()[:40]}:{os.getpid()}"
    payouts = build_payouts(settings, store, deps, owner, applier)
    if settings.payout_webhook_url is None:
        log.warning(
            "payouts are not configured (FUNNELBOT_PAYOUT_WEBHOOK_URL is not set): rewards "
            "are credited and their reward.granted events wait, pending, until it is"
        )
    ticker = _Ticker(deps, telegram, payouts, apply_batch(store.engine.dialect.name))
    scheduler = AsyncIOScheduler(timezone="UTC")
    # A tick that outlasts its interval delays the next one (coalesced, never run
    # twice at once): nothing to warn about on every start-up's catch-up.
    logging.getLogger("apscheduler.scheduler").addFilter(logs.SKIPPED_TICKS)
    # One job for all steps of all cohorts: the database says what is due. Never one
    # job per step or per member; any number of processes may tick side by side. The
    # first tick runs at once: what fell due while the service was down.
    scheduler.add_job(
        ticker.run,  # a coroutine function: APScheduler awaits it in the loop
        "interval",
        seconds=settings.tick_seconds,
        id="tick",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
        # The scheduler keeps the machine's time (the tick reads ``deps.clock``, which a
        # drill's FUNNELBOT_CLOCK_FILE may hold months away).
        next_run_time=SystemClock().now(),
    )
    catalog = telegram.services.catalog if telegram else None
    links = build_link_redirects(settings, deps, applier, catalog)
    # The KPI routes' figures and the live keys, in memory, read again every second.
    board = FiguresBoard(deps)
    metrics.FUNNEL.board = board
    redis = _shared_redis(settings)
    server = _Server(
        uvicorn.Config(
            create_app(
                store.engine,
                telegram.webhook if telegram else None,
                intake,
                links=links,
                deps=deps,
                public_url=settings.links_base,
                board=board,
                checks={"redis": redis.ping} if redis is not None else None,
                api_rate=settings.api_rate,
                redis=redis,
            ),
            host=settings.http_host,
            port=settings.http_port,
            log_level="info",
            log_config=None,  # uvicorn's lines go through the service's handler (bot/logs.py)
            # No line per request: webhook updates and platform events come by the
            # thousand a second; failures are logged where they are handled.
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=HTTP_GRACE,
        )
    )

    def stop_taking_work() -> None:
        """No more updates fetched, no more steps claimed (the one being sent finishes)."""
        if telegram is not None:
            telegram.stop_taking_updates()
        ticker.steps.stop()
        payouts.stop()

    checkpointer = wal_checkpointer(store.engine)
    scheduler.start()
    waking = asyncio.create_task(_wake_when_due(ticker, deps.clock, scheduler))
    applier.start()
    board.start()
    if checkpointer is not None:
        checkpointer.start()
    settle_heap()
    try:
        with _signals(server, stop_taking_work):
            await server.serve()
    finally:
        stop_taking_work()
        waking.cancel()
        await board.stop()
        await applier.stop()  # what is stored and not applied waits for the next start
        scheduler.pause()  # no new tick; the running one finishes (shutdown would cancel it)
        await _finish(ticker, telegram)
        scheduler.shutdown(wait=False)
        store.on_rewards = None
        await payouts.close(grace=1.0)
        if checkpointer is not None:
            await checkpointer.stop()
        if redis is not None:
            await redis.aclose()


async def _wake_when_due(ticker: _Ticker, clock: Clock, scheduler: AsyncIOScheduler) -> None:
    """Brings the tick forward to the instant the next step is due, so a step runs
    within :data:`WAKE_EVERY` of its time rather than up to ``FUNNELBOT_TICK_SECONDS``
    late; on a drill's file clock, as soon as the file reaches it.

    The instant is the one the last tick left (one query at its end, none here). A step
    planned since (a launch) is found by the next tick as before; so is a step another
    process claimed first, and then the brought-forward tick finds nothing."""
    try:
        while True:
            await asyncio.sleep(WAKE_EVERY)
            due = ticker.next_due
            if due is None or ticker.running.locked() or clock.now() < due:
                continue
            ticker.next_due = None  # once: the tick it brings forward says what is next
            scheduler.modify_job("tick", next_run_time=SystemClock().now())
    except Exception:  # the regular tick goes on: steps are late, never lost
        log.exception("bringing the tick forward to due steps failed; they wait for the tick")


def _shared_redis(settings: Settings) -> Redis | None:
    """A client for the HTTP side, when the processes share Redis: ``/readyz`` pings it and
    the API keys' rates are counted in it (short timeouts: a request never waits long for
    a Redis that does not answer; its rate is then counted in this process)."""
    if not settings.redis_url:
        return None
    from redis.asyncio import Redis

    from bot.outage import REDIS_TIMEOUT

    return Redis.from_url(
        settings.redis_url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
    )


async def _finish(ticker: _Ticker, telegram: _Telegram | None) -> None:
    """What a stop owes: the polling loop ended, the running tick and the updates in hand
    finished (within the grace, together), the buffers written."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GRACE
    if telegram is not None and telegram.reach is not None:
        await telegram.reach.stopped()
    if telegram is not None and telegram.polling is not None:
        await telegram.polling
    try:
        await asyncio.wait_for(ticker.running.acquire(), deadline - loop.time())
    except TimeoutError:
        log.warning("the tick did not finish within %.0f s", GRACE)
    if telegram is not None:
        await telegram.inbox.drain(max(deadline - loop.time(), 0.1))
        await telegram.services.flush_activity()
        await telegram.inbox.flush()


def run(settings: Settings) -> None:
    with logs.configured(settings.log_format):
        try:
            import uvloop
        except ImportError:  # not built for this platform (Windows): the standard loop
            asyncio.run(serve(settings))
        else:
            # uvloop's event loop: the same asyncio API, in C; the HTTP intake and the
            # Telegram side both spend much of their time in the loop itself.
            uvloop.run(serve(settings))
