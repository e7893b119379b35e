#!/usr/bin/env python3
"""Benchmark: the stats API, the dashboard and the rollups on a company's years of data,
over real HTTP, while platform events keep arriving.

A scratch PostgreSQL database (migrated to head, dropped at the end and on Ctrl-C) is
seeded, mostly by ``COPY``, with six regions (weekly target 1) and their leaders,
``--cohorts`` cohorts (one per region per week going back in time; those that ended are
``finished`` with their step runs done, the few dozen of the last four weeks are
``running`` and were launched with ``StartCohort``; some are lines grown out of a
graduate of an earlier cohort, generation 2 and more), ``--members`` members spread over
them with stage timestamps drawn from a plausible funnel (engaged ~80%, replied ~35%,
admitted ~34%, tasked ~25%, sold ~8%, shopkeeper ~3%, supervisor ~1%; none in the
future), the ``funnel_days`` rollups recounted from exactly those timestamps
(``funnels.kernel.rollups.recount``), messages per member and day of the warm-up with
their ``activity_days`` rollups, and ``--events`` handled ``inbound_events`` (fans,
clicks, posts, proofs, groups, orders; outcomes as the ladder gives them).

Then ``funnelbot run`` (no bot token) and a bare FastAPI app (a separate uvicorn process
whose one route returns a constant JSON body of the size of a real funnel answer) are
started, platform events are posted at ``--rate`` a second, signed with Standard Webhooks
(single events, each sent when due whatever the answers), and while they flow:

- a cohort's funnel (``GET /api/v1/cohorts/{id}/funnel``, random cohorts) at 16
  keep-alive connections, closed-loop, in paired rounds (funnelbot, bare, bare,
  funnelbot …): p99 <= 50 ms and throughput >= 0.5 x the bare route's;
- the regions of an ISO week (``GET /api/v1/regions/kpi?week=…``, weeks that have
  cohorts) at 16 connections: p99 <= 100 ms;
- the dashboard's cohort page (``/dashboard/cohorts/{id}``, logged in with the key's
  session cookie) at one connection, so its time to the answer is the server's time:
  p99 <= 300 ms;
- all along, rollup probes: an ``order.paid`` for an admitted member of a running cohort
  who has not sold, then ``funnel_days`` polled until the cohort's ``sold`` count holds
  it: the lag from the post, max <= 5 s.

Finally, in this process on the idle database: what the figures board's reads cost
(the service answers the funnel and the regions from it), and the time of one funnel
request the database answers (no board, or CSV) taken apart (the key check, each
query, the answer's JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import gc
import json
import math
import os
import random
import secrets
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url
from standardwebhooks.webhooks import Webhook

from bot.clock import SystemClock
from bot.composition import build_deps
from funnels.cohorts.launch import StartCohort
from funnels.cohorts.tick import RunDueSteps
from funnels.kernel.money import to_minor
from funnels.kernel.rollups import recount
from funnels.kernel.stages import Role, Stage
from funnels.ops.keys import CreateApiKey
from funnels.ops.kpis import CohortFunnelReport, iso_week
from funnels.scripts.checks import planned_spend
from funnels.scripts.library import DEFAULT_SCRIPT, script_path
from funnels.scripts.loader import LoadedScript, load_script
from funnels.scripts.planner import PlannedStep, plan
from scripts.bench.scratch import scratch_database
from scripts.bench.servers import server
from storage.db import create_engine
from storage.uow import SqlStore

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
FUNNEL_P99_MS = 50.0
FUNNEL_RATIO = 0.5
REGION_P99_MS = 100.0
ROLLUP_LAG_S = 5.0
PAGE_MS = 300.0
CONNECTIONS = 16

REGIONS = [  # code, name, time zone, script locale
    ("SEA", "South-East Asia", "Asia/Singapore", "en"),
    ("CHN", "China East", "Asia/Shanghai", "zh-CN"),
    ("HKG", "Hong Kong", "Asia/Hong_Kong", "zh-CN"),
    ("MEX", "Mexico", "America/Mexico_City", "es"),
    ("ESP", "Spain", "Europe/Madrid", "es"),
    ("IND", "India", "Asia/Kolkata", "en"),
]
LEADERS_PER_REGION = 4
TG_BASE = 50_000_000
"""A user's Telegram id is this plus their user id."""
LINE_SHARE = 0.08
"""Cohorts launched by a graduate (a supervisor) of an earlier cohort of the region."""
FUNNEL = {  # share of all members reaching each stage
    Stage.ENGAGED: 0.80,
    Stage.REPLIED: 0.35,
    Stage.ADMITTED: 0.34,
    Stage.TASKED: 0.25,
    Stage.SOLD: 0.08,
    Stage.SHOPKEEPER: 0.03,
    Stage.SUPERVISOR: 0.01,
}
HOUR, DAY = 3600, 86400


# --------------------------------------------------------------------------- figures


def ms(run: Run, q: float) -> float:
    return pct(run.latencies, q) * 1000


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of unsorted values, nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


