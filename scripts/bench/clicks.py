#!/usr/bin/env python3
"""Benchmark: tracked-link redirects a second with fan locking, against a bare FastAPI
redirect, over real HTTP, measured in the same run by the same client.

(a) a bare FastAPI app whose ``GET /r/{code}`` answers a 302 and does nothing else,
served by uvicorn as ``funnelbot run`` serves its app (same uvicorn settings, no access
log); (b) ``funnelbot run`` itself (scheduler, HTTP API, no bot token) in a process of its
own, over a cohort in its task stage: ``--members`` members, each with a tracked link for
the invite task and one for the deal. Every click is looked up, stored (its fan lock,
``link.clicked`` and, for a visitor's first touch, ``fan.locked``; group commits) before
its redirect is answered, and applied to the ladder in the background. (b) is the rate
of those redirects; after each of (b)'s turns the client also waits until the service
has applied every click to the ladder, and (b') counts that wait in: what it sustains,
redirects, writes and counting together.

The client is one asyncio process with keep-alive HTTP/1.1 connections, each sending its
next request as soon as the previous answer is read: 32, 64 and 128 of them in turn
(``--connections``). Closed-loop, with few connections it measures time to the answer as
much as capacity (funnelbot holds each redirect for its commit, so it needs more
requests in flight than the bare app before its process is saturated): the ratio is
given at each size and at each server's peak, which the target is checked against.
Clicks are ~70% new browsers (no cookie: a new visitor, a new fan), ~25% returning
browsers (their cookie; often another member's link: counted as that member's click, the
fan stays whose it was) and ~5% link-preview fetchers (redirected, not counted). The
two servers take turns chunk by chunk, rotating who goes first, so other load on the
machine weighs on both alike. After the run the database is checked against what the
client saw: every counted (link, visitor) once, one fan lock per visitor, held by the
member whose link the visitor opened first, nothing from preview fetchers.
Target: (b)/(a) >= 0.6 at the peaks. SQLite by default; ``--postgres`` runs it on
PostgreSQL in a scratch database created and dropped on that server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.clock import SystemClock
from bot.composition import build_deps
from funnels.cohorts.tick import RunDueSteps
from funnels.kernel.actor import Actor
from funnels.kernel.clock import ManualClock
from funnels.kernel.stages import Stage
from funnels.ladder.links import MyLinks
from funnels.ladder.visitors import VISITOR_COOKIE
from funnels.scripts.library import LIBRARY
from funnels.scripts.loader import load_script_text
from funnels.warmup.admissions import AdmitMember
from funnels.warmup.joins import MemberJoined
from scripts.bench.scratch import scratch_database
from scripts.bench.servers import server
from storage.db import create_engine
from storage.tables import fan_locks, inbound_events, tracked_links
from storage.uow import SqlStore

ROOT = Path(__file__).resolve().parents[2]
TARGET = 0.6
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
WARMUP_CHAT = -100_501
TASK_CHAT = -100_502
FIRST_MEMBER = 700_000
BROWSER = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Mobile Safari/537.36"
)
PREVIEW = "TelegramBot (like TwitterBot)"
BARE_SERVER = """
import sys
import uvicorn
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

app = FastAPI()


@app.get("/r/{code}")
async def redirect(code: str) -> RedirectResponse:
    return RedirectResponse(
        "https://shop.example.com/deal", 302, headers={"Cache-Control": "no-store"}
    )


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


