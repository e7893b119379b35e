#!/usr/bin/env python3
"""Benchmark: what one idle scheduler tick costs a process, in CPU.

Every ``funnelbot run`` process ticks (``FUNNELBOT_TICK_SECONDS``) whether or not
anything is due: it looks for due steps and expired leases, envelopes left full, pitches
with new replies, member groups to tend, reminders, cohorts to finish, events to catch
up with and reward notices to send. With several processes side by side, that cost is
paid once per process and tick, so it is what a process adds while it waits.

A scratch database (SQLite, or PostgreSQL with ``--postgres``) is seeded with
``--cohorts`` running cohorts of the mini script (``--members`` members each, in the
task stage), on a clock between two steps, so that each tick finds nothing to do. The
tick's work (:class:`funnels.cohorts.tick.RunDueSteps` and
:class:`funnels.ladder.events.CatchUpEvents`, as the service's tick runs them) is then
run ``--ticks`` times after a few to warm up; printed: CPU milliseconds a tick (this
process's CPU; the database server's is not counted) and wall milliseconds a tick.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bot.service import STALE_EVENTS
from bot.telegram.offline import RecordingMessenger
from funnels.cohorts.tick import RunDueSteps
from funnels.deps import Deps
from funnels.kernel.clock import ManualClock
from funnels.ladder.events import CatchUpEvents
from scripts.bench.scratch import scratch_database
from storage.db import create_engine
from storage.uow import SqlStore
from tests.support.funnel_kit import TASK_CHAT, Kit, load, warmup_at

IDLE_AT = warmup_at(1, "08:30")
"""Between the seeding (08:00) and the mini script's first step of the day: nothing due."""


async def bench(args: argparse.Namespace) -> tuple[list[float], list[float]]:
    async with scratch_database(args.postgres, "tick") as url:
        engine = create_engine(url)
        store = SqlStore(engine)
        clock = ManualClock(warmup_at(1, "08:00"))
        messenger = RecordingMessenger()
        deps = Deps(store, messenger, clock)
        kit = Kit(store, clock, messenger, deps, load(budget="1000.00", reward_seats=None))
        try:
            for c in range(args.cohorts):
                cohort = await kit.start(chat=-1_000_000 - c, code=f"T{c:04d}")
                async with store.transaction() as tx:
                    await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT - c)
                    await tx.commit()
                await kit.admitted(cohort, args.members)
            clock.set(IDLE_AT)
            steps = RunDueSteps(deps, owner="bench")
            events = CatchUpEvents(deps, batch=200, stale_after=STALE_EVENTS)
            cpu, wall = [], []
            for n in range(args.warmup + args.ticks):
                c0, w0 = time.process_time(), time.perf_counter()
                report = await steps()
                caught = await events()
                if n >= args.warmup:
                    cpu.append((time.process_time() - c0) * 1000)
                    wall.append((time.perf_counter() - w0) * 1000)
                if report.claimed or caught.applied or caught.woke or caught.expired:
                    sys.exit(f"the tick found work to do ({report}, {caught}): not idle")
            return cpu, wall
        finally:
            await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        default=None,
        help="PostgreSQL server URL (postgresql+asyncpg://…); SQLite when not given",
    )
    parser.add_argument("--cohorts", type=int, default=20)
    parser.add_argument("--members", type=int, default=20, help="members a cohort")
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20, help="ticks run before measuring")
    args = parser.parse_args()
    cpu, wall = asyncio.run(bench(args))
    where = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"idle tick on {where}, {args.cohorts} running cohorts of {args.members} members, "
        f"{args.ticks} ticks:"
    )
    for name, times in (("CPU ", cpu), ("wall", wall)):
        print(
            f"  {name} a tick: median {statistics.median(times):.2f} ms, "
            f"mean {statistics.fmean(times):.2f} ms"
        )
    postgres = f" --postgres {args.postgres}" if args.postgres else ""
    print(
        f"\nreproduce: .venv/bin/python scripts/bench/tick.py{postgres} --cohorts {args.cohorts}"
        f" --members {args.members} --ticks {args.ticks} --warmup {args.warmup}"
    )


if __name__ == "__main__":
    main()