class Timer:
    """Seeding parts and how long each took."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        print(f"  {name} …", end="", flush=True)
        yield
        took = time.perf_counter() - began
        print(f" {took:.1f} s", flush=True)
        self.parts.append((name, took))


# --------------------------------------------------------------------------- the seed


@dataclass
class CohortSpec:
    index: int
    region: int
    start: date
    zone: ZoneInfo
    loaded: LoadedScript
    steps: list[PlannedStep]
    ends_at: datetime
    pitch_at: datetime
    running: bool
    id: int = 0
    leader_id: int = 0
    parent: CohortSpec | None = None
    generation: int = 1
    first_user: int = 0
    members: list[list[int | None]] = field(default_factory=list)
    """Per member: the stage timestamps (epoch seconds, None: not reached), JOINED first."""

    @property
    def code(self) -> str:
        return f"{REGIONS[self.region][0]}-{self.index + 1:05d}"


@dataclass
class Seeded:
    url: str
    api_key: str
    cohort_ids: list[int]
    weeks: list[str]
    probe_members: list[tuple[int, int]]
    """(cohort id, Telegram id): admitted, not sold, in running cohorts kept for probes."""
    flow_members: list[tuple[int, bool]]
    """(Telegram id, may order): members the steady flow of events is about."""
    sizes: str


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _at(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _draw_member(rng: random.Random, spec: CohortSpec, base: float, now: float) -> list[int | None]:
    """One member's stage timestamps, monotonic, none past the cohort's end or now."""
    pitch = spec.pitch_at.timestamp()
    end = spec.ends_at.timestamp() - 60
    times: list[float | None] = [None] * 8
    joined = base + (
        8 * HOUR + rng.random() * 16 * HOUR if rng.random() < 0.8 else DAY + rng.random() * 2 * DAY
    )
    if joined > now:  # a cohort that started today: its members came in so far
        joined = base + rng.random() * max(now - base, 0)
    times[0] = joined
    p = rng.random()
    if p < FUNNEL[Stage.ENGAGED]:
        engaged = min(joined + rng.expovariate(1 / (10 * HOUR)), pitch + 20 * HOUR)
        times[1] = max(engaged, joined)
    if p < FUNNEL[Stage.REPLIED]:
        replied = pitch + rng.expovariate(1 / (1.5 * HOUR))
        reply_at = min(replied, pitch + 23 * HOUR)
        times[2] = reply_at
        times[1] = min(times[1] or reply_at, reply_at)
    if p < FUNNEL[Stage.ADMITTED]:
        times[3] = times[2] + 60 + rng.expovariate(1 / (3 * HOUR))  # type: ignore[operator]
    if p < FUNNEL[Stage.TASKED]:
        times[4] = times[3] + HOUR + rng.random() * 9 * DAY  # type: ignore[operator]
    if p < FUNNEL[Stage.SOLD]:
        times[5] = times[4] + HOUR + rng.random() * 10 * DAY  # type: ignore[operator]
    if p < FUNNEL[Stage.SHOPKEEPER]:
        times[6] = times[5] + rng.random() * 600  # type: ignore[operator]
    if p < FUNNEL[Stage.SUPERVISOR]:
        times[7] = times[6] + DAY + rng.random() * 4 * DAY  # type: ignore[operator]
    out: list[int | None] = []
    for t in times:
        if t is None or t > min(end, now) or (out and out[-1] is None):
            out.append(None)
        else:
            out.append(int(t))
    return out


def _stage_of(times: Sequence[int | None]) -> int:
    return max(i + 1 for i, t in enumerate(times) if t is not None)


def plan_cohorts(
    args: argparse.Namespace, now: datetime, rng: random.Random
) -> tuple[list[CohortSpec], dict[str, LoadedScript]]:
    scripts = {loc: load_script(script_path(DEFAULT_SCRIPT, loc)) for loc in ("en", "es", "zh-CN")}
    newest_first: list[CohortSpec] = []
    week = 0
    while len(newest_first) < args.cohorts:
        for r, (_, _, zone_name, locale) in enumerate(REGIONS):
            if len(newest_first) == args.cohorts:
                break
            zone = ZoneInfo(zone_name)
            start = now.astimezone(zone).date() - timedelta(days=7 * week + r)
            loaded = scripts[locale]
            steps = plan(loaded.script, start, zone)
            pitch = next(s.due_at for s in steps if s.kind.value == "pitch")
            ends = datetime.combine(
                start + timedelta(days=loaded.script.total_days), datetime.min.time(), zone
            ).astimezone(UTC)
            newest_first.append(
                CohortSpec(0, r, start, zone, loaded, steps, ends, pitch, ends > now)
            )
        week += 1
    specs = newest_first[::-1]
    for i, spec in enumerate(specs):
        spec.index = i
    return specs, scripts


def draw_members(
    args: argparse.Namespace, specs: list[CohortSpec], now: datetime, rng: random.Random
) -> None:
    """Members' stage timestamps per cohort, user ids in cohort order, and who leads:
    a region's leaders, or for a line a supervisor of an earlier (ended) cohort."""
    per = args.members // len(specs)
    extra = args.members - per * len(specs)
    next_user = len(REGIONS) * LEADERS_PER_REGION + 1
    now_s = now.timestamp()
    graduates: dict[int, list[tuple[CohortSpec, int, int]]] = defaultdict(list)
    for spec in specs:
        base = datetime.combine(spec.start, datetime.min.time(), spec.zone).timestamp()
        count = per + (1 if spec.index < extra else 0)
        spec.first_user = next_user
        spec.members = [_draw_member(rng, spec, base, now_s) for _ in range(count)]
        next_user += count
        spec.leader_id = 1 + spec.region * LEADERS_PER_REGION + rng.randrange(LEADERS_PER_REGION)
        ready = [g for g in graduates[spec.region] if g[0].ends_at.timestamp() < base]
        if ready and rng.random() < LINE_SHARE:
            parent, user_id, _ = ready[rng.randrange(len(ready))]
            spec.parent, spec.generation, spec.leader_id = parent, parent.generation + 1, user_id
            graduates[spec.region].remove((parent, user_id, _))
        for k, times in enumerate(spec.members):
            if times[7] is not None:
                graduates[spec.region].append((spec, spec.first_user + k, times[7]))


async def copy(conn: asyncpg.Connection, table: str, columns: list[str], rows: list[Any]) -> None:
    if rows:
        await conn.copy_records_to_table(table, records=rows, columns=columns)


async def fix_sequences(conn: asyncpg.Connection, tables: Sequence[str]) -> None:
    for table in tables:
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
            f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
        )


COHORT_COLUMNS = [
    "id", "code", "region_id", "leader_id", "parent_cohort_id", "generation", "script_id",
    "script_version", "script_hash", "script_body", "locale", "timezone", "capacity",
    "currency", "budget_minor", "spent_minor", "start_date", "ends_at", "warmup_chat_id",
    "task_chat_id", "status", "pitch_opened_at", "pitch_closed_at", "admissions_noted_at",
    "created_at", "finished_at",
]  # fmt: skip
MEMBER_COLUMNS = [
    "id", "cohort_id", "user_id", "stage", "joined_at", "engaged_at", "replied_at",
    "admitted_at", "tasked_at", "sold_at", "shopkeeper_at", "supervisor_at",
]  # fmt: skip
STEP_COLUMNS = [
    "cohort_id", "key", "source", "kind", "stage", "day", "part", "due_at", "status",
    "attempts", "started_at", "finished_at", "outcome",
]  # fmt: skip
EVENT_COLUMNS = [
    "id", "source", "event_id", "type", "occurred_at", "received_at", "user_id", "cohort_id",
    "data", "handled_at", "outcome", "state", "telegram_user_id",
]  # fmt: skip


