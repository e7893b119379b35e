#!/usr/bin/env python3
"""Benchmark: group message updates per second through the bot vs bare aiogram dispatch,
with and without the update inbox.

Default shape (issue target): a cohort launched in a warm-up group with 500 members
joined, the virtual clock run to the day-7 pitch (so "1" matching is live), then 20,000
group message updates (about 5% "1", the rest ordinary chat) fed to (a) a bare aiogram
``Dispatcher`` with one trivial message handler and (b) the bot's dispatcher, which counts
activity (flushed every 1,000 updates, as the tick would, and at the end: flush time is
counted) and records each "1" and reacts to it over HTTP (the local Bot API server runs
in a process of its own, as Telegram's servers are not on the bot's CPU; ``--server
thread`` puts it in a thread of this process). Both are fed the same updates as aiogram's
long polling feeds them: pages of 100 (what one getUpdates returns), each update of a page
handled as a task of its own, the next page once the page is done (``--page 1`` feeds
them one at a time, so every database commit and reaction round trip adds up). The two
take turns chunk by chunk, so that other load on the machine weighs on both alike.
(c) is the bot as ``funnelbot run`` feeds it now: each page stored in the update inbox
first (one transaction), then handled, the updates marked handled with the activity
counts they add to; (b) is the same bot fed straight, as before the inbox. Target:
(c)/(a) >= 0.5; (c)/(b) is what the inbox costs.
SQLite by default; ``--database-url`` runs it on PostgreSQL in a scratch database created
and dropped on that server. Flood windows are the e2e harness's shortened ones, so the
week before the pitch ticks through in seconds (reactions, the only calls in the timed
part, are not throttled).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import random
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aiogram import Bot, Dispatcher
from aiogram.types import Message
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.composition import build_inbox, build_services
from bot.heap import settle_heap
from bot.settings import Settings
from bot.telegram.app import build_bot, build_dispatcher
from bot.telegram.inbox import UpdateInbox
from funnels.cohorts.tick import RunDueSteps
from funnels.kernel.clock import ManualClock
from funnels.people.regions import AddRegion
from scripts.bench.scratch import scratch_database
from storage.db import create_engine
from storage.models import MemberActivity
from storage.uow import SqlStore
from tests.botapi import LocalBotAPI
from tests.botapi.remote import RemoteBotAPI
from tests.support.harness import ADMIN, BOT_LIMITS, LEADER, SERVER_LIMITS, TOKEN, WARMUP

JsonDict = dict[str, Any]
START = "2026-03-02"
FIRST_MEMBER = 100_000
OWN_MESSAGE_IDS = 10_000_000  # ids of the hand-made messages, clear of the server's
FIRST_UPDATE_ID = 10_000_000
CHATTER = ["good evening!", "thanks for the talk", "is 1 enough?", "where is the link?", "🙏"]
TARGET = 0.5


def database(url: str | None) -> contextlib.AbstractAsyncContextManager[str]:
    """A fresh database migrated to head: a temp SQLite file, or a scratch PostgreSQL one."""
    return scratch_database(url, "updates")


async def timed(
    dp: Dispatcher,
    bot: Bot,
    updates: list[JsonDict],
    then: Callable[[], Awaitable[object]],
    page: int,
) -> tuple[float, float]:
    """Feed ``updates`` a page at a time (each update of a page as a task, as aiogram's
    polling does), then await ``then``: wall seconds in all and in ``then``."""
    started = time.perf_counter()
    for first in range(0, len(updates), page):
        batch = updates[first : first + page]
        if len(batch) == 1:
            await dp.feed_raw_update(bot, batch[0])
        else:
            await asyncio.gather(*(dp.feed_raw_update(bot, u) for u in batch))
    mark = time.perf_counter()
    await then()
    return time.perf_counter() - started, time.perf_counter() - mark


async def timed_inbox(
    inbox: UpdateInbox,
    updates: list[JsonDict],
    then: Callable[[], Awaitable[object]],
    page: int,
) -> tuple[float, float]:
    """As :func:`timed`, through the inbox: each page stored, then handled (the next
    page once this one is done); ``then`` and the last marks written at the end."""
    started = time.perf_counter()
    for first in range(0, len(updates), page):
        await inbox.accept(updates[first : first + page])
        await inbox.drain(3600)
    mark = time.perf_counter()
    await then()
    await inbox.flush()
    return time.perf_counter() - started, time.perf_counter() - mark


def renumbered(updates: list[JsonDict], offset: int) -> list[JsonDict]:
    """Copies with update ids of their own: the inbox handles an update id once."""
    out = copy.deepcopy(updates)
    for update in out:
        update["update_id"] += offset
    return out


async def run(args: argparse.Namespace, api: Any, url: str) -> None:  # long: one run, in order
    store = SqlStore(create_engine(url))
    settings = Settings(
        bot_token=SecretStr(TOKEN),
        telegram_api_url=api.base_url,
        admin_ids=[ADMIN],
        _env_file=None,
    )
    clock = ManualClock(datetime(2026, 3, 1, 10, tzinfo=ZoneInfo("Asia/Singapore")))
    bot = build_bot(settings)
    services = build_services(settings, store, clock, bot, limits=BOT_LIMITS)
    dp = build_dispatcher(services)
    inbox = build_inbox(store, services, dp)
    try:
        # The world: an admin, a leader, N members; a launched cohort they all joined.
        await AddRegion(services.deps)("SEA", "Southeast Asia", "Asia/Singapore")
        api.add_user(ADMIN, "Ada", started_bot=True)
        api.add_user(LEADER, "Lena", started_bot=True)
        members = [FIRST_MEMBER + i for i in range(args.members)]
        users = [api.add_user(m, f"Member{m}") for m in members]
        api.add_group(WARMUP, "Spring line", supergroup=True, owner=LEADER)
        await dp.feed_raw_update(bot, api.say(ADMIN, ADMIN, f"/grant_leader {LEADER} SEA"))
        await dp.feed_raw_update(bot, api.say(WARMUP, LEADER, f"/launch start={START}"))
        link = next(link for link, s in api.invite_links.items() if s.chat_id == WARMUP)
        for m in members:
            await dp.feed_raw_update(bot, api.join(WARMUP, m, invite_link=link))
        # Tick through the week until the pitch went out.
        while True:
            async with store.transaction() as tx:
                cohort = await tx.cohorts.by_chat(WARMUP)
                due = await tx.steps.next_due_at()
            assert cohort is not None and cohort.status == "running", cohort
            if cohort.pitch_opened_at is not None or due is None:
                break
            clock.set(max(due, clock.now()))
            await services.flush_activity()
            await RunDueSteps(services.deps)()
        assert cohort.pitch_opened_at is not None, "the pitch never ran"
        assert not services.slow_mode.active(WARMUP), "slow mode would delete messages"

        # The input: ordinary chat made here; each "1" said through the server, so the
        # message exists there to be reacted to. Same list (deep copies) for both runs.
        rng = random.Random(args.seed)
        template = api.say(WARMUP, LEADER, "good evening everyone")["message"]
        warm = [{"message": chat(template, users, rng, i)} for i in range(args.warmup)]
        updates: list[JsonDict] = []
        answered: set[int] = set()
        for i in range(args.updates):
            if rng.random() < args.answer_rate:
                sender = rng.choice(members)
                answered.add(sender)
                updates.append({"message": api.say(WARMUP, sender, "1")["message"]})
            else:
                updates.append({"message": chat(template, users, rng, args.warmup + i)})
        for n, update in enumerate([*warm, *updates], 1):
            update["update_id"] = FIRST_UPDATE_ID + n

        bare = Dispatcher(disable_fsm=True)  # configured as the bot's is

        async def trivial(message: Message) -> None:
            pass

        async def nothing() -> None:
            pass

        bare.message.register(trivial)
        rows_before, counted_before = await activity(store)
        settle_heap()  # as `funnelbot run` does once it is up
        await timed(bare, bot, copy.deepcopy(warm), nothing, args.page)
        await timed(dp, bot, copy.deepcopy(warm), services.flush_activity, args.page)
        await timed_inbox(inbox, renumbered(warm, 1), services.flush_activity, args.page)
        reactions_before = len(api.reactions)
        # Chunk by chunk (a chunk = the updates between two activity flushes), the three
        # in turn, rotating which goes first: other load on the machine then weighs on
        # all of them alike. Each "1" is recorded by whichever side sees it first.
        walls = [0.0, 0.0, 0.0]
        flushes = [0.0, 0.0, 0.0]
        offset = 2 * len(warm)  # update ids clear of the warm-up's copies
        for k, start in enumerate(range(0, len(updates), args.flush_every)):
            chunk = updates[start : start + args.flush_every]
            for side in (k % 3, (k + 1) % 3, (k + 2) % 3):
                if side == 0:
                    wall, flush = await timed(bare, bot, copy.deepcopy(chunk), nothing, args.page)
                elif side == 1:
                    wall, flush = await timed(
                        dp, bot, copy.deepcopy(chunk), services.flush_activity, args.page
                    )
                else:
                    offset += len(updates)
                    wall, flush = await timed_inbox(
                        inbox, renumbered(chunk, offset), services.flush_activity, args.page
                    )
                walls[side] += wall
                flushes[side] += flush
        bare_wall, bot_wall, inbox_wall = walls
        async with store.transaction() as tx:
            inbox_states = await tx.updates.counts(bot.id)
        reactions = len(api.reactions) - reactions_before
        rows, counted = await activity(store)
    finally:
        await services.close()
        await store.engine.dispose()

    n = len(updates)
    ratio = (n / inbox_wall) / (n / bare_wall)
    ones = sum(1 for u in updates if u["message"].get("text") == "1")
    print(f"members x updates      {args.members} x {n}  ({ones} '1' from {len(answered)} members)")
    where = make_url(args.database_url).render_as_string() if args.database_url else None
    print(f"database               {where or 'sqlite (temporary file)'} (scratch copy)")
    print(f"fed                    pages of {args.page}, each update of a page as a task")
    print(f"(a) bare aiogram       {n / bare_wall:,.0f} updates/s  ({bare_wall:.2f} s)")
    flushed = f"in {-(-n // args.flush_every)} activity flushes"
    print(
        f"(b) funnelbot, before  {n / bot_wall:,.0f} updates/s  ({bot_wall:.2f} s, of which"
        f" {flushes[1]:.2f} s {flushed}; fed straight, nothing stored)"
    )
    print(
        f"(c) funnelbot, inbox   {n / inbox_wall:,.0f} updates/s  ({inbox_wall:.2f} s, of which"
        f" {flushes[2]:.2f} s {flushed} and marks)"
    )
    verdict = "PASS" if ratio >= TARGET else "FAIL"
    print(f"ratio (c)/(a)          {ratio:.3f}   (target >= {TARGET})  {verdict}")
    print(f"ratio (c)/(b)          {bot_wall / inbox_wall:.3f}   (what the inbox costs)")
    expected = f"expected {len(answered)}: distinct members who said '1'"
    print(f"reactions sent         {reactions}  ({expected})")
    speakers = len({u["message"]["from"]["id"] for u in [*warm, *updates]})
    print(f"activity rows written  {rows - rows_before}  (expected {speakers}: members who spoke)")
    print(f"messages counted       {counted - counted_before}  (expected {2 * (len(warm) + n)})")
    stored = len(warm) + n
    print(f"inbox                  {inbox_states}  (expected {{'handled': {stored}}})")
    print(
        "reproduce:             .venv/bin/python scripts/bench/updates.py " + " ".join(sys.argv[1:])
    )


def chat(template: JsonDict, users: list[JsonDict], rng: random.Random, i: int) -> JsonDict:
    """An ordinary group message from a random member, shaped like the server's."""
    return {
        **copy.deepcopy(template),
        "message_id": OWN_MESSAGE_IDS + i,
        "from": dict(rng.choice(users)),
        "text": rng.choice(CHATTER),
    }


