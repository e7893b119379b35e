#!/usr/bin/env python3
"""Benchmark: a burst of private messages and group posts through the throttled messenger.

Default shape (issue target): 500 private ``notify`` calls (reward notices) plus 20 posts
into each of 3 groups, all at once with ``asyncio.gather`` as a tick and a reward burst
would, through :class:`bot.telegram.TelegramMessenger` with the production ``Limits()``,
against the local Bot API server enforcing Telegram's production flood limits (20 per
60 s per group, 1 per 1 s per private chat, 30 per 1 s overall) in its own thread.
Targets: zero 429s and >= 27 messages a second. With 60 group posts fitting in the first
minute, the rate is bounded by the global 30/s (less the throttle's margin: one send every
34.7 ms, at most 28.8/s). ``--latency`` delays every call at the server before it is
counted, as a network's one-way delay would; the throttle counts a send from its slot, not
its answer, so the rate should not fall as the latency grows.

``--processes N`` splits the same burst over N senders, each with its own Bot API
session and throttle, as N processes sharing one bot would; with ``--redis-url`` their
throttles are :class:`bot.telegram.shared_throttle.SharedThrottle` on that Redis and keep one
count (without it each keeps its own, and together they overrun Telegram's limits).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pydantic import SecretStr
from redis.asyncio import Redis

from bot.settings import Settings
from bot.telegram.app import build_bot
from bot.telegram.i18n import Catalog
from bot.telegram.messenger import TelegramMessenger
from bot.telegram.render import Renderer
from bot.telegram.shared_throttle import SharedThrottle
from bot.telegram.throttle import Limits, Throttle, Throttling
from funnels.kernel.messaging import RewardNotice, ScriptPost
from funnels.kernel.records import MemberRef
from tests.botapi import LocalBotAPI

TOKEN = "4242:BENCH"
FIRST_USER = 10_000
FIRST_GROUP = -1_001_000_000_000
TARGET_RATE = 27.0
RETRY_AFTER = re.compile(r"retry after (\d+)")


@dataclass
class Outcome:
    sent: int
    failed: int
    wall: float
    slowest: float


async def timed(call: Awaitable[object], started: float, delays: list[float]) -> bool:
    """Await one send; record how long after the burst started it completed."""
    result = await call
    delays.append(time.perf_counter() - started)
    return result is not False


async def burst(api: LocalBotAPI, args: argparse.Namespace) -> Outcome:
    members, groups, posts = args.members, args.groups, args.posts
    settings = Settings(
        bot_token=SecretStr(TOKEN),
        telegram_api_url=api.base_url,
        admin_ids=[],
        _env_file=None,
    )
    prefix = f"bench:{secrets.token_hex(4)}"  # a count of this run's own
    throttles: list[Throttling] = [
        SharedThrottle(Redis.from_url(args.redis_url), Limits(), prefix=prefix)
        if args.redis_url
        else Throttle(Limits())
        for _ in range(args.processes)
    ]
    catalog = Catalog.load()
    senders = [
        TelegramMessenger(build_bot(settings), Renderer(catalog), throttle)
        for throttle in throttles
    ]
    try:
        for sender in senders:  # open the HTTP sessions before the clock starts
            await sender.bot.get_me()
        group_ids = [FIRST_GROUP - g for g in range(groups)]
        user_ids = [FIRST_USER + i for i in range(members)]
        delays: list[float] = []
        started = time.perf_counter()
        jobs = [
            timed(
                senders[(n + chat_id) % len(senders)].send(
                    chat_id, ScriptPost(f"Day 3, post {n + 1}: keep going!")
                ),
                started,
                delays,
            )
            for n in range(posts)
            for chat_id in group_ids
        ]
        jobs += [
            timed(
                senders[i % len(senders)].notify(
                    MemberRef(user_id=i + 1, telegram_id=user_id, language="en"),
                    RewardNotice("invite-3", "Invite three friends", 500, "USD", None, "en"),
                ),
                started,
                delays,
            )
            for i, user_id in enumerate(user_ids)
        ]
        results = await asyncio.gather(*jobs)
        wall = time.perf_counter() - started
    finally:
        for sender, throttle in zip(senders, throttles, strict=True):
            await sender.bot.session.close()
            if isinstance(throttle, SharedThrottle):
                await throttle.close()
    ok = sum(1 for r in results if r)
    return Outcome(ok, len(results) - ok, wall, max(delays, default=0.0))


def main() -> None:  # long: the options and the report of one run, in order
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=500, help="private messages (one each)")
    parser.add_argument("--groups", type=int, default=3)
    parser.add_argument("--posts", type=int, default=20, help="posts into each group")
    parser.add_argument(
        "--latency", type=float, default=0.02, help="server answer delay in seconds"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="senders sharing the bot (one throttle each)"
    )
    parser.add_argument(
        "--redis-url", help="share the senders' limits in this Redis (SharedThrottle)"
    )
    args = parser.parse_args()

    api = LocalBotAPI(TOKEN, latency=args.latency).start_in_thread()  # production limits
    try:
        for i in range(args.members):
            api.add_user(FIRST_USER + i, f"Member{i}", started_bot=True)
        api.add_user(FIRST_USER - 1, "Leader", started_bot=True)
        for g in range(args.groups):
            api.add_group(FIRST_GROUP - g, f"Cohort {g + 1}", supergroup=True, owner=FIRST_USER - 1)
        outcome = asyncio.run(burst(api, args))
        calls = [c for c in api.calls if c.method == "sendMessage"]
        refused = [c for c in calls if c.error_code == 429]
        retry_afters = [
            int(m.group(1)) for c in refused if (m := RETRY_AFTER.search(c.description or ""))
        ]
        delivered = sum(1 for c in calls if c.ok)
        window = max((c.at for c in calls if c.ok), default=0.0) - min(
            (c.at for c in calls if c.ok), default=0.0
        )
        busiest = busiest_second(sorted(c.at for c in calls if c.ok))
    finally:
        api.stop_thread()

    total = outcome.sent + outcome.failed
    rate = outcome.sent / outcome.wall if outcome.wall else 0.0
    no_429 = not refused
    fast = rate >= TARGET_RATE
    shape = f"{args.members} private + {args.groups} x {args.posts} group"
    if args.processes > 1:
        kept = "limits shared in Redis" if args.redis_url else "each its own limits"
        shape += f"; {args.processes} senders, {kept}"
    print(f"messages               {total}  ({shape})")
    print(f"delivered              {outcome.sent} by the messenger, {delivered} by the server")
    print(f"failed                 {outcome.failed}")
    print(f"server latency         {args.latency * 1000:.0f} ms per call")
    print(f"wall                   {outcome.wall:.2f} s")
    print(f"rate                   {rate:.1f} messages/s   (target >= {TARGET_RATE:.0f}/s)")
    print(f"busiest 1 s window     {busiest} sends at the server (limit 30)")
    print(f"first to last send     {window:.2f} s at the server")
    print(f"429s (server)          {len(refused)}   (target 0)")
    print(f"max retry_after        {max(retry_afters, default=0)} s")
    print(f"slowest message        {outcome.slowest:.2f} s after the burst started")
    print(f"zero 429s              {'PASS' if no_429 else 'FAIL'}")
    print(f">= {TARGET_RATE:.0f} messages/s      {'PASS' if fast else 'FAIL'}")
    print(
        "reproduce:             .venv/bin/python scripts/bench/outbound.py "
        + " ".join(sys.argv[1:])
    )
    sys.exit(0 if no_429 and fast else 1)


def busiest_second(times: list[float]) -> int:
    """The most sends inside any sliding 1 s window (what the server's global limit sees)."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


if __name__ == "__main__":
    main()