def _spent(spec: CohortSpec) -> tuple[int, int]:
    """(budget, spent) in minor units: the envelopes, and rewards for those who tasked."""
    script = spec.loaded.script
    budget = to_minor(script.budget.total, script.budget.currency)
    envelopes, rewards = planned_spend(script, None)
    tasked = sum(1 for t in spec.members if t[4] is not None)
    share = min(1.0, tasked / (script.budget.reward_seats or script.capacity)) * 0.55
    spent = envelopes + int(rewards * share) if spec.pitch_at < spec.ends_at else 0
    return budget, min(spent, budget)


def _cohort_row(spec: CohortSpec, regions: dict[str, int]) -> tuple[Any, ...]:
    script = spec.loaded.script
    budget, spent = _spent(spec)
    created = spec.pitch_at - timedelta(days=8)
    return (
        spec.id, spec.code, regions[REGIONS[spec.region][0]], spec.leader_id,
        spec.parent.id if spec.parent else None, spec.generation, script.id, script.version,
        spec.loaded.content_hash, spec.loaded.text, script.locale, REGIONS[spec.region][2],
        script.capacity, script.budget.currency, budget, spent, spec.start, spec.ends_at,
        -1_000_000_000 - spec.index, -2_000_000_000 - spec.index, "finished", spec.pitch_at,
        spec.pitch_at + timedelta(days=1), spec.pitch_at + timedelta(days=1, minutes=1),
        created, spec.ends_at,
    )  # fmt: skip


def _step_rows(spec: CohortSpec, rng: random.Random, now: datetime) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for n, s in enumerate(spec.steps):
        if s.due_at > now:
            rows.append(
                (spec.id, s.key, s.source, s.kind.value, s.stage.value, s.day, s.part,
                 s.due_at, "pending", 0, None, None, None)
            )  # fmt: skip
            continue
        late = rng.expovariate(1 / 1.5)
        started = s.due_at + timedelta(seconds=late)
        outcome = json.dumps(
            {"message_ids": [1000 + n], "late_seconds": int(late)}
            if s.kind.value not in ("task_unlock", "envelope_close", "pitch_close")
            else {"late_seconds": int(late)}
        )
        rows.append(
            (spec.id, s.key, s.source, s.kind.value, s.stage.value, s.day, s.part, s.due_at,
             "done", 1, started, started + timedelta(seconds=0.4), outcome)
        )  # fmt: skip
    return rows


def _cohort_children(
    spec: CohortSpec, rng: random.Random
) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """A cohort's member rows, its funnel_days rows (recounted from the timestamps), its
    member_activity rows and its activity_days rows."""
    members, times_list = [], []
    for k, times in enumerate(spec.members):
        user_id = spec.first_user + k
        at = [_at(t) for t in times]
        members.append((user_id, spec.id, user_id, _stage_of(times), *at))
        times_list.append(dict(zip(Stage, at, strict=True)))
    funnel = [
        (spec.id, day, int(stage), n)
        for (day, stage), n in sorted(recount(times_list, spec.zone).items())
    ]
    today = SystemClock().now().astimezone(spec.zone).date()
    activity, per_day = [], Counter[date]()
    writers = Counter[date]()
    for k, times in enumerate(spec.members):
        if times[1] is None:
            continue
        joined_day = datetime.fromtimestamp(times[0], spec.zone).date()  # type: ignore[arg-type]
        for d in range(7):
            day = spec.start + timedelta(days=d)
            if day < joined_day or day > today or rng.random() > 0.35:
                continue
            messages = 1 + int(rng.expovariate(1 / 3))
            activity.append((spec.id, spec.first_user + k, day, messages))
            per_day[day] += messages
            writers[day] += 1
    days = [(spec.id, day, per_day[day], writers[day]) for day in sorted(per_day)]
    return members, funnel, activity, days


