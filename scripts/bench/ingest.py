#!/usr/bin/env python3
"""Benchmark: signed platform events over real HTTP into ``funnelbot run``, against a bare
FastAPI endpoint that checks the same signatures and stores nothing.

Both servers run as processes of their own under uvicorn: ``funnelbot run`` (no bot
token, the app as it builds it, on a scratch SQLite file or PostgreSQL database seeded
with one running cohort of 500 members in its task stage) and the bare app. One client
(aiohttp, in this process) sends them the same kind of traffic, the two taking turns
round by round: single events (``fan.locked`` for a random member) of which 10% repeat an
earlier id (a platform's retry) and 1% carry a bad signature. Requests are signed before
the clock starts. Figures:

- single events: requests answered a second (202s and 401s), ``funnelbot`` against bare,
  in rounds of 10,000 (a burst: acknowledged first, applied right after it), over 32, 64
  and 128 keep-alive connections (``--connections``). The client is closed-loop (each
  connection sends its next request once the last is answered), so with few connections
  it measures time to the answer as much as capacity: ``funnelbot`` holds each request
  for its commit and needs more requests in flight than the bare app before its process
  is saturated. The ratio is given at each size and at each server's peak;
- a longer flood of single events (40,000), during which the applier takes its turns;
- batches of 100 events: events acknowledged a second;
- a steady 1,000 requests a second for 10 s: acknowledgement latency p50/p99, measured
  from when each request was due (so a client that falls behind counts it as latency).

After each run the database is checked: every acknowledged event id is stored once, no
event whose only copy had a bad signature is, nothing is left pending once the service
has caught up (and how long after the last acknowledgement that was), and each
member's progress on the fans task equals the events counted
for them (an event applied twice would show).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import os
import random
import secrets
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp
from sqlalchemy import func, select

from bot.clock import SystemClock
from funnels.cohorts.launch import StartCohort
from funnels.deps import Deps
from funnels.kernel.records import Arrival
from funnels.kernel.stages import Stage
from funnels.scripts.library import DEFAULT_SCRIPT, script_path
from funnels.scripts.loader import load_script
from scripts.bench.scratch import scratch_database
from scripts.bench.servers import server
from storage.db import create_engine
from storage.tables import inbound_events, task_progress
from storage.uow import SqlStore

PATH = "/api/v1/events"
MEMBERS = 500
FIRST_TG = 7_000_000
WARMUP_CHAT = -100_777
Request = tuple[bytes, dict[str, str]]


# --------------------------------------------------------------------------- servers


def bare_app(secret: str) -> Any:
    from fastapi import FastAPI, Request as HttpRequest
    from fastapi.responses import JSONResponse
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    app = FastAPI()
    webhook = Webhook(secret)

    @app.post(PATH)
    async def events(request: HttpRequest) -> JSONResponse:
        body = await request.body()
        try:
            webhook.verify(body, dict(request.headers), json_parse=False)
        except (WebhookVerificationError, ValueError):
            return JSONResponse({"detail": "bad signature"}, 401)
        parsed = json.loads(body)
        n = len(parsed) if isinstance(parsed, list) else 1
        return JSONResponse({"accepted": n, "duplicates": 0}, 202)

    return app


def serve_bare(port: int, secret: str) -> None:
    import uvicorn

    uvicorn.run(
        bare_app(secret), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- database


def database(url: str | None) -> contextlib.AbstractAsyncContextManager[str]:
    """A fresh database migrated to head: a temp SQLite file, or a scratch PostgreSQL one."""
    return scratch_database(url, "ingest")


async def seed(url: str) -> None:
    """One cohort, started 10 days ago (its ladder's first tasks are open), with
    :data:`MEMBERS` members in its task stage."""
    engine = create_engine(url)
    store = SqlStore(engine)
    clock = SystemClock()
    deps = Deps(store=store, messenger=None, clock=clock)  # type: ignore[arg-type]
    loaded = load_script(script_path(DEFAULT_SCRIPT, "en"))
    now = clock.now()
    cohort = await StartCohort(deps)(
        loaded,
        start=(now - timedelta(days=10)).date(),
        code="BENCH",
        warmup_chat_id=WARMUP_CHAT,
        timezone="UTC",
    )
    async with store.transaction() as tx:
        refs = await tx.users.add_users(
            [(FIRST_TG + i, f"Member {i}", "en") for i in range(MEMBERS)], now
        )
        await tx.members.join(cohort.id, [Arrival(r.user_id, None) for r in refs], 10_000, now)
        for r in refs:
            for stage in (Stage.ENGAGED, Stage.REPLIED, Stage.ADMITTED):
                await tx.members.advance(cohort.id, r.user_id, stage, now)
        await tx.commit()
    await engine.dispose()


@dataclass
class Sent:
    """What one run sent and what it was told."""

    valid_ids: set[str] = field(default_factory=set)
    """Ids sent at least once with a good signature."""
    bad_only: set[str] = field(default_factory=set)
    accepted: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


async def check(url: str, sent: Sent, rows_before: int) -> str:
    """The database against what was sent; raises SystemExit on any mismatch. Says how
    long after the call (the last acknowledgement) every event was applied."""
    engine = create_engine(url)
    began = time.monotonic()
    try:
        deadline = time.monotonic() + 120
        while True:
            async with engine.connect() as conn:
                pending = (
                    await conn.execute(
                        select(func.count()).where(inbound_events.c.state == "pending")
                    )
                ).scalar_one()
            if pending == 0:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{pending} events still pending after 2 minutes")
            await asyncio.sleep(0.05)
        drained = time.monotonic() - began
        async with engine.connect() as conn:
            ids = set(
                (
                    await conn.execute(
                        select(inbound_events.c.event_id).where(
                            inbound_events.c.source == "platform"
                        )
                    )
                ).scalars()
            )
            total = len(ids)
            counted = dict(
                (
                    await conn.execute(
                        select(inbound_events.c.user_id, func.count())
                        .where(
                            inbound_events.c.outcome == "counted",
                            inbound_events.c.type == "fan.locked",
                        )
                        .group_by(inbound_events.c.user_id)
                    )
                ).all()
            )
            progress = {
                r.user_id: int(r.progress.get("0", 0))
                for r in await conn.execute(
                    select(task_progress.c.user_id, task_progress.c.progress).where(
                        task_progress.c.task_id == "invite_fans"
                    )
                )
            }
    finally:
        await engine.dispose()
    lost = sent.valid_ids - ids
    if lost:
        raise SystemExit(f"{len(lost)} acknowledged events are not stored, e.g. {min(lost)}")
    if sent.bad_only & ids:
        raise SystemExit("an event sent only with a bad signature was stored")
    if total - rows_before != sent.accepted:
        raise SystemExit(f"{total - rows_before} new rows, {sent.accepted} acknowledged as new")
    twice = {u for u, n in counted.items() if progress.get(u) != n}
    if twice:
        raise SystemExit(f"progress differs from the events counted for {len(twice)} members")
    return (
        f"ok: {total} events stored once, all applied {drained:.1f} s after the last"
        " acknowledgement, progress = events counted"
    )


# --------------------------------------------------------------------------- traffic


@dataclass
class Traffic:
    secret: str
    rng: random.Random
    used: list[str] = field(default_factory=list)
    n: int = 0

    def _event(self, event_id: str) -> dict[str, Any]:
        member = FIRST_TG + self.rng.randrange(MEMBERS)
        return {
            "id": event_id,
            "type": "fan.locked",
            "occurred_at": datetime.now(UTC).isoformat(),  # noqa: TID251 (a sender's clock)
            "member": {"telegram_user_id": member},
            "data": {"visitor": secrets.token_hex(6)},
        }

    def _new_id(self) -> str:
        self.n += 1
        return f"ev-{os.getpid()}-{self.n}"

    def _sign(self, body: bytes, good: bool) -> dict[str, str]:
        from standardwebhooks.webhooks import Webhook

        msg_id = f"msg_{self.n}"
        now = datetime.now(UTC)  # noqa: TID251 (a sender's clock)
        signature = Webhook(self.secret).sign(msg_id, now, body.decode())
        if not good:
            signature = "v1," + base64.b64encode(secrets.token_bytes(32)).decode()
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
            "content-type": "application/json",
        }

    def requests(self, count: int, batch: int, sent: Sent) -> list[Request]:
        out = []
        for _ in range(count):
            roll = self.rng.random()
            good = roll >= 0.01
            events = []
            for _ in range(batch):
                if good and self.used and self.rng.random() < 0.10:
                    event_id = self.rng.choice(self.used)  # a retry of an earlier event
                else:
                    event_id = self._new_id()
                    (self.used if good else []).append(event_id)
                (sent.valid_ids if good else sent.bad_only).add(event_id)
                events.append(self._event(event_id))
            body = json.dumps(events[0] if batch == 1 else events).encode()
            out.append((body, self._sign(body, good)))
        sent.bad_only -= sent.valid_ids
        return out


async def post(session: aiohttp.ClientSession, url: str, request: Request, sent: Sent) -> None:
    body, headers = request
    async with session.post(url, data=body, headers=headers) as answer:
        sent.statuses[answer.status] = sent.statuses.get(answer.status, 0) + 1
        if answer.status == 202:
            sent.accepted += (await answer.json())["accepted"]
        else:
            await answer.read()


async def flood(
    url: str,
    requests: list[Request],
    concurrency: int,
    sent: Sent,
    latencies: list[float] | None = None,
) -> float:
    """All requests as fast as ``concurrency`` connections go; seconds taken (and each
    request's time to its answer into ``latencies``, if given)."""
    queue = list(reversed(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while queue:
                began = time.perf_counter()
                await post(session, url, queue.pop(), sent)
                if latencies is not None:
                    latencies.append(time.perf_counter() - began)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start


async def steady(url: str, requests: list[Request], rate: float, sent: Sent) -> list[float]:
    """One request every 1/rate s whatever the answers (each sent as it falls due, on
    kept-alive connections); latency from when each was due, so a client or server that
    falls behind counts it. The client's collector is held off meanwhile, so its pauses
    do not count against the server."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(due: float, request: Request) -> None:
            await post(session, url, request, sent)
            latencies.append(time.perf_counter() - due)

        in_flight: set[asyncio.Task[None]] = set()
        gc.disable()
        try:
            start = time.perf_counter()
            for i, request in enumerate(requests):
                due = start + i / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                task = asyncio.create_task(one(due, request))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            await asyncio.gather(*in_flight)
        finally:
            gc.enable()
    return latencies


# --------------------------------------------------------------------------- runs


def spread(latencies: list[float]) -> str:
    """p50, p99 and max of sorted latencies, in ms."""
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1] * 1000:.0f} ms"


async def bench(url: str, args: argparse.Namespace, label: str) -> list[str]:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    await seed(url)
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    fb_port, bare_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELBOT_")} | {
        "FUNNELBOT_DATABASE_URL": url,
        "FUNNELBOT_HTTP_PORT": str(fb_port),
        "FUNNELBOT_EVENTS_SECRET": secret,
    }
    python = sys.executable
    fb_cmd = [python, "-c", "from bot.cli import main; main()", "run"]
    bare_cmd = [python, __file__, "--serve-bare", str(bare_port), secret, "bare"]
    traffic = Traffic(secret, random.Random(args.seed))
    fb_url = f"http://127.0.0.1:{fb_port}{PATH}"
    bare_url = f"http://127.0.0.1:{bare_port}{PATH}"
    lines = [f"\n{label}: {MEMBERS} members in one cohort's task stage"]
    with (
        server(fb_cmd, env, fb_port, work / "run.log"),
        server(bare_cmd, env, bare_port, work / "bare.log"),
    ):
        # Warm both up (imports, connections, prepared statements).
        warm = Sent()
        await flood(fb_url, traffic.requests(300, 1, warm), args.concurrency, warm)
        await flood(bare_url, traffic.requests(300, 1, Sent()), args.concurrency, Sent())
        stored = 0
        await check(url, warm, 0)
        stored += warm.accepted

        # Closed-loop clients at several sizes: a server that holds each request for a
        # commit needs more connections in flight than one that answers at once before
        # it is saturated, so each server is compared at its own peak (and at each size).
        levels = args.connections
        rates = {(who, n): [] for who in ("funnelbot", "bare") for n in levels}
        waits: dict[tuple[str, int], list[float]] = {key: [] for key in rates}
        for r in range(args.rounds):
            for n in levels:
                turns = (("bare", bare_url), ("funnelbot", fb_url))
                for who, target in turns if r % 2 == 0 else turns[::-1]:
                    sent = Sent()
                    requests = traffic.requests(args.events, 1, sent)
                    took = await flood(target, requests, n, sent, waits[who, n])
                    rates[who, n].append(len(requests) / took)
                    if who == "funnelbot":
                        verdict = await check(url, sent, stored)
                        stored += sent.accepted
                        codes = dict(sorted(sent.statuses.items()))
                        if set(codes) - {202, 401}:
                            raise SystemExit(f"unexpected answers: {codes}")
        median = {key: statistics.median(values) for key, values in rates.items()}
        lines.append(
            f"  single events ({args.events:,} a round, {args.rounds} rounds at each number of"
            " connections; 10% repeats, 1% bad signatures): requests/s, median of the rounds"
            " (p50 time to the answer)"
        )
        for n in levels:
            fb_wait, bare_wait = (sorted(waits[who, n]) for who in ("funnelbot", "bare"))
            lines.append(
                f"    {n:>4} connections: funnelbot {median['funnelbot', n]:>6,.0f}"
                f" ({fb_wait[len(fb_wait) // 2] * 1000:4.1f} ms)"
                f"   bare {median['bare', n]:>6,.0f} ({bare_wait[len(bare_wait) // 2] * 1000:4.1f}"
                f" ms)   funnelbot / bare = {median['funnelbot', n] / median['bare', n]:.2f}"
            )
        fb_n = max(levels, key=lambda n: median["funnelbot", n])
        bare_n = max(levels, key=lambda n: median["bare", n])
        fb, bare = median["funnelbot", fb_n], median["bare", bare_n]
        lines += [
            f"    at their peaks: funnelbot {fb:,.0f} requests/s ({fb_n} connections),"
            f" bare {bare:,.0f} ({bare_n} connections): funnelbot / bare = {fb / bare:.2f}",
            f"    {verdict}",
        ]

        sent = Sent()
        requests = traffic.requests(args.sustained, 1, sent)
        took = await flood(fb_url, requests, args.concurrency, sent)
        verdict = await check(url, sent, stored)
        stored += sent.accepted
        lines.append(
            f"  a longer flood, {args.sustained:,} single events ({took:.1f} s: the applier"
            f" takes its turns during it): {len(requests) / took:,.0f} requests/s   {verdict}"
        )

        sent = Sent()
        requests = traffic.requests(args.batches, 100, sent)
        took = await flood(fb_url, requests, max(2, args.concurrency // 4), sent)
        verdict = await check(url, sent, stored)
        stored += sent.accepted
        events = sum(100 for _ in requests)
        lines.append(
            f"  batches of 100: {events / took:,.0f} events/s acknowledged "
            f"({args.batches} batches in {took:.1f} s)   {verdict}"
        )

        count = int(args.steady_rate * args.steady_seconds)
        bare_latencies = sorted(
            await steady(bare_url, traffic.requests(count, 1, Sent()), args.steady_rate, Sent())
        )
        sent = Sent()
        requests = traffic.requests(count, 1, sent)
        latencies = sorted(await steady(fb_url, requests, args.steady_rate, sent))
        verdict = await check(url, sent, stored)
        stored += sent.accepted
        lines.append(
            f"  steady {args.steady_rate:,.0f}/s for {args.steady_seconds:.0f} s, acknowledged:"
            f" funnelbot {spread(latencies)}; bare {spread(bare_latencies)}   {verdict}"
        )
    return lines


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-bare":
        serve_bare(int(sys.argv[2]), sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="single events a round")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds at each number of connections"
    )
    parser.add_argument(
        "--connections",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[32, 64, 128],
        help="keep-alive connections of the single-event rounds, comma-separated",
    )
    parser.add_argument(
        "--concurrency", type=int, default=32, help="connections of the longer flood"
    )
    parser.add_argument(
        "--sustained", type=int, default=40_000, help="single events in one longer flood"
    )
    parser.add_argument("--batches", type=int, default=1000, help="batches of 100")
    parser.add_argument("--steady-rate", type=float, default=1000.0)
    parser.add_argument("--steady-seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", action="store_true", help="also on the local PostgreSQL")
    parser.add_argument(
        "--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    lines: list[str] = []
    targets = ([] if args.no_sqlite else [(None, "SQLite")]) + (
        [(args.postgres_url, "PostgreSQL")] if args.postgres else []
    )

    async def run_all() -> None:
        for pg, label in targets:
            async with database(pg) as url:
                lines.extend(await bench(url, args, label))

    asyncio.run(run_all())
    print("\n".join(lines))
    print(
        "\nreproduce: .venv/bin/python scripts/bench/ingest.py"
        f" --events {args.events} --rounds {args.rounds}"
        f" --connections {','.join(map(str, args.connections))} --concurrency {args.concurrency}"
        f" --batches {args.batches} --sustained {args.sustained}"
        + (" --postgres" if args.postgres else "")
        + (" --no-sqlite" if args.no_sqlite else "")
    )


if __name__ == "__main__":
    main()