config = uvicorn.Config(
    app,
    host="127.0.0.1",
    port=int(sys.argv[1]),
    log_level="info",
    access_log=False,
    lifespan="off",
)
uvicorn.Server(config).run()
"""


# ------------------------------------------------------------------ the database


def database(url: str | None) -> contextlib.AbstractAsyncContextManager[str]:
    """A fresh database migrated to head: a temp SQLite file, or a scratch PostgreSQL one."""
    return scratch_database(url, "clicks")


async def seed(url: str, members: int) -> dict[str, int]:
    """A cohort of the English library script on its task day 10 (the invite task and
    the deal open), ``members`` admitted members and their links: code -> user id."""
    store = SqlStore(create_engine(url))
    try:
        loaded = load_script_text(
            (LIBRARY / "seven-plus-twentyone.en.yaml").read_text(encoding="utf-8"), "en"
        )
        tz = ZoneInfo(loaded.script.timezone)
        now = SystemClock().now()
        start = now.astimezone(tz).date() - timedelta(days=loaded.script.warmup.days + 9)
        clock = ManualClock(datetime.combine(start, datetime.min.time(), tzinfo=tz))
        deps = build_deps(store, clock=clock)
        from funnels.cohorts.launch import StartCohort

        cohort = await StartCohort(deps)(
            loaded, start=start, code="BENCH", capacity=members + 10, warmup_chat_id=WARMUP_CHAT
        )
        async with store.transaction() as tx:
            await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
            rows = [(FIRST_MEMBER + i, f"Member {i}", "en") for i in range(members)]
            refs = await tx.users.add_users(rows, clock.now())
            await tx.commit()
        for ref in refs:
            assert ref.telegram_id is not None
            actor = Actor(ref.telegram_id, f"Member {ref.telegram_id}", "en")
            await MemberJoined(deps)(WARMUP_CHAT, actor)
            async with store.transaction() as tx:
                for stage in (Stage.ENGAGED, Stage.REPLIED):
                    await tx.members.advance(cohort.id, ref.user_id, stage, clock.now())
                await tx.commit()
            assert await AdmitMember(deps)(cohort.id, ref.user_id) == "admitted"
        clock.set(SystemClock().now())
        owners: dict[str, int] = {}
        for ref in refs:
            assert ref.telegram_id is not None
            links = await MyLinks(deps)(Actor(ref.telegram_id, "", "en"))
            assert links and {t.task_id for t in links} >= {"invite_fans", "share_deal"}, links
            owners.update({t.code: ref.user_id for t in links})
        # What fell due in the cohort's past runs now, not during the timed part.
        while (await RunDueSteps(deps)()).claimed:
            pass
        return owners
    finally:
        await store.engine.dispose()


# ------------------------------------------------------------------ servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ the client


@dataclass
class Side:
    """One server as the client sees it: its cookies, what it counted, its timings."""

    port: int
    cookies: list[str] = field(default_factory=list)
    """Cookie values of the browsers that got one, by browser."""
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    counted: set[tuple[str, str]] = field(default_factory=set)
    first_code: dict[str, str] = field(default_factory=dict)
    previews: int = 0
    catch_up: float = 0.0
    """Seconds waited after the redirects for the clicks to be written (in ``wall``)."""


async def one_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, str | None]:
    """Send a request on a keep-alive connection; (status, Set-Cookie value or None)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, cookie = 0, None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "set-cookie" and value.strip().startswith(VISITOR_COOKIE + "="):
            cookie = value.strip().split(";", 1)[0].split("=", 1)[1]
    if length:
        await reader.readexactly(length)
    return status, cookie


async def drive(side: Side, plan: list[tuple[str, str]], connections: int) -> None:
    """Run ``plan`` (code, kind) against ``side`` over ``connections`` connections."""
    queue = iter(plan)
    rng = random.Random(len(side.latencies))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", side.port)
        try:
            for code, kind in queue:
                cookie = None
                if kind == "return" and side.cookies:
                    cookie = rng.choice(side.cookies)
                agent = PREVIEW if kind == "preview" else BROWSER
                headers = f"Host: 127.0.0.1:{side.port}\r\nUser-Agent: {agent}\r\n"
                if cookie is not None:
                    headers += f"Cookie: {VISITOR_COOKIE}={cookie}\r\n"
                request = f"GET /r/{code} HTTP/1.1\r\n{headers}\r\n".encode("latin-1")
                started = time.perf_counter()
                status, fresh = await one_request(reader, writer, request)
                side.latencies.append(time.perf_counter() - started)
                side.statuses[status] = side.statuses.get(status, 0) + 1
                if kind == "preview":
                    side.previews += 1
                    continue
                if fresh is not None:
                    side.cookies.append(fresh)
                    cookie = fresh
                if cookie is not None:
                    visitor = cookie.split(".", 1)[0]
                    side.counted.add((code, visitor))
                    side.first_code.setdefault(visitor, code)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    side.wall += time.perf_counter() - started
    side.requests += len(plan)


