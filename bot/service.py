"""The composition root for ``funnelbot run``: storage, engine, scheduler tick and HTTP."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.clock import SystemClock
from bot.http.app import create_app
from bot.messengers import LoggingMessenger
from bot.settings import Settings
from funnels.cohorts import Deps, RunDueSteps
from storage.db import create_engine
from storage.migrate import upgrade_async
from storage.repositories import SqlStore

log = logging.getLogger("funnelbot")


async def serve(settings: Settings) -> None:
    if settings.embedded:
        await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    if settings.bot_token is None:
        log.warning(
            "FUNNELBOT_BOT_TOKEN is not set: running the scheduler and HTTP API only; "
            "messages are logged instead of sent"
        )
    messenger = LoggingMessenger()
    deps = Deps(store=SqlStore(engine), messenger=messenger, clock=SystemClock())
    tick = RunDueSteps(deps, owner=f"{socket.gethostname()}:{os.getpid()}")

    scheduler = AsyncIOScheduler(timezone="UTC")

    # One job for all steps of all cohorts: the database says what is due. Never one
    # job per step or per member; any number of processes may tick side by side.
    async def run_tick() -> None:
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
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(engine),
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
        await engine.dispose()


def run(settings: Settings) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # A line per tick every few seconds would bury everything else.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    asyncio.run(serve(settings))