async def activity(store: SqlStore) -> tuple[int, int]:
    """Activity rows and the messages they count."""
    async with store.engine.connect() as conn:
        total = func.coalesce(func.sum(MemberActivity.messages), 0)
        row = (await conn.execute(select(func.count(), total))).one()
    return int(row[0]), int(row[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument("--answer-rate", type=float, default=0.05, help='share of "1" messages')
    parser.add_argument("--warmup", type=int, default=500, help="untimed updates per dispatcher")
    parser.add_argument("--flush-every", type=int, default=1000, help="updates per flush")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--page", type=int, default=100, help="updates handled concurrently (getUpdates page)"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="server answer delay, s")
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--server",
        choices=["process", "thread"],
        default="process",
        help="where the local Bot API server runs (thread: sharing this process)",
    )
    args = parser.parse_args()

    api: Any = (
        RemoteBotAPI(TOKEN, latency=args.latency, **SERVER_LIMITS)
        if args.server == "process"
        else LocalBotAPI(TOKEN, latency=args.latency, **SERVER_LIMITS).start_in_thread()
    )

    async def go() -> None:
        async with database(args.database_url) as url:
            await run(args, api, url)

    try:
        asyncio.run(go())
    finally:
        if isinstance(api, RemoteBotAPI):
            api.close()
        else:
            api.stop_thread()


if __name__ == "__main__":
    main()
