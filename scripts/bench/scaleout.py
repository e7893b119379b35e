#!/usr/bin/env python3
"""Benchmark: 1, 2 and 3 ``funnelbot run`` processes sharing one PostgreSQL database,
on one virtual clock (``FUNNELBOT_CLOCK_FILE``), measured in one run.

Seeded once, in a template database: ``--cohorts`` cohorts of the mini script (two
warm-up days, three task days: welcome, a two-part talk, a red envelope and its close,
the pitch and its close, three task unlocks; ten step runs a cohort), all starting the
same day, each with ``--members`` members already in the task stage. Each trial copies
the template (``CREATE DATABASE … TEMPLATE``) and starts its processes on it, without
a bot token: what the steps would send is logged, so the figures are the service's own
work (claims, the use cases, the database), not Telegram's global limit of 30 messages
a second, which caps sends whatever the number of processes.

- **steps**: the clock is moved to each instant something is due, and the processes run
  it all; steps a second is the step runs done over the time from each move until
  nothing due is left (the waits between moves are not counted). Beside it: how much of
  that time passed before a process took up the instant (each process's tick is brought
  forward to the next due instant, which it finds within 50 ms of the move), and the
  cores busy meanwhile;
- **events**: every member's three ``fan.locked`` events, signed, in batches of
  ``--batch``, over ``--connections`` connections spread round robin over the processes
  (as a load balancer would); events a second is their number over the time from the
  first request until the last event is applied (not only acknowledged).

The trials take turns (1, 2, 3 processes, then again) for ``--rounds`` rounds; the
medians are compared. After each trial, the invariants: every step run done once (none
in doubt, failed or left due) and every process ran some; every event stored once and
applied; each member's progress exactly 3; one reward per member; each payout delivered
to the receiver once. Each trial also prints the CPU its processes, the benchmark and
PostgreSQL used, and how many cores each kept busy while the events were applied: on a
machine they share, a second process can only add what the first left idle.

The CPU each event and each step cost the processes and PostgreSQL comes with it.
``--processes`` takes ``N+S`` besides ``N``: N processes with S spinners
beside them (a process that only keeps a core busy, with no I/O and next to no memory):
a control that shows what a saturated machine alone does to that cost, with no third
process's work, connections or contention in it.

Targets (issue 13): two processes ≥ 1.4× one, three no slower than two, no violation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.engine import make_url
from standardwebhooks.webhooks import Webhook

from bot.clock import write_instant
from bot.telegram.offline import RecordingMessenger
from funnels.deps import Deps
from funnels.kernel.clock import ManualClock
from scripts.bench.scratch import scratch_database
from scripts.bench.servers import server
from storage.db import create_engine
from storage.tables import inbound_events, ledger_entries, step_runs, task_progress, users
from storage.uow import SqlStore
from tests.support.funnel_kit import TASK_CHAT, Kit, load, task_at, warmup_at
from tests.support.payout_receiver import Receiver, new_secret, receiving
from tests.support.process import free_port

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PG = os.environ.get(
    "FUNNELBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
STEPS_PER_COHORT = 10
END = task_at(2, "09:00")
"""The last due instant of the mini script (task day 2's unlock)."""
EVENTS_AT = task_at(1, "10:00")


# --------------------------------------------------------------------------- seeding


async def seed(url: str, cohorts: int, members: int) -> None:
    """The template: ``cohorts`` cohorts starting together, each with ``members`` in the
    task stage, nothing run yet, its statistics gathered."""
    engine = create_engine(url)
    store = SqlStore(engine)
    clock = ManualClock(warmup_at(1, "08:00"))
    messenger = RecordingMessenger()
    kit = Kit(
        store,
        clock,
        messenger,
        Deps(store, messenger, clock),
        load(budget="1000.00", reward_seats=None, capacity=max(50, members)),
    )
    try:
        for c in range(cohorts):
            cohort = await kit.start(chat=-1_000_000 - c, code=f"S{c:04d}")
            async with store.transaction() as tx:
                await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT - c)
                await tx.commit()
            await kit.admitted(cohort, members)
        # Statistics, as autovacuum gathers them on a database in use: without them the
        # planner guesses, and a trial's plans would depend on whether autovacuum had
        # reached the template before it was copied.
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def copy_of(template: str, label: str) -> AsyncIterator[str]:
    """A new database made from ``template`` (which must have no connections), dropped
    on the way out."""
    base = make_url(template)
    name = f"{base.database}_{label}"
    admin = create_engine(
        base.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{base.database}"'))
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


# --------------------------------------------------------------------------- a trial


@dataclass
class Trial:
    processes: int
    spinners: int = 0
    steps: int = 0
    steps_seconds: float = 0.0
    instants: int = 0
    steps_noticing: float = 0.0
    """Of ``steps_seconds``, the time from each move of the clock until a process took
    up the instant (its next tick)."""
    steps_cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds used during the steps phase, by whom."""
    events: int = 0
    events_seconds: float = 0.0
    acked_seconds: float = 0.0
    service_cpu: float = 0.0
    """CPU seconds the trial's ``funnelbot run`` processes used, all told."""
    bench_cpu: float = 0.0
    """CPU seconds this process used meanwhile (the client, the payout receiver)."""
    db_cpu: float | None = None
    """CPU seconds PostgreSQL used meanwhile (when it runs on this machine)."""
    wall: float = 0.0
    acked_cores: dict[str, float] = field(default_factory=dict)
    """Cores busy while the events were acknowledged, by whom."""
    events_cores: dict[str, float] = field(default_factory=dict)
    """Cores busy during the events phase, by whom (``service``, ``benchmark``, ``db``):
    how near the machine was to its limit."""
    violations: list[str] = field(default_factory=list)

    @property
    def steps_rate(self) -> float:
        return self.steps / self.steps_seconds if self.steps_seconds else 0.0

    @property
    def events_rate(self) -> float:
        return self.events / self.events_seconds if self.events_seconds else 0.0

    @property
    def label(self) -> str:
        return f"{self.processes}+{self.spinners}" if self.spinners else str(self.processes)

    def per_event_us(self, who: str) -> float:
        """CPU microseconds an event cost ``who`` from the first request until the last
        event was applied."""
        cpu = self.events_cores.get(who, 0.0) * self.events_seconds
        return cpu / self.events * 1e6 if self.events else 0.0

    def per_step_ms(self, who: str) -> float:
        """CPU milliseconds a step run cost ``who`` during the steps phase."""
        return self.steps_cpu.get(who, 0.0) / self.steps * 1e3 if self.steps else 0.0


async def run_steps(engine: Any, clock_file: Path, trial: Trial) -> None:
    async with engine.connect() as conn:
        instants = sorted(
            {
                r[0]
                for r in await conn.execute(
                    select(step_runs.c.due_at).where(step_runs.c.due_at <= END)
                )
            }
        )
    # The watcher takes as little as it can from the processes it watches: one
    # connection in autocommit for the whole phase, one indexed look every 10 ms.
    # Nothing due may be left pending or running (a run left unknown or failed is a
    # violation the checks report); until a process took up the instant, also whether
    # one did.
    left = (
        select(step_runs.c.id)
        .where(
            step_runs.c.status.in_(("pending", "running")),
            step_runs.c.due_at <= bindparam("now"),
        )
        .limit(1)
    )
    taken = (
        select(step_runs.c.id)
        .where(step_runs.c.due_at == bindparam("now"), step_runs.c.status != "pending")
        .limit(1)
    )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        for instant in instants:
            write_instant(clock_file, instant)
            started, cpu_before = time.perf_counter(), _cpu_now()
            noticed, deadline = None, time.monotonic() + 120
            while True:
                if time.monotonic() > deadline:
                    trial.violations.append(f"the steps due at {instant} not done within 120 s")
                    break
                if noticed is None and (await conn.execute(taken, {"now": instant})).first():
                    noticed = time.perf_counter()
                if noticed is not None and not (await conn.execute(left, {"now": instant})).first():
                    break
                await asyncio.sleep(0.01)
            ended = time.perf_counter()
            trial.steps_seconds += ended - started
            trial.steps_noticing += (noticed or ended) - started
            for who, cpu in _cpu_now().items():
                trial.steps_cpu[who] = (
                    trial.steps_cpu.get(who, 0.0) + cpu - cpu_before.get(who, 0.0)
                )
            trial.instants += 1
    async with engine.connect() as conn:
        trial.steps = (
            await conn.execute(select(func.count()).where(step_runs.c.status == "done"))
        ).scalar() or 0


def _requests(
    telegram_ids: list[int], batch: int, secret: str, seed: int
) -> list[tuple[bytes, dict[str, str]]]:
    """Every member's three events, signed, in batches (signed before the clock starts;
    the signatures' time is the machine's, within the receiver's tolerance)."""
    events = [
        {
            "id": f"fan-{tg}-{n}",
            "type": "fan.locked",
            "occurred_at": (EVENTS_AT + timedelta(minutes=n)).isoformat(),
            "member": {"telegram_user_id": tg},
            "data": {"fan": f"{tg}-{n}"},
        }
        for tg in telegram_ids
        for n in range(3)
    ]
    # As a platform sends them: the members of all cohorts interleaved (each member's
    # own three in order), not cohort after cohort.
    random.Random(seed).shuffle(events)
    events.sort(key=lambda e: int(e["id"].rsplit("-", 1)[1]))
    webhook = Webhook(secret)
    out = []
    for i in range(0, len(events), batch):
        body = json.dumps(events[i : i + batch]).encode()
        msg_id = f"msg_{secrets.token_hex(8)}"
        now = datetime.now(UTC)  # noqa: TID251 (a sender's clock signs)
        out.append(
            (
                body,
                {
                    "webhook-id": msg_id,
                    "webhook-timestamp": str(int(now.timestamp())),
                    "webhook-signature": webhook.sign(msg_id, now, body.decode()),
                    "content-type": "application/json",
                },
            )
        )
    return out


async def run_events(
    engine: Any, ports: list[int], secret: str, args: argparse.Namespace, trial: Trial
) -> None:
    async with engine.connect() as conn:
        telegram_ids = [
            r[0]
            for r in await conn.execute(
                select(users.c.telegram_id).where(users.c.telegram_id.is_not(None))
            )
        ]
    requests = _requests(telegram_ids, args.batch, secret, args.seed)
    trial.events = len(telegram_ids) * 3
    queue: asyncio.Queue[tuple[int, tuple[bytes, dict[str, str]]]] = asyncio.Queue()
    for n, request in enumerate(requests):
        queue.put_nowait((ports[n % len(ports)], request))
    refused: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                port, (body, headers) = queue.get_nowait()
                url = f"http://127.0.0.1:{port}/api/v1/events"
                async with session.post(url, data=body, headers=headers) as answer:
                    await answer.read()
                    if answer.status != 202:
                        refused[answer.status] += 1

        started, cpu_before = time.perf_counter(), _cpu_now()
        await asyncio.gather(*(worker() for _ in range(args.connections)))
        trial.acked_seconds = time.perf_counter() - started
        cpu_acked = _cpu_now()
    trial.acked_cores = _cores(cpu_before, cpu_acked, trial.acked_seconds)
    if refused:
        trial.violations.append(f"events refused: {dict(refused)}")
    # Whether any is left, not how many: the watcher's own query stays cheap for the
    # database it watches (a count of tens of thousands of rows every 10 ms is not).
    # One connection held for the whole wait, in autocommit (no checkout, ping, BEGIN
    # or COMMIT per look): the watcher takes as little as it can from the processes.
    unapplied = inbound_events.c.state.in_(("pending", "waiting"))
    any_left = select(inbound_events.c.id).where(unapplied).limit(1)
    deadline = time.monotonic() + 120
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        while (await conn.execute(any_left)).first() is not None:
            if time.monotonic() > deadline:
                count = (await conn.execute(select(func.count()).where(unapplied))).scalar()
                trial.violations.append(f"{count} events not applied within 120 s")
                break
            await asyncio.sleep(0.01)
    trial.events_seconds = time.perf_counter() - started
    cpu_after = _cpu_now()
    trial.events_cores = _cores(cpu_before, cpu_after, trial.events_seconds)


def _cores(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    return {who: (after[who] - before[who]) / seconds for who in before if who in after}


async def check(engine: Any, receiver: Receiver, trial: Trial, expect: dict[str, int]) -> None:
    v = trial.violations
    async with engine.connect() as conn:
        statuses = Counter(r[0] for r in await conn.execute(select(step_runs.c.status)))
        owners = {
            r[0]
            for r in await conn.execute(
                select(step_runs.c.lease_owner).where(step_runs.c.status == "done")
            )
        }
        stored = (await conn.execute(select(func.count()).select_from(inbound_events))).scalar()
        distinct = (
            await conn.execute(select(func.count(func.distinct(inbound_events.c.event_id))))
        ).scalar()
        states = Counter(r[0] for r in await conn.execute(select(inbound_events.c.state)))
        progress = Counter(
            sum(int(v) for v in r[0].values())  # {leaf: count}
            for r in await conn.execute(
                select(task_progress.c.progress).where(task_progress.c.task_id == "invite_fans")
            )
        )
        rewards = (
            await conn.execute(select(func.count()).where(ledger_entries.c.kind == "reward"))
        ).scalar()
    if statuses != Counter({"done": expect["steps"]}):
        v.append(f"step runs {dict(statuses)}, expected {expect['steps']} done")
    if len(owners) != trial.processes:
        v.append(f"steps ran in {len(owners)} processes of {trial.processes}")
    if stored != trial.events or distinct != stored:
        v.append(f"{stored} events stored ({distinct} distinct) of {trial.events} sent")
    if set(states) != {"handled"}:
        v.append(f"events by state: {dict(states)}")
    if progress != Counter({3: expect["members"]}):
        v.append(f"fans task progress {dict(progress)}, expected 3 for {expect['members']}")
    if rewards != expect["members"]:
        v.append(f"{rewards} rewards for {expect['members']} members")
    deadline = time.monotonic() + 120
    while len(receiver.received) < expect["members"] and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    ids = receiver.ids()
    if len(ids) != expect["members"] or len(set(ids)) != len(ids):
        v.append(f"payouts delivered {len(ids)} times ({len(set(ids))} distinct)")


def _env(
    url: str, port: int, clock_file: Path, secret: str, receiver: Receiver, tick: float
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELBOT_")}
    return {
        **env,
        "FUNNELBOT_DATABASE_URL": url,
        "FUNNELBOT_HTTP_PORT": str(port),
        "FUNNELBOT_CLOCK_FILE": str(clock_file),
        "FUNNELBOT_TICK_SECONDS": str(tick),
        "FUNNELBOT_EVENTS_SECRET": secret,
        "FUNNELBOT_PAYOUT_WEBHOOK_URL": receiver.url,
        "FUNNELBOT_PAYOUT_SECRET": receiver.secret,
        "FUNNELBOT_PUBLIC_URL": "http://bench.invalid",
        "FUNNELBOT_API_RATE": "0",
        "FUNNELBOT_LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),  # the processes run this tree's code, as this process does
    }


def _stat(pid: str) -> tuple[str, list[str]] | None:
    """A process's name and the fields of ``/proc/PID/stat`` after it (``[1]`` the
    parent, ``[11]`` and ``[12]`` its user and system clock ticks, ``[13]`` and ``[14]``
    its waited-for children's), or None once it is gone (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            head, rest = f.read().rsplit(")", 1)
        return head.split("(", 1)[1], rest.split()
    except (OSError, IndexError, ValueError):
        return None


_SPINNERS: set[str] = set()
"""The pids of the spinners running now (children of this process, not the service)."""


def _cpu_now() -> dict[str, float]:
    """CPU seconds so far of this process's running children (the ``funnelbot run``
    processes; the spinners apart), of this process, and of PostgreSQL when it runs
    here (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    me, children, spun = str(os.getpid()), 0, 0
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        stat = _stat(pid)
        if stat is None:
            continue
        rest = stat[1]
        if rest[1] == me:
            if pid in _SPINNERS:
                spun += int(rest[11]) + int(rest[12])
            else:
                children += int(rest[11]) + int(rest[12])
    own = os.times()
    out = {"service": children / tick, "benchmark": own.user + own.system}
    if _SPINNERS:
        out["spin"] = spun / tick
    db = _postgres_cpu()
    if db is not None:
        out["db"] = db
    return out


def _postgres_cpu() -> float | None:
    """CPU seconds of the local PostgreSQL server so far: its processes' own and what
    its postmaster counted for the backends that ended (Linux /proc; None elsewhere)."""
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        total, tick = 0.0, os.sysconf("SC_CLK_TCK")
        for pid in pids:
            stat = _stat(pid)
            if stat is None:
                continue
            name, rest = stat
            if name == "postgres":
                total += int(rest[11]) + int(rest[12])  # utime, stime
                if _is_not_postgres(rest[1]):  # the postmaster (its parent is not postgres)
                    total += int(rest[13]) + int(rest[14])  # the postmaster: ended children
        return total / tick
    except OSError:
        return None


def _is_not_postgres(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() != "postgres"
    except OSError:
        return True


def _logged_errors(workdir: Path, label: str) -> list[str]:
    """An error the processes logged (a deadlock, a failed transaction) is a violation."""
    found = []
    for log in sorted(workdir.glob(f"run-{label}-*.log")):
        errors = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if '"level": "ERROR"' in line or "Traceback" in line
        ]
        if errors:
            found.append(f"{log.name}: {len(errors)} errors, first: {errors[0][:300]}")
    return found


@contextlib.contextmanager
def spinning(count: int) -> Iterator[list[float]]:
    """``count`` processes that keep a core busy each until the block ends (a loop with
    no I/O and next to no memory); yields a list that holds, once they have ended, the
    CPU seconds they used, to be told apart from the service's."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    _SPINNERS.update(str(p.pid) for p in spinners)
    used: list[float] = []
    try:
        yield used
    finally:
        tick = os.sysconf("SC_CLK_TCK")
        for p in spinners:
            stat = _stat(str(p.pid))
            if stat is not None:
                used.append((int(stat[1][11]) + int(stat[1][12])) / tick)
            p.kill()
            p.wait()
            _SPINNERS.discard(str(p.pid))


async def trial(
    template: str,
    processes: int,
    label: str,
    args: argparse.Namespace,
    workdir: Path,
    spinners: int = 0,
) -> Trial:
    result = Trial(processes, spinners)
    secret = new_secret()
    clock_file = workdir / f"clock-{label}"
    write_instant(clock_file, warmup_at(1, "08:00"))
    expect = {"steps": args.cohorts * STEPS_PER_COHORT, "members": args.cohorts * args.members}
    before, wall, db_before = os.times(), time.perf_counter(), _postgres_cpu()
    async with copy_of(template, label) as url:
        engine = create_engine(url)
        ports = [free_port() for _ in range(processes)]
        try:
            with (
                receiving() as receiver,
                contextlib.ExitStack() as stack,
                spinning(spinners) as spun,
            ):
                for i, port in enumerate(ports):
                    stack.enter_context(
                        server(
                            [sys.executable, "-c", "from bot.cli import main; main()", "run"],
                            _env(url, port, clock_file, secret, receiver, args.tick),
                            port,
                            workdir / f"run-{label}-{i}.log",
                        )
                    )
                await run_steps(engine, clock_file, result)
                await run_events(engine, ports, secret, args, result)
                await check(engine, receiver, result, expect)
        finally:
            await engine.dispose()
    result.violations += _logged_errors(workdir, label)
    after = os.times()  # the processes were waited for: their CPU is the children's
    result.service_cpu = (
        after.children_user
        + after.children_system
        - before.children_user
        - before.children_system
        - sum(spun)
    )
    result.bench_cpu = after.user + after.system - before.user - before.system
    result.wall = time.perf_counter() - wall
    db_after = _postgres_cpu()
    if db_before is not None and db_after is not None:
        result.db_cpu = db_after - db_before
    return result


# --------------------------------------------------------------------------- main


def _kinds(spec: str) -> list[tuple[int, int]]:
    """``--processes``: ``1,2,3`` or with spinners, ``2+1``: (processes, spinners)."""
    kinds = []
    for item in spec.split(","):
        processes, _, spinners = item.strip().partition("+")
        try:
            kind = (int(processes), int(spinners or 0))
        except ValueError:
            problem = f"--processes: {item!r} is not N or N+S (N processes, S spinners)"
            raise SystemExit(problem) from None
        if kind[0] < 1 or kind[1] < 0:
            raise SystemExit(f"--processes: {item!r} needs one process or more")
        kinds.append(kind)
    return kinds


async def bench(args: argparse.Namespace) -> list[Trial]:
    trials: list[Trial] = []
    kinds = _kinds(args.processes)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        async with scratch_database(args.postgres, "scaleout") as template:
            started = time.perf_counter()
            await seed(template, args.cohorts, args.members)
            print(
                f"seeded {args.cohorts} cohorts of {args.members} members in "
                f"{time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )
            for r in range(args.rounds):
                for n, spin in kinds:
                    label = f"r{r}p{n}s{spin}"
                    t = await trial(template, n, label, args, workdir, spin)
                    trials.append(t)
                    _report(r, t)
    return trials


def _report(r: int, t: Trial) -> None:
    kind = f"{t.processes} process(es)" + (f" + {t.spinners} spinner(s)" if t.spinners else "")
    print(
        f"  round {r + 1}, {kind}: {t.steps_rate:7,.0f} steps/s "
        f"({t.steps} in {t.steps_seconds:.2f} s over {t.instants} instants, "
        f"{t.steps_noticing:.2f} s of it until a tick took up the instant; "
        "cores busy: "
        + ", ".join(f"{who} {cpu / t.steps_seconds:.2f}" for who, cpu in t.steps_cpu.items())
        + f"; CPU a step: service {t.per_step_ms('service'):.2f} ms, PostgreSQL "
        f"{t.per_step_ms('db'):.2f} ms), "
        f"{t.events_rate:7,.0f} events/s applied ({t.events} in "
        f"{t.events_seconds:.2f} s; acknowledged in {t.acked_seconds:.2f} s; CPU an event: "
        f"service {t.per_event_us('service'):.0f} µs, PostgreSQL "
        f"{t.per_event_us('db'):.0f} µs), "
        f"violations: {len(t.violations)}; CPU: service {t.service_cpu:.0f} s, "
        f"benchmark {t.bench_cpu:.0f} s, PostgreSQL "
        f"{'-' if t.db_cpu is None else f'{t.db_cpu:.0f}'} s, over {t.wall:.0f} s; "
        "cores busy while events were acknowledged: "
        + ", ".join(f"{who} {n:.2f}" for who, n in t.acked_cores.items())
        + "; until applied: "
        + ", ".join(f"{who} {n:.2f}" for who, n in t.events_cores.items()),
        file=sys.stderr,
    )
    for violation in t.violations:
        print(f"    VIOLATION: {violation}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=DEFAULT_PG, help="PostgreSQL server URL")
    parser.add_argument("--cohorts", type=int, default=200)
    parser.add_argument("--members", type=int, default=20, help="members a cohort")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--processes",
        default="1,2,3",
        help="process counts to compare; N+S adds S spinners beside N processes (a control)",
    )
    parser.add_argument("--batch", type=int, default=10, help="events a request")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1, help="the events' arrival order")
    parser.add_argument("--tick", type=float, default=0.5, help="FUNNELBOT_TICK_SECONDS")
    args = parser.parse_args()
    _kinds(args.processes)  # (a bad list is refused before anything is seeded)
    trials = asyncio.run(bench(args))

    by_kind: dict[str, list[Trial]] = {}
    for t in trials:
        by_kind.setdefault(t.label, []).append(t)

    def median(kind: str, figure: Callable[[Trial], float]) -> float:
        return statistics.median(figure(t) for t in by_kind[kind])

    def cost(kind: str, who: str) -> float:
        """The median CPU an event cost ``who`` in trials of ``kind``."""
        return median(kind, lambda t: t.per_event_us(who))

    print(
        f"\n{args.cohorts} cohorts x {args.members} members on PostgreSQL, "
        f"{args.rounds} round(s), medians:"
    )
    for kind in by_kind:
        print(
            f"  {kind:>5} process(es): {median(kind, lambda t: t.steps_rate):8,.0f} steps/s "
            f"{median(kind, lambda t: t.events_rate):8,.0f} events/s   CPU an event: service "
            f"{cost(kind, 'service'):4.0f} µs, PostgreSQL {cost(kind, 'db'):4.0f} µs"
        )
    verdicts = []
    for more, fewer, target in (("2", "1", 1.4), ("3", "2", 1.0)):
        if more not in by_kind or fewer not in by_kind:
            continue
        for name, rate in (("steps", lambda t: t.steps_rate), ("events", lambda t: t.events_rate)):
            ratio = median(more, rate) / median(fewer, rate)
            ok = ratio >= target
            verdicts.append(ok)
            print(
                f"  {name}: {more} / {fewer} processes = {ratio:.2f} (target >= {target}) "
                f"{'PASS' if ok else 'FAIL'}"
            )
    for kind in ("3", "2+1"):  # what a saturated machine does to an event's cost
        if kind not in by_kind or "2" not in by_kind:
            continue
        costs = [cost(kind, who) / cost("2", who) for who in ("service", "db")]
        print(
            f"  CPU an event, {kind} against 2: service x{costs[0]:.2f}, PostgreSQL x{costs[1]:.2f}"
        )
    violations = sum(len(t.violations) for t in trials)
    print(f"  invariant violations: {violations} {'PASS' if violations == 0 else 'FAIL'}")
    verdicts.append(violations == 0)
    print(
        "\nreproduce: .venv/bin/python scripts/bench/scaleout.py"
        f" --cohorts {args.cohorts} --members {args.members} --rounds {args.rounds}"
        f" --processes {args.processes}"
        f" --batch {args.batch} --connections {args.connections} --tick {args.tick}"
        f" --seed {args.seed}"
    )
    sys.exit(0 if all(verdicts) else 1)


if __name__ == "__main__":
    main()
