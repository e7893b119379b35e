#!/usr/bin/env python3
"""Benchmark: a burst of joins through long polling, with and without the update inbox.

Each trial opens a warm-up group of its own with a launched cohort, then 500 people join
it at once (each join is a ``chat_member`` update followed by the "joined" service
message: 1,000 updates). The bot's own long polling (``bot.telegram.polling.Poller``, getUpdates
from the local Bot API server in a process of its own) hands each page to either

- ``inbox``: the update inbox, as ``funnelbot run`` does now: the page is stored (one
  transaction) before it is confirmed, each update then handled and marked handled; or
- ``straight``: the dispatcher directly, each update a task, as before the inbox (a page
  was confirmed before it was handled, so a crash lost it).

The figure is joins recorded per second, from the burst to the last join stored; the
trials take turns between the two, so load on the machine weighs on both alike. Every
trial checks that each of the 500 joins was recorded once, with its inviter.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pydantic import SecretStr
from sqlalchemy import func, select

from bot.composition import build_inbox, build_services
from bot.heap import settle_heap
from bot.settings import Settings
from bot.telegram.app import allowed_updates, build_bot, build_dispatcher
from bot.telegram.polling import Poller
from bot.telegram.throttle import Limits, Window
from funnels.cohorts.launch import StartCohort
from funnels.kernel.clock import ManualClock
from funnels.scripts.library import DEFAULT_SCRIPT, script_path
from funnels.scripts.loader import load_script
from scripts.bench.scratch import scratch_database
from storage.db import create_engine
from storage.migrate import upgrade_async
from storage.tables import cohort_members
from storage.uow import SqlStore
from tests.botapi.remote import RemoteBotAPI

TOKEN = "4343:JOINS"
NOW = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
WAYS = ("inbox", "straight")
UNLIMITED = Limits(
    group=Window(10_000, 1.0), private=Window(10_000, 1.0), overall=Window(10_000, 1.0)
)
Json = dict[str, Any]


async def run(url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    await upgrade_async(url)
    engine = create_engine(url)
    store = SqlStore(engine)
    wanted = ["message", "chat_member", "my_chat_member", "chat_join_request", "callback_query"]
    api = RemoteBotAPI(TOKEN, limits=False, allowed_updates=wanted)
    rates: dict[str, list[float]] = {way: [] for way in WAYS}
    try:
        settings = Settings(
            bot_token=SecretStr(TOKEN), telegram_api_url=api.base_url, _env_file=None
        )
        bot = build_bot(settings)
        services = build_services(settings, store, ManualClock(NOW), bot, limits=UNLIMITED)
        dp = build_dispatcher(services)
        inbox = build_inbox(store, services, dp)
        in_hand: set[asyncio.Task[Any]] = set()

        async def straight(updates: list[Json]) -> None:
            for update in updates:  # as the polling before the inbox: a task each
                task = asyncio.create_task(dp.feed_raw_update(bot, update))
                in_hand.add(task)
                task.add_done_callback(in_hand.discard)

        accept: dict[str, Callable[[list[Json]], Awaitable[object]]] = {
            "inbox": inbox.accept,
            "straight": straight,
        }
        loaded = load_script(script_path(DEFAULT_SCRIPT, "en"))
        settle_heap()
        for trial in range(args.trials):
            way = WAYS[trial % 2]
            rate = await one_trial(api, services, store, loaded, accept[way], dp, trial, args)
            await inbox.drain(60)
            await asyncio.gather(*in_hand)
            rates[way].append(rate)
            print(
                f"  trial {trial + 1}/{args.trials} ({way}): {rate:,.0f} joins/s", file=sys.stderr
            )
        await inbox.flush()
        await services.close()
    finally:
        api.close()
        await engine.dispose()
    return rates


async def one_trial(
    api: Any,
    services: Any,
    store: SqlStore,
    loaded: Any,
    accept: Callable[[list[Json]], Awaitable[object]],
    dp: Any,
    trial: int,
    args: argparse.Namespace,
) -> float:
    group = -(10**12 + secrets.randbelow(10**9))
    first = 1_000_000 + trial * args.members
    people = list(range(first, first + args.members))
    api.add_group(group, f"Joins {trial}", supergroup=True)
    for tg in people:
        api.add_user(tg, f"J{tg}")
    cohort = await StartCohort(services.deps)(
        loaded,
        start=NOW.date(),
        code=f"J{secrets.token_hex(4).upper()}",
        capacity=args.members,
        warmup_chat_id=group,
    )
    poller = Poller(services.direct, accept, allowed_updates(dp), wait=1)
    polling = asyncio.create_task(poller.run())
    counter = create_engine(str(store.engine.url.render_as_string(hide_password=False)))
    try:
        await asyncio.sleep(0.2)  # the poll is waiting on the server
        api.join_many(group, people)
        started = time.perf_counter()
        count = select(func.count()).where(cohort_members.c.cohort_id == cohort.id)
        async with asyncio.timeout(120):
            while True:
                async with counter.connect() as conn:
                    recorded = int((await conn.execute(count)).scalar_one())
                if recorded >= args.members:
                    break
                await asyncio.sleep(0.005)
        took = time.perf_counter() - started
    finally:
        poller.stop()
        await polling
        await counter.dispose()
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(func.count(), func.count(func.distinct(cohort_members.c.user_id))).where(
                    cohort_members.c.cohort_id == cohort.id
                )
            )
        ).one()
    if tuple(rows) != (args.members, args.members):
        raise SystemExit(f"trial {trial}: {tuple(rows)} joins recorded, {args.members} wanted")
    return args.members / took


async def on_scratch(url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    """The trials on a fresh database: PostgreSQL's is a scratch one, dropped after (the
    updates a run stores would make the next run's, numbered from 1 again, repeats)."""
    if url.startswith("sqlite"):
        return await run(url, args)
    async with scratch_database(url, "joins") as scratch:
        return await run(scratch, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="per database, both ways")
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--postgres", action="store_true", help="also on the local PostgreSQL")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    urls = [f"sqlite+aiosqlite:///{tmp.name}/joins.db"]
    if args.postgres:
        urls.append("postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    for url in urls:
        name = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
        print(f"{name}: {args.trials} trials of {args.members} joins", file=sys.stderr)
        rates = asyncio.run(on_scratch(url, args))
        print(f"\n{name}: a burst of {args.members} joins through long polling")
        for way in WAYS:
            label = "through the update inbox" if way == "inbox" else "fed straight (before)"
            values = rates[way]
            if not values:
                continue
            print(
                f"  {label:26} median {statistics.median(values):,.0f} joins/s "
                f"(worst {min(values):,.0f}, best {max(values):,.0f}; {len(values)} trials)"
            )
        if rates["inbox"] and rates["straight"]:
            ratio = statistics.median(rates["inbox"]) / statistics.median(rates["straight"])
            print(f"  inbox / straight          {ratio:.2f}")
    print(
        "\nreproduce: .venv/bin/python scripts/bench/joins.py"
        f" --trials {args.trials} --members {args.members}"
        + (" --postgres" if args.postgres else "")
    )


if __name__ == "__main__":
    main()