def make_plan(codes: list[str], n: int, rng: random.Random) -> list[tuple[str, str]]:
    plan = []
    for _ in range(n):
        roll = rng.random()
        kind = "preview" if roll < 0.05 else "return" if roll < 0.30 else "new"
        plan.append((rng.choice(codes), kind))
    return plan


# ------------------------------------------------------------------ checks


async def caught_up(url: str, *sides: Side) -> None:
    """Wait until the database holds every event the clicks seen so far make (one
    ``link.clicked`` per (link, visitor), one ``fan.locked`` per visitor) and has
    applied them all to the ladder."""
    clicked = len(set().union(*(s.counted for s in sides)))
    visitors = len(set().union(*(s.first_code for s in sides)))
    engine = create_engine(url)
    query = select(func.count()).where(inbound_events.c.source == "links")
    waiting = select(func.count()).where(
        inbound_events.c.source == "links", inbound_events.c.state == "pending"
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            async with engine.connect() as conn:
                stored = (await conn.execute(query)).scalar_one()
                if stored >= clicked + visitors and (await conn.execute(waiting)).scalar_one() == 0:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("the clicks were not written within 2 minutes")
            await asyncio.sleep(0.005)
    finally:
        await engine.dispose()


async def stored(url: str) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Events by type, fan locks (visitor -> user id), links (code -> user id)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            by_type = dict(
                (
                    await conn.execute(
                        select(inbound_events.c.type, func.count())
                        .where(inbound_events.c.source == "links")
                        .group_by(inbound_events.c.type)
                    )
                ).all()
            )
            locks = dict(
                (await conn.execute(select(fan_locks.c.visitor, fan_locks.c.user_id))).all()
            )
            links = dict(
                (await conn.execute(select(tracked_links.c.code, tracked_links.c.user_id))).all()
            )
    finally:
        await engine.dispose()
    return by_type, locks, links


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


# ------------------------------------------------------------------ the run


async def run(args: argparse.Namespace, url: str) -> None:
    owners = await seed(url, args.members)
    codes = sorted(owners)
    rng = random.Random(args.seed)
    bare_port, funnel_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELBOT_")} | {
        "PYTHONPATH": str(ROOT)
    }
    funnel_env = env | {
        "FUNNELBOT_DATABASE_URL": url,
        "FUNNELBOT_HTTP_PORT": str(funnel_port),
        "FUNNELBOT_PUBLIC_URL": f"http://127.0.0.1:{funnel_port}",
        "FUNNELBOT_TICK_SECONDS": "300",
    }
    run_cli = [sys.executable, "-c", "from bot.cli import main; main()", "run"]
    levels: list[tuple[int, Side, Side]] = []
    with (
        server([sys.executable, "-c", BARE_SERVER, str(bare_port)], env, bare_port),
        server(run_cli, funnel_env, funnel_port),
    ):
        # Untimed: connections, caches and the cookie key warmed on both.
        await drive(Side(bare_port), make_plan(codes, args.warmup, rng), 32)
        warm = Side(funnel_port)
        await drive(warm, make_plan(codes, args.warmup, rng), 32)
        await caught_up(url, warm)
        # Closed-loop clients at several sizes: a server that holds each request for a
        # commit needs more connections in flight than one that answers at once before
        # it is saturated, so each server is compared at its own peak (and at each size).
        for connections in args.connections:
            bare, funnel = Side(bare_port), Side(funnel_port)
            chunks = [make_plan(codes, args.chunk, rng) for _ in range(args.clicks // args.chunk)]
            for k, chunk in enumerate(chunks):
                for side in (bare, funnel) if k % 2 == 0 else (funnel, bare):
                    await drive(side, chunk, connections)
                    if side is funnel:  # counted on the ladder behind the redirects: wait
                        started = time.perf_counter()
                        await caught_up(url, warm, *(f for _, _, f in levels), funnel)
                        funnel.catch_up += time.perf_counter() - started
                        funnel.wall += time.perf_counter() - started
            levels.append((connections, bare, funnel))
    by_type, locks, links = await stored(url)

    # What the database must say: the warm-up's clicks and the timed ones (each size's
    # browsers are new ones: cookies are not carried from one size to the next).
    funnels = [warm, *(f for _, _, f in levels)]
    counted = set().union(*(f.counted for f in funnels))
    first: dict[str, str] = {}
    for f in funnels:
        for visitor, code in f.first_code.items():
            first.setdefault(visitor, code)
    wrong_owner = sum(1 for v, code in first.items() if locks.get(v) != owners[code])
    where = make_url(url).render_as_string() if args.postgres else "sqlite (temporary file)"
    print(f"members x links        {args.members} x 2  ({len(links)} tracked links)")
    print(f"database               {where} (scratch copy)")
    print(
        f"client                 keep-alive connections {', '.join(map(str, args.connections))},"
        f" {args.clicks:,} clicks each side at each"
    )
    print(
        "clicks                 ~70% new browsers, ~25% returning, ~5% preview fetchers"
        f" ({sum(f.previews for _, _, f in levels)} previews)"
    )
    print(
        "                       redirects/s (p50, p99 time to the answer); (b') counted too;"
        " (b)/(a)"
    )
    rates: dict[str, dict[int, float]] = {"bare": {}, "funnel": {}}
    for connections, bare, funnel in levels:
        cells = []
        for name, side in (("bare", bare), ("funnel", funnel)):
            answered_in = side.wall - side.catch_up
            rates[name][connections] = side.requests / answered_in
            p50 = percentile(side.latencies, 50) * 1000
            p99 = percentile(side.latencies, 99) * 1000
            cells.append(f"{rates[name][connections]:>6,.0f} ({p50:4.1f}, {p99:5.1f} ms)")
        counted_rate = funnel.requests / funnel.wall
        ratio = rates["funnel"][connections] / rates["bare"][connections]
        print(
            f"{connections:>4} connections       (a) bare {cells[0]}  (b) funnelbot {cells[1]}"
            f"  (b') {counted_rate:,.0f}/s   {ratio:.3f}"
        )
    bare_at = max(rates["bare"], key=rates["bare"].__getitem__)
    funnel_at = max(rates["funnel"], key=rates["funnel"].__getitem__)
    ratio = rates["funnel"][funnel_at] / rates["bare"][bare_at]
    verdict = "PASS" if ratio >= TARGET else "FAIL"
    print(
        f"at their peaks         (b) {rates['funnel'][funnel_at]:,.0f} redirects/s"
        f" ({funnel_at} connections), (a) {rates['bare'][bare_at]:,.0f} ({bare_at} connections)"
    )
    print(
        f"ratio (b)/(a)          {ratio:.3f}   (target >= {TARGET}: redirects with the click"
        f" and the fan lock stored)  {verdict}"
    )
    clicked = by_type.get("link.clicked", 0)
    locked = by_type.get("fan.locked", 0)
    print(
        f"link.clicked stored    {clicked:,}  (expected {len(counted):,}: distinct link x visitor)"
    )
    print(f"fan locks              {len(locks):,}  (expected {len(first):,}: distinct visitors)")
    print(f"fan.locked stored      {locked:,}  (expected {len(locks):,}: one per lock)")
    print(f"locks not first touch  {wrong_owner}  (expected 0)")
    print(
        "reproduce:             .venv/bin/python scripts/bench/clicks.py " + " ".join(sys.argv[1:])
    )
    if clicked != len(counted) or len(locks) != len(first) or locked != len(locks) or wrong_owner:
        sys.exit("the database does not match what the client saw")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument(
        "--clicks", type=int, default=12_000, help="timed clicks per side at each size"
    )
    parser.add_argument("--chunk", type=int, default=1_000, help="clicks per turn")
    parser.add_argument("--warmup", type=int, default=1_000, help="untimed clicks per side")
    parser.add_argument(
        "--connections",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[32, 64, 128],
        help="keep-alive connections of the client, comma-separated: one run at each",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", action="store_true", help="run on PostgreSQL")
    parser.add_argument(
        "--database-url",
        default=None,
        help=f"the PostgreSQL server for --postgres (default {DEFAULT_POSTGRES_URL})",
    )
    args = parser.parse_args()

    async def go() -> None:
        server_url = (args.database_url or DEFAULT_POSTGRES_URL) if args.postgres else None
        async with database(server_url) as url:
            await run(args, url)

    asyncio.run(go())


if __name__ == "__main__":
    main()