async def seed(url: str, args: argparse.Namespace, timer: Timer) -> Seeded:
    rng = random.Random(args.seed)
    clock = SystemClock()
    now = clock.now()
    print(
        f"seeding {args.members:,} members, {args.events:,} events, {args.cohorts:,} cohorts",
        flush=True,
    )
    with timer.part("drawing cohorts and members' stage timestamps"):
        specs, _ = plan_cohorts(args, now, rng)
        draw_members(args, specs, now, rng)
    running = [s for s in specs if s.running]
    finished = [s for s in specs if not s.running]
    conn = await asyncpg.connect(_dsn(url))
    engine = create_engine(url)
    store = SqlStore(engine)
    deps = build_deps(store, clock=clock)
    try:
        await conn.execute("SET session_replication_role = replica")  # no FK triggers
        with timer.part("regions, leaders and users (COPY)"):
            regions = {}
            for code, name, zone_name, _ in REGIONS:
                regions[code] = await conn.fetchval(
                    "INSERT INTO regions (code, name, timezone, weekly_target, created_at)"
                    " VALUES ($1, $2, $3, 1, $4) RETURNING id",
                    code, name, zone_name, now - timedelta(days=7 * 400),
                )  # fmt: skip
            users: list[tuple[Any, ...]] = []
            for r, (code, _, _, locale) in enumerate(REGIONS):
                for k in range(LEADERS_PER_REGION):
                    uid = 1 + r * LEADERS_PER_REGION + k
                    users.append(
                        (uid, TG_BASE + uid, f"Leader {code} {k + 1}", locale, int(Role.LEADER),
                         regions[code], f"L{uid:x}", now - timedelta(days=7 * 400))
                    )  # fmt: skip
            leads = {s.leader_id for s in specs if s.parent is not None}
            for spec in specs:
                locale = spec.loaded.script.locale
                for k, times in enumerate(spec.members):
                    uid = spec.first_user + k
                    role = Role.MEMBER
                    if times[6] is not None:
                        role = Role.SHOPKEEPER
                    if times[7] is not None:
                        role = Role.SUPERVISOR
                    if uid in leads:
                        role = Role.SUPERVISOR
                    users.append(
                        (uid, TG_BASE + uid, f"Member {uid}", locale, int(role), None,
                         f"M{uid:x}", _at(times[0]))
                    )  # fmt: skip
            await copy(
                conn,
                "users",
                ["id", "telegram_id", "display_name", "language", "role", "region_id",
                 "ref_code", "created_at"],
                users,
            )  # fmt: skip
            del users
            await fix_sequences(conn, ["users"])

        with timer.part(f"{len(finished):,} finished cohorts and their step runs (COPY)"):
            for i, spec in enumerate(finished):
                spec.id = i + 1
            await copy(conn, "cohorts", COHORT_COLUMNS, [_cohort_row(s, regions) for s in finished])
            await fix_sequences(conn, ["cohorts"])
            steps = [row for s in finished for row in _step_rows(s, rng, now)]
            await copy(conn, "step_runs", STEP_COLUMNS, steps)
            step_count = len(steps)
            del steps

        with timer.part(f"{len(running)} running cohorts with StartCohort"):
            began = time.perf_counter()
            for spec in running:
                cohort = await StartCohort(deps)(
                    spec.loaded,
                    start=spec.start,
                    code=spec.code,
                    timezone=REGIONS[spec.region][2],
                    warmup_chat_id=-1_000_000_000 - spec.index,
                    region_id=regions[REGIONS[spec.region][0]],
                    leader_id=spec.leader_id,
                    parent_cohort_id=spec.parent.id if spec.parent else None,
                    generation=spec.generation,
                )
                spec.id = cohort.id
            each = (time.perf_counter() - began) / max(len(running), 1)
            # What the launches and the steps done since have set on the cohort row.
            for spec in running:
                _, spent = _spent(spec)
                past_pitch = spec.pitch_at <= now
                await conn.execute(
                    "UPDATE cohorts SET spent_minor = $2, task_chat_id = $3,"
                    " pitch_opened_at = $4, pitch_closed_at = $5, admissions_noted_at = $6"
                    " WHERE id = $1",
                    spec.id, spent, -2_000_000_000 - spec.index if past_pitch else None,
                    spec.pitch_at if past_pitch else None,
                    spec.pitch_at + timedelta(days=1) if spec.pitch_at + timedelta(days=1) <= now
                    else None,
                    None,
                )  # fmt: skip
        print(
            f"    (StartCohort: {each * 1000:.0f} ms a cohort; all {len(specs):,} that way"
            f" would take {each * len(specs):.0f} s, and leave the ended ones' steps pending:"
            " the finished cohorts are written by COPY with their steps done)",
            flush=True,
        )

        with timer.part("cohort members, funnel_days (recount), activity (COPY)"):
            counts = Counter[str]()
            batch: dict[str, list[Any]] = defaultdict(list)

            async def flush() -> None:
                await copy(conn, "cohort_members", MEMBER_COLUMNS, batch["m"])
                await copy(
                    conn, "funnel_days", ["cohort_id", "day", "stage", "members"], batch["f"]
                )
                await copy(
                    conn,
                    "member_activity",
                    ["cohort_id", "user_id", "day", "messages"],
                    batch["a"],
                )
                await copy(
                    conn, "activity_days", ["cohort_id", "day", "messages", "members"], batch["d"]
                )
                for name, rows in batch.items():
                    counts[name] += len(rows)
                batch.clear()

            for spec in specs:
                m, f, a, d = _cohort_children(spec, rng)
                batch["m"] += m
                batch["f"] += f
                batch["a"] += a
                batch["d"] += d
                if len(batch["m"]) >= 50_000:
                    await flush()
            await flush()
            await fix_sequences(conn, ["cohort_members"])
        print(
            f"    ({counts['m']:,} members, {counts['f']:,} funnel_days rows,"
            f" {counts['a']:,} member_activity rows, {counts['d']:,} activity_days rows,"
            f" {step_count:,} finished step runs)",
            flush=True,
        )

        with timer.part(f"{args.events:,} inbound events (COPY, indexes built after)"):
            await copy_events(conn, specs, args, now)

        with timer.part("running cohorts' past steps done, the tick's own chores, API key"):
            for spec in running:
                await conn.execute(
                    "UPDATE step_runs SET status = 'done', attempts = 1, started_at = due_at,"
                    " finished_at = due_at + interval '1 second', outcome = '{}'"
                    " WHERE cohort_id = $1 AND due_at <= $2",
                    spec.id,
                    now,
                )
            await conn.execute("SET session_replication_role = DEFAULT")
            await conn.execute("ANALYZE")
            tick = RunDueSteps(deps)
            while (await tick()).claimed:
                pass
            _, key = await CreateApiKey(deps)("bench")
    finally:
        await conn.close()
        await engine.dispose()

    in_tasks = [s for s in running if s.pitch_at + timedelta(days=1) <= now]
    probe, flow = [], []
    for n, spec in enumerate(in_tasks):
        for k, times in enumerate(spec.members):
            if times[3] is None:
                continue
            tg = TG_BASE + spec.first_user + k
            if n % 2 == 1 and times[5] is None:
                probe.append((spec.id, tg))
            else:
                flow.append((tg, n % 2 == 0))
    for spec in finished[-10:]:  # members of ended cohorts: their events wait, then expire
        flow += [(TG_BASE + spec.first_user + k, False) for k in range(0, len(spec.members), 10)]
    rng.shuffle(probe)
    weeks = sorted({iso_week(s.start) for s in specs})
    return Seeded(
        url,
        key,
        [s.id for s in specs],
        weeks,
        probe,
        flow,
        f"{args.members:,} members, {args.events:,} events, {len(specs):,} cohorts"
        f" ({len(running)} running, {len(in_tasks)} of them in their task stage;"
        f" {sum(1 for s in specs if s.generation > 1)} lines of generation > 1,"
        f" deepest {max(s.generation for s in specs)})",
    )


