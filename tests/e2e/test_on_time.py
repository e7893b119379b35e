"""``funnelbot run`` sends a step when it falls due, not at its next tick.

The tick runs every ``FUNNELBOT_TICK_SECONDS``; between two ticks the service watches
the clock for the instant the last tick left as the next one due, and brings the tick
forward to it. Here the tick is a minute apart and the clock a file the test moves
(``FUNNELBOT_CLOCK_FILE``): each post is in the group within seconds of the clock
reaching its time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.clock import write_instant
from bot.telegram.offline import RecordingMessenger
from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.clock import ManualClock
from funnels.people.leaders import GrantLeader
from funnels.people.regions import AddRegion
from storage.db import create_engine
from storage.tables import cohorts
from storage.uow import SqlStore
from tests.botapi import LocalBotAPI
from tests.support.process import BotProcess
from tests.support.scripts import spring_line

pytestmark = pytest.mark.slow

TOKEN = "6363:ONTIME"
LEADER = 630
WARMUP = -100_630
TICK = 60
"""Seconds between two ticks: far longer than the test waits for any post."""
WITHIN = 10.0
"""Seconds a post may take to appear once the clock reached its time (a start on a busy
machine aside, a fraction of a second)."""
WELCOME = "Welcome, everyone. This week we meet every evening."
TALK = "Good evening, I am Ana."


def at(day: int, hhmm: str) -> datetime:
    """Warm-up day ``day`` at ``hhmm`` in the script's zone (UTC here)."""
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime(2026, 3, 1 + day, h, m, tzinfo=UTC)


@pytest.fixture
async def bot(tmp_path: Path, sqlite_url: str) -> AsyncIterator[tuple[LocalBotAPI, BotProcess]]:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "spring.yaml").write_text(spring_line("UTC"))
    db = create_engine(sqlite_url)
    deps = Deps(SqlStore(db), RecordingMessenger(), ManualClock(at(1, "08:00")))
    await AddRegion(deps)("SEA", "Southeast Asia", "Asia/Singapore")
    await GrantLeader(deps)(target=Actor(LEADER, "Lee"), region_code="SEA", is_admin=True)
    clock = tmp_path / "clock"
    write_instant(clock, at(1, "08:00"))
    with LocalBotAPI(TOKEN, limits=False) as api:
        api.add_user(LEADER, "Lee", started_bot=True)
        api.add_group(WARMUP, "Warm-up", supergroup=True, owner=LEADER)
        process = BotProcess(
            tmp_path,
            api,
            TOKEN,
            FUNNELBOT_DATABASE_URL=sqlite_url,
            FUNNELBOT_SCRIPTS_DIR=str(scripts),
            FUNNELBOT_CLOCK_FILE=str(clock),
            FUNNELBOT_TICK_SECONDS=str(TICK),
        )
        try:
            # Launched, then started again: the first tick (at the start) sees the plan.
            process.start()
            api.say(WARMUP, LEADER, "/launch spring start=2026-03-02")
            async with db.connect() as conn:
                for _ in range(400):
                    if (await conn.execute(select(cohorts.c.id))).first() is not None:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError(
                        f"never launched: {api.messages(WARMUP)}\n{process.output()}"
                    )
            assert process.stop() == 0
            process.start()
            yield api, process
        finally:
            if process.process is not None and process.process.poll() is None:
                process.kill()
            await db.dispose()


def _posted(api: LocalBotAPI, text: str) -> bool:
    """Whether a message ending with ``text`` is in the warm-up group (a talk's first
    part comes under its title)."""
    return any((m.get("text") or "").endswith(text) for m in api.messages(WARMUP))


async def _appears(api: LocalBotAPI, text: str, process: BotProcess) -> float:
    """Seconds until ``text`` is in the warm-up group (fails past :data:`WITHIN`)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not _posted(api, text):
        assert loop.time() - started < WITHIN, (
            f"{text!r} not posted within {WITHIN:.0f} s (the tick is {TICK} s apart):\n"
            f"{api.messages(WARMUP)}\n{process.output()}"
        )
        await asyncio.sleep(0.02)
    return loop.time() - started


async def test_each_step_goes_out_when_the_clock_reaches_it_not_a_tick_later(
    bot: tuple[LocalBotAPI, BotProcess], tmp_path: Path
) -> None:
    api, process = bot
    await asyncio.sleep(1.0)  # the first tick, at the start, has run and found 09:00 next
    assert not _posted(api, WELCOME)

    write_instant(tmp_path / "clock", at(1, "09:00"))
    await _appears(api, WELCOME, process)
    # Each tick brought forward finds the next step: the noon envelope, late by a day
    # when the clock jumps (skipped, past its grace), then the talk. Not early, then
    # on time.
    write_instant(tmp_path / "clock", at(2, "19:59"))
    await asyncio.sleep(1.0)
    assert not _posted(api, TALK)
    write_instant(tmp_path / "clock", at(2, "20:00"))
    await _appears(api, TALK, process)

    assert process.stop() == 0
    assert "Traceback" not in process.output()
