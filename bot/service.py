"""The composition root for ``funnelbot run``: storage, engine, the Telegram bot (long
polling, or webhook mode behind the HTTP app), the scheduler tick and the HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket

import uvicorn
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.clock import SystemClock
from bot.http.app import TelegramWebhook, create_app
from bot.messengers import LoggingMessenger
from bot.polling import poll
from bot.services import Services, build_services
from bot.settings import Settings
from bot.telegram_app import allowed_updates, build_bot, build_dispatcher, register_commands
from funnels.cohorts import Deps, RunDueSteps
from storage.db import create_engine
from storage.migrate import upgrade_async
from storage.repositories import SqlStore

log = logging.getLogger("funnelbot")


def settle_heap() -> None:
    """Take what start-up left alive out of the garbage collector's sight.

    aiogram and pydantic leave tens of thousands of long-lived objects (classes, schemas,
    validators); every full collection walks them all, which showed as pauses of up to
    a few hundred milliseconds in a crowd's taps on a red envelope. Frozen, they stay
    alive and are skipped; objects made afterwards are collected as usual.

    Then the collector runs less often. With the start-up heap frozen, what is left is
    small, so CPython's rule for a full collection (objects surviving into the oldest
    generation add up to a quarter of it) fires during every burst of hundreds of
    updates, walking all of their tasks and payloads: 20 to 80 ms each, about once per
    storm of taps. Collecting the youngest generation every 10,000 allocations rather
    than 700, and the older ones 20 times more rarely than that, takes those pauses out
    of the bursts; cyclic garbage waits a little longer (a few megabytes at most).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


async def serve(settings: Settings) -> None:
    if settings.embedded:
        await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    store = SqlStore(engine)
    clock = SystemClock()
    services: Services | None = None
    polling: asyncio.Task[None] | None = None
    webhook: TelegramWebhook | None = None
    if settings.bot_token is None:
        log.warning(
            "FUNNELBOT_BOT_TOKEN is not set: running the scheduler and HTTP API only; "
            "messages are logged instead of sent"
        )
        deps = Deps(store=store, messenger=LoggingMessenger(), clock=clock)
    else:
        bot = build_bot(settings)
        services = build_services(settings, store, clock, bot)
        deps = services.deps
        dp = build_dispatcher(services)
        updates = allowed_updates(dp)
        try:
            await register_commands(bot, services.catalog)
        except (TelegramAPIError, ClientDecodeError) as exc:  # menus are a nicety
            log.warning("could not register the command menus: %s", exc)
        if settings.webhook_url:
            assert settings.webhook_secret is not None  # the settings insist on it
            secret = settings.webhook_secret.get_secret_value()
            await bot.set_webhook(
                settings.webhook_url, secret_token=secret, allowed_updates=updates
            )
            webhook = TelegramWebhook(dp, bot, secret)
            log.info("Telegram webhook mode: updates arrive at %s", settings.webhook_url)
        else:
            await bot.delete_webhook()
            me = await bot.me()
            polling = asyncio.create_task(poll(dp, bot, services.direct, updates))
            log.info(
                "Telegram long polling as @%s against %s", me.username, settings.telegram_api_url
            )
    tick = RunDueSteps(deps, owner=f"{socket.gethostname()}:{os.getpid()}")

    scheduler = AsyncIOScheduler(timezone="UTC")

    # One job for all steps of all cohorts: the database says what is due. Never one
    # job per step or per member; any number of processes may tick side by side.
    async def run_tick() -> None:
        if services is not None:
            await services.flush_activity()
            services.throttle.forget_idle()  # chats quiet for 10 minutes
        report = await tick()
        if report.paused_cohorts:
            log.warning("paused cohorts (the bot lost its group): %s", report.paused_cohorts)

    scheduler.add_job(
        run_tick,
        "interval",
        seconds=settings.tick_seconds,
        id="tick",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
    scheduler.start()
    settle_heap()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(engine, webhook),
            host=settings.http_host,
            port=settings.http_port,
            log_level="info",
            lifespan="off",
        )
    )
    try:
        await server.serve()
    finally:
        scheduler.shutdown(wait=False)
        if services is not None:
            if polling is not None:
                polling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await polling
            await services.flush_activity()
            await services.close()
        await engine.dispose()


def run(settings: Settings) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # A line per tick every few seconds would bury everything else.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    asyncio.run(serve(settings))