async def copy_events(
    conn: asyncpg.Connection, specs: list[CohortSpec], args: argparse.Namespace, now: datetime
) -> None:
    """``--events`` handled events about the members, by COPY into a table whose
    secondary indexes are dropped first and built again after (one sort each instead
    of 10 million inserts into each)."""
    now_s = now.timestamp()
    targets: list[tuple[int, int, float, float]] = []
    others: list[tuple[int, float]] = []
    orders: list[tuple[int, int, float]] = []
    for spec in specs:
        end = min(spec.ends_at.timestamp(), now_s) - 1
        for k, times in enumerate(spec.members):
            uid = spec.first_user + k
            admitted = times[3]
            if admitted is None:
                if k % 5 == 0:
                    others.append((uid, admitted or times[0] or end))
                continue
            targets.append((uid, spec.id, admitted, max(end - admitted, 1.0)))
            if times[5] is not None:
                orders.append((uid, spec.id, times[5]))
                if times[7] is not None:
                    orders += [(uid, spec.id, times[5] + i * DAY) for i in (1, 2, 3)]
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'inbound_events'"
        " AND indexname NOT IN (SELECT conname FROM pg_constraint)"
    )
    unique = await conn.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint"
        " WHERE conrelid = 'inbound_events'::regclass AND contype = 'u'"
    )
    for row in indexes:
        await conn.execute(f'DROP INDEX "{row["indexname"]}"')
    for row in unique:
        await conn.execute(f'ALTER TABLE inbound_events DROP CONSTRAINT "{row["conname"]}"')

    total = args.events
    chunk = 200_000

    def make(first: int, count: int, seed: int) -> list[tuple[Any, ...]]:
        rng = random.Random(seed)
        rows: list[tuple[Any, ...]] = []
        rand, at = rng.random, _at
        nt, no = len(targets), len(others)
        n = first
        uid: int | None
        cid: int | None
        tg: int | None
        when: float
        if first == 0:
            for uid, cid, when in orders[:count]:
                n += 1
                rows.append(
                    (n, "platform", f"ord_{n}", "order.paid", at(when), at(when + 0.3), uid, cid,
                     f'{{"order": "{n}", "amount_minor": {1990 + n % 7 * 500}}}',
                     at(when + 0.8), "counted", "handled", TG_BASE + uid)
                )  # fmt: skip
        while n < first + count:
            n += 1
            x = rand()
            visitor = f"{rng.getrandbits(48):012x}"
            if x < 0.89 and nt:
                uid, cid, lo, span = targets[int(rand() * nt)]
                when = lo + rand() * span
                y = rand()
                if y < 0.48:
                    source, kind, data = "links", "fan.locked", f'{{"visitor": "{visitor}"}}'
                    outcome = "counted" if y < 0.3 else "no_progress"
                elif y < 0.9:
                    source, kind = "links", "link.clicked"
                    data = f'{{"task": "share_deal", "visitor": "{visitor}"}}'
                    outcome = "counted" if y < 0.7 else "no_task" if y < 0.8 else "no_progress"
                elif y < 0.96:
                    source, kind, data = "platform", "post.published", '{"template": "day3_post"}'
                    outcome = "counted" if y < 0.93 else "no_task"
                elif y < 0.98:
                    source, kind, data = "proofs", "proof.approved", '{"task": "share_story"}'
                    outcome = "counted"
                else:
                    source = "groups"
                    kind = "group.created" if y < 0.99 else "talk.given"
                    data, outcome = f'{{"chat_id": {-3_000_000_000 - uid}}}', "counted"
                tg = TG_BASE + uid
            elif x < 0.99 and no:
                uid, when = others[int(rand() * no)]
                when += rand() * 20 * DAY
                when = min(when, now_s - 1)
                source, kind, data = "platform", "fan.locked", f'{{"visitor": "{visitor}"}}'
                cid, outcome, tg = None, "expired", TG_BASE + uid
            else:
                when = now_s - rand() * 400 * DAY
                source, kind, data = "platform", "order.paid", '{"order": "x", "amount_minor": 990}'
                uid, cid, outcome, tg = None, None, "expired", 9_000_000_000 + n
            rows.append(
                (n, source, f"ev_{n}", kind, at(when), at(when + 0.3), uid, cid, data,
                 at(when + 0.9), outcome, "handled", tg)
            )  # fmt: skip
        return rows

    starts = list(range(0, total, chunk))
    pending = asyncio.create_task(asyncio.to_thread(make, 0, min(chunk, total), args.seed))
    for i in range(len(starts)):
        rows = await pending
        if i + 1 < len(starts):
            first = starts[i + 1]
            pending = asyncio.create_task(
                asyncio.to_thread(make, first, min(chunk, total - first), args.seed + i + 1)
            )
        await copy(conn, "inbound_events", EVENT_COLUMNS, rows)
        del rows
    await fix_sequences(conn, ["inbound_events"])
    for row in unique:
        await conn.execute(
            f'ALTER TABLE inbound_events ADD CONSTRAINT "{row["conname"]}" {row["def"]}'
        )
    for row in indexes:
        await conn.execute(row["indexdef"])


# --------------------------------------------------------------------------- servers


BARE_SERVER = """
import sys
import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response

body = open(sys.argv[2], "rb").read()
app = FastAPI()


@app.get("/api/v1/cohorts/{cohort_id}/funnel")
async def funnel(cohort_id: int) -> Response:
    return Response(body, media_type="application/json")


config = uvicorn.Config(
    app, host="127.0.0.1", port=int(sys.argv[1]), log_level="info", access_log=False,
    lifespan="off",
)
uvicorn.Server(config).run()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- clients


@dataclass
class Run:
    """What a closed-loop client saw."""

    requests: int = 0
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.requests / self.wall if self.wall else 0.0


async def closed_loop(
    session: aiohttp.ClientSession,
    next_url: Callable[[], str],
    connections: int,
    seconds: float,
    headers: dict[str, str],
    into: Run,
) -> None:
    """``connections`` workers, each sending its next GET once the last is answered,
    for ``seconds``."""
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            async with session.get(next_url(), headers=headers, allow_redirects=False) as answer:
                await answer.read()
                into.statuses[answer.status] += 1
            into.latencies.append(time.perf_counter() - began)
            into.requests += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    into.wall += time.perf_counter() - began


@dataclass
class Flow:
    """Signed platform events at a steady rate, each sent when due (open loop), about
    members in the task stage of running cohorts (and some of ended ones)."""

    url: str
    secret: str
    members: list[tuple[int, bool]]
    rate: float
    rng: random.Random
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    acks: list[float] = field(default_factory=list)
    behind: float = 0.0
    stopping: bool = False

    def request(self, n: int) -> tuple[bytes, dict[str, str]]:
        tg, may_order = self.members[int(self.rng.random() * len(self.members))]
        roll = self.rng.random()
        if may_order and roll < 0.05:
            kind, data = "order.paid", {"order": f"f{n}", "amount_minor": 2990}
        elif roll < 0.7:
            kind, data = "fan.locked", {"visitor": secrets.token_hex(6)}
        elif roll < 0.9:
            kind, data = "link.clicked", {"task": "share_deal", "visitor": secrets.token_hex(6)}
        else:
            kind, data = "post.published", {"template": "day3_post"}
        now = SystemClock().now()
        event = {
            "id": f"flow-{os.getpid()}-{n}",
            "type": kind,
            "occurred_at": now.isoformat(),
            "member": {"telegram_user_id": tg},
            "data": data,
        }
        return sign(self.secret, json.dumps(event).encode(), f"msg_flow_{n}", now)

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=connector) as session:
            in_flight: set[asyncio.Task[None]] = set()

            async def one(due: float, body: bytes, headers: dict[str, str]) -> None:
                try:
                    async with session.post(self.url, data=body, headers=headers) as answer:
                        await answer.read()
                        self.statuses[answer.status] += 1
                except (aiohttp.ClientError, OSError):
                    self.statuses[0] += 1  # no answer: the server dropped the connection
                    return
                self.acks.append(time.perf_counter() - due)

            start = time.perf_counter()
            while not self.stopping:
                due = start + self.sent / self.rate
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                else:
                    self.behind = max(self.behind, -wait)
                body, headers = self.request(self.sent)
                self.sent += 1
                task = asyncio.create_task(one(due, body, headers))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            await asyncio.gather(*in_flight, return_exceptions=True)


@functools.cache
def _webhook(secret: str) -> Webhook:
    return Webhook(secret)


def sign(secret: str, body: bytes, msg_id: str, now: datetime) -> tuple[bytes, dict[str, str]]:
    return body, {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": _webhook(secret).sign(msg_id, now, body.decode()),
        "content-type": "application/json",
    }


@dataclass
class Probes:
    """Rollup lag: every ``interval`` s an ``order.paid`` for a member who has not sold
    (each probe's member once), then ``funnel_days`` polled until the cohort's ``sold``
    count holds it. Only probes make members of these cohorts sell, so the k-th probe of
    a cohort is in once its count is k above where it started."""

    events_url: str
    dsn: str
    secret: str
    members: list[tuple[int, int]]
    interval: float = 0.5
    lags: list[tuple[str, float]] = field(default_factory=list)
    lost: int = 0
    phase: str = "flow only"
    stopping: bool = False

    async def run(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        cohorts = sorted({c for c, _ in self.members})
        query = (
            "SELECT cohort_id, coalesce(sum(members), 0) FROM funnel_days"
            " WHERE cohort_id = any($1::bigint[]) AND stage = $2 GROUP BY cohort_id"
        )
        sent = Counter[int]()
        waiting: list[tuple[int, int, float, str]] = []  # cohort, k, posted, phase

        async def poll() -> None:
            while not self.stopping or waiting:
                rows = await conn.fetch(query, cohorts, int(Stage.SOLD))
                now = time.perf_counter()
                counts = {r[0]: int(r[1]) - base.get(r[0], 0) for r in rows}
                for item in list(waiting):
                    cohort_id, k, posted, phase = item
                    if counts.get(cohort_id, 0) >= k:
                        self.lags.append((phase, now - posted))
                        waiting.remove(item)
                    elif now - posted > 60:
                        self.lost += 1
                        waiting.remove(item)
                await asyncio.sleep(0.02)

        base = {r[0]: int(r[1]) for r in await conn.fetch(query, cohorts, int(Stage.SOLD))}
        poller = asyncio.create_task(poll())
        try:
            async with aiohttp.ClientSession() as session:
                for n, (cohort_id, tg) in enumerate(self.members):
                    if self.stopping:
                        break
                    now = SystemClock().now()
                    event = {
                        "id": f"probe-{os.getpid()}-{n}",
                        "type": "order.paid",
                        "occurred_at": now.isoformat(),
                        "member": {"telegram_user_id": tg},
                        "data": {"order": f"p{n}", "amount_minor": 1990},
                    }
                    body, headers = sign(
                        self.secret, json.dumps(event).encode(), f"msg_probe_{n}", now
                    )
                    began = time.perf_counter()
                    sent[cohort_id] += 1
                    waiting.append((cohort_id, sent[cohort_id], began, self.phase))
                    async with session.post(self.events_url, data=body, headers=headers) as answer:
                        await answer.read()
                        if answer.status != 202:
                            raise SystemExit(f"a probe event was answered {answer.status}")
                    await asyncio.sleep(max(0.0, self.interval - (time.perf_counter() - began)))
        finally:
            await poller
            await conn.close()


# --------------------------------------------------------------------------- the run


async def login(session: aiohttp.ClientSession, base: str, key: str) -> dict[str, str]:
    """The dashboard's session cookie, from its login form."""
    async with session.post(
        f"{base}/dashboard/login",
        data={"key": key, "next": "/dashboard"},
        headers={"Origin": base},
        allow_redirects=False,
    ) as answer:
        await answer.read()
        if answer.status != 303:
            raise SystemExit(f"the dashboard login answered {answer.status}")
        morsels = answer.cookies
    return {name: morsel.value for name, morsel in morsels.items()}


async def measure(seeded: Seeded, args: argparse.Namespace, work: Path) -> list[str]:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    fb_port, bare_port = free_port(), free_port()
    base = f"http://127.0.0.1:{fb_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELBOT_")} | {
        "PYTHONPATH": str(ROOT)
    }
    fb_env = env | {
        "FUNNELBOT_DATABASE_URL": seeded.url,
        "FUNNELBOT_HTTP_PORT": str(fb_port),
        "FUNNELBOT_PUBLIC_URL": base,
        "FUNNELBOT_EVENTS_SECRET": secret,
        # The service's capacity is measured: one key drives it, past any per-key rate.
        "FUNNELBOT_API_RATE": "0",
    }
    rng = random.Random(args.seed)
    auth = {"Authorization": f"Bearer {seeded.api_key}"}
    lines: list[str] = []
    run_cli = [sys.executable, "-c", "from bot.cli import main; main()", "run"]
    with server(run_cli, fb_env, fb_port, work / "run.log"):
        connector = aiohttp.TCPConnector(limit=CONNECTIONS)
        async with aiohttp.ClientSession(connector=connector) as session:
            # A real funnel answer: the bare route answers its bytes.
            async with session.get(
                f"{base}/api/v1/cohorts/{seeded.cohort_ids[-1]}/funnel", headers=auth
            ) as answer:
                sample = await answer.read()
                if answer.status != 200:
                    raise SystemExit(f"the funnel answered {answer.status}: {sample[:300]!r}")
            body_file = work / "funnel.json"
            body_file.write_bytes(sample)
            bare_cmd = [sys.executable, "-c", BARE_SERVER, str(bare_port), str(body_file)]
            with server(bare_cmd, env, bare_port, work / "bare.log"):
                lines += await drive(
                    seeded, args, session, base, f"http://127.0.0.1:{bare_port}", auth, secret,
                    rng, len(sample),
                )  # fmt: skip
    return lines


async def drive(
    seeded: Seeded,
    args: argparse.Namespace,
    session: aiohttp.ClientSession,
    base: str,
    bare: str,
    auth: dict[str, str],
    secret: str,
    rng: random.Random,
    body_size: int,
) -> list[str]:
    cohorts, weeks = seeded.cohort_ids, seeded.weeks

    def funnel_url(root: str) -> Callable[[], str]:
        return lambda: f"{root}/api/v1/cohorts/{cohorts[int(rng.random() * len(cohorts))]}/funnel"

    def region_url() -> str:
        return f"{base}/api/v1/regions/kpi?week={weeks[int(rng.random() * len(weeks))]}"

    def page_url() -> str:
        return f"{base}/dashboard/cohorts/{cohorts[int(rng.random() * len(cohorts))]}"

    # Warm both servers (imports, connections, prepared statements, the page templates).
    await closed_loop(session, funnel_url(base), CONNECTIONS, 3, auth, Run())
    await closed_loop(session, funnel_url(bare), CONNECTIONS, 3, {}, Run())
    await closed_loop(session, region_url, CONNECTIONS, 2, auth, Run())
    cookies = await login(session, base, seeded.api_key)
    cookie_header = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    await closed_loop(session, page_url, 1, 2, cookie_header, Run())

    # For reference, not a target: the funnel with no events flowing.
    rounds = max(2, args.rounds)
    each = args.seconds / rounds
    quiet_fb, quiet_bare = Run(), Run()
    await closed_loop(session, funnel_url(base), CONNECTIONS, each, auth, quiet_fb)
    await closed_loop(session, funnel_url(bare), CONNECTIONS, each, {}, quiet_bare)

    flow = Flow(f"{base}/api/v1/events", secret, seeded.flow_members, args.rate, rng)
    probes = Probes(f"{base}/api/v1/events", _dsn(seeded.url), secret, seeded.probe_members)
    flowing = asyncio.create_task(flow.run())
    probing = asyncio.create_task(probes.run())
    gc.collect()
    gc.freeze()
    lines: list[str] = []
    try:
        print(f"events flowing at {args.rate:,.0f}/s; settling for 5 s", flush=True)
        await asyncio.sleep(5)

        # Paired rounds: funnelbot and bare take turns, who goes first alternating.
        probes.phase = "funnel rounds"
        fb, bare_run = Run(), Run()
        fb_rates: list[float] = []
        bare_rates: list[float] = []
        print(f"funnel: {rounds} paired rounds of {each:.1f} s a side", flush=True)
        for r in range(rounds):
            turns = [("fb", funnel_url(base), auth), ("bare", funnel_url(bare), {})]
            for who, url, headers in turns if r % 2 == 0 else turns[::-1]:
                one = Run()
                await closed_loop(session, url, CONNECTIONS, each, headers, one)
                (fb_rates if who == "fb" else bare_rates).append(one.rate)
                into = fb if who == "fb" else bare_run
                into.requests += one.requests
                into.wall += one.wall
                into.latencies += one.latencies
                into.statuses += one.statuses

        probes.phase = "region KPIs"
        print(f"region KPIs: {args.seconds:.0f} s", flush=True)
        region = Run()
        await closed_loop(session, region_url, CONNECTIONS, args.seconds, auth, region)

        probes.phase = "dashboard page"
        print(f"dashboard cohort page: {args.seconds:.0f} s at 1 connection", flush=True)
        page = Run()
        await closed_loop(session, page_url, 1, args.seconds, cookie_header, page)

        probes.phase = "flow only"
        print(f"rollup probes with the flow alone: {args.seconds:.0f} s", flush=True)
        await asyncio.sleep(args.seconds)
    finally:
        flow.stopping = probes.stopping = True
        await asyncio.gather(flowing, probing, return_exceptions=True)
        gc.unfreeze()

    for name, run_ in (("funnel", fb), ("bare", bare_run), ("regions", region), ("page", page)):
        if set(run_.statuses) != {200}:
            lines.append(f"  !! {name}: answers {dict(run_.statuses)}")
    fb_rate, bare_rate = statistics.median(fb_rates), statistics.median(bare_rates)
    ratio = fb_rate / bare_rate
    p99 = pct(fb.latencies, 99) * 1000
    lines += [
        f"  cohort funnel ({CONNECTIONS} connections, {rounds} paired rounds of {each:.1f} s a"
        f" side, random cohorts, {body_size} bytes):",
        f"    funnelbot {fb_rate:,.0f} req/s (median of rounds), p50 {ms(fb, 50):.1f} ms,"
        f" p99 {p99:.1f} ms, max {ms(fb, 100):.0f} ms   [{fb.requests:,} requests]",
        f"    bare      {bare_rate:,.0f} req/s, p50 {ms(bare_run, 50):.1f} ms,"
        f" p99 {ms(bare_run, 99):.1f} ms",
        f"    p99 {p99:.1f} ms (target <= {FUNNEL_P99_MS:.0f})   {verdict(p99 <= FUNNEL_P99_MS)}",
        f"    funnelbot / bare = {ratio:.2f} (target >= {FUNNEL_RATIO})"
        f"   {verdict(ratio >= FUNNEL_RATIO)}",
    ]
    lines.append(
        f"    for reference, with no events flowing ({each:.1f} s a side): funnelbot"
        f" {quiet_fb.rate:,.0f} req/s, p50 {ms(quiet_fb, 50):.1f} ms, p99 {ms(quiet_fb, 99):.1f}"
        f" ms; bare {quiet_bare.rate:,.0f} req/s, p99 {ms(quiet_bare, 99):.1f} ms"
    )
    region_p99 = ms(region, 99)
    lines += [
        f"  region KPIs for a week ({CONNECTIONS} connections, {len(weeks)} weeks with cohorts):"
        f" {region.rate:,.0f} req/s, p50 {ms(region, 50):.1f} ms, p99 {region_p99:.1f} ms"
        f" (target <= {REGION_P99_MS:.0f})   {verdict(region_p99 <= REGION_P99_MS)}",
    ]
    page_p99 = ms(page, 99)
    lines += [
        f"  dashboard cohort page (1 connection: time to the answer is the server's):"
        f" p50 {ms(page, 50):.1f} ms, p99 {page_p99:.1f} ms, max {ms(page, 100):.0f} ms"
        f" [{page.requests} pages] (target <= {PAGE_MS:.0f})   {verdict(page_p99 <= PAGE_MS)}",
    ]
    lags = [lag for _, lag in probes.lags]
    worst = max(lags) if lags else math.inf
    by_phase: dict[str, list[float]] = defaultdict(list)
    for phase, lag in probes.lags:
        by_phase[phase].append(lag)
    lines.append(
        f"  rollup lag (order.paid posted -> funnel_days sold count holds it), {len(lags)} probes"
        f"{f', {probes.lost} never seen within 60 s' if probes.lost else ''}:"
        f" p50 {pct(lags, 50):.2f} s, p99 {pct(lags, 99):.2f} s, max {worst:.2f} s"
        f" (target: never > {ROLLUP_LAG_S:.0f} s)"
        f"   {verdict(worst <= ROLLUP_LAG_S and not probes.lost)}"
    )
    for phase, values in by_phase.items():
        lines.append(
            f"    during {phase}: {len(values)} probes, p50 {pct(values, 50):.2f} s,"
            f" max {max(values):.2f} s"
        )
    acks = flow.acks
    lines.append(
        f"  the event flow: {flow.sent:,} single events at {args.rate:,.0f}/s, answers (0: none,"
        " the connection dropped)"
        f" {dict(sorted(flow.statuses.items()))}, acknowledged p50 {pct(acks, 50) * 1000:.1f} ms,"
        f" p99 {pct(acks, 99) * 1000:.1f} ms from when due; the client fell behind by at most"
        f" {flow.behind * 1000:.0f} ms"
    )
    return lines


async def breakdown(seeded: Seeded, samples: int = 300) -> list[str]:
    """In this process on the idle database: what the figures board's reads cost (filling
    it at start, each read after), and a funnel request the database answers (a board
    not ready, ``?format=csv``) taken apart: the key check, each of the report's
    statements (in one transaction, as the report does), and building the answer."""
    from bot.http.kpis import CohortFunnelOut, FunnelOut
    from funnels.ops.board import FiguresBoard
    from funnels.ops.keys import Authenticate
    from funnels.ops.ports import CohortFilter

    engine = create_engine(seeded.url)
    store = SqlStore(engine)
    deps = build_deps(store)
    authenticate, report = Authenticate(deps), CohortFunnelReport(deps)
    rng = random.Random(7)
    parts: dict[str, list[float]] = defaultdict(list)
    try:
        for n in range(samples + 20):
            cohort_id = seeded.cohort_ids[rng.randrange(len(seeded.cohort_ids))]
            t0 = time.perf_counter()
            await authenticate(seeded.api_key)
            t1 = time.perf_counter()
            async with store.transaction() as tx:
                t2 = time.perf_counter()
                await tx.kpis.cohort_figures(CohortFilter(), ids=[cohort_id])
                t3 = time.perf_counter()
                await tx.kpis.funnel_days(cohort_id)
                t4 = time.perf_counter()
                await tx.kpis.activity_days(cohort_id)
                t5 = time.perf_counter()
            t6 = time.perf_counter()
            found = await report(cohort_id)
            t7 = time.perf_counter()
            assert found is not None
            body = CohortFunnelOut(
                cohort_id=found.cohort.id,
                code=found.cohort.code,
                **FunnelOut.of(found.funnel).model_dump(),
            )
            json.dumps(body.model_dump(mode="json"))
            t8 = time.perf_counter()
            if n < 20:
                continue
            parts["key check (its own transaction)"].append(t1 - t0)
            parts["open the report's transaction"].append(t2 - t1)
            parts["cohort row + stage totals (2 statements)"].append(t3 - t2)
            parts["funnel_days of the cohort"].append(t4 - t3)
            parts["activity_days of the cohort"].append(t5 - t4)
            parts["commit/close"].append(t6 - t5)
            parts["the whole CohortFunnelReport"].append(t7 - t6)
            parts["pydantic answer + JSON"].append(t8 - t7)
    finally:
        await engine.dispose()
    board_lines = await _board_costs(seeded, FiguresBoard)
    out = [
        *board_lines,
        f"  a funnel request the database answers (no board, or CSV), taken apart"
        f" (in-process, idle database, {samples} samples):",
    ]
    for name, values in parts.items():
        out.append(
            f"    {name:<42} p50 {pct(values, 50) * 1000:6.2f} ms,"
            f" p99 {pct(values, 99) * 1000:6.2f} ms"
        )
    return out


async def _board_costs(seeded: Seeded, board_type: Any, reads: int = 50) -> list[str]:
    """How long the figures board takes to fill, and each of its reads after (what the
    service spends every second to answer the funnel and the regions from memory)."""
    engine = create_engine(seeded.url)
    board = board_type(build_deps(SqlStore(engine)))
    try:
        began = time.perf_counter()
        await board.fill()
        filled = time.perf_counter() - began
        took = []
        for _ in range(reads):
            began = time.perf_counter()
            await board.refresh()
            took.append(time.perf_counter() - began)
    finally:
        await engine.dispose()
    return [
        f"  the figures board (in-process, idle database): filled with {len(seeded.cohort_ids):,}"
        f" cohorts in {filled * 1000:.0f} ms; each read (every {board.every:g} s) p50"
        f" {pct(took, 50) * 1000:.1f} ms, p99 {pct(took, 99) * 1000:.1f} ms"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--cohorts", type=int, default=2_000)
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="seconds of each measured part (per side)"
    )
    parser.add_argument("--rounds", type=int, default=6, help="paired rounds of the funnel")
    parser.add_argument("--rate", type=float, default=1000.0, help="events a second meanwhile")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=DEFAULT_POSTGRES_URL, help="PostgreSQL server")
    args = parser.parse_args()
    if args.cohorts < 1 or args.members < args.cohorts:
        parser.error("need at least one cohort and one member per cohort")

    async def go() -> list[str]:
        timer = Timer()
        async with scratch_database(args.database_url, "stats") as url:
            began = time.perf_counter()
            seeded = await seed(url, args, timer)
            seeding = time.perf_counter() - began
            work = Path(tempfile.mkdtemp(prefix="bench-stats-"))
            gc.collect()
            lines = [f"\ndatabase: {seeded.sizes}", f"  seeding took {seeding:.0f} s:"]
            lines += [f"    {name:<62} {took:7.1f} s" for name, took in timer.parts]
            lines.append(f"measured on {os.cpu_count()} cores (server logs in {work}):")
            lines += await measure(seeded, args, work)
            print("\n".join(lines), flush=True)  # the figures, whatever the breakdown does
            return await breakdown(seeded)

    lines = asyncio.run(go())
    print("\n".join(lines))
    print(
        "\nreproduce: .venv/bin/python scripts/bench/stats.py"
        f" --members {args.members} --events {args.events} --cohorts {args.cohorts}"
        f" --seconds {args.seconds:g} --rounds {args.rounds} --rate {args.rate:g}"
        f" --seed {args.seed}"
    )


if __name__ == "__main__":
    main()
