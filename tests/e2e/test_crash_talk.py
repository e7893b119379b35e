"""``funnelbot run`` killed with SIGKILL in the middle of a cohort's talk, on a virtual
clock (``FUNNELBOT_CLOCK_FILE``), then started again.

The talk's second part reaches Telegram, but its answer is held back until after the
kill: the process cannot know it was sent. After the restart its lease runs out and it
is in doubt (``unknown``), never sent again on its own; the third part waits behind it,
and ops see both (``funnelbot step list``). Ops say it went out (``funnelbot step
skip``) and the talk goes on: every part is in the group exactly once.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.telegram.offline import RecordingMessenger
from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.clock import ManualClock
from funnels.people.leaders import GrantLeader
from funnels.people.regions import AddRegion
from storage.db import create_engine
from storage.tables import cohorts, step_runs
from storage.uow import SqlStore
from tests.botapi import LocalBotAPI
from tests.support.cli import funnelbot
from tests.support.process import BotProcess
from tests.support.virtual_time import VirtualTime

pytestmark = pytest.mark.slow

TOKEN = "6262:TALK"
LEADER = 600
WARMUP = -100_600
TICK = 0.25
DAY1 = datetime(2026, 3, 2, tzinfo=UTC)
PARTS = ["Talk, part one.", "Talk, part two.", "Talk, part three."]

TALKY = textwrap.dedent("""\
    id: talky
    version: 1
    locale: en
    title: A talk
    timezone: UTC
    capacity: 50
    budget: {currency: EUR, total: "10.00"}
    warmup:
      days: 1
      steps:
        - id: d1_talk
          at: {day: 1, time: "10:00"}
          talk:
            speaker: Ana
            title: Corner shops
            slow_mode: 30s
            parts:
              - text: "Talk, part one."
              - after: 2m
                text: "Talk, part two."
              - after: 4m
                text: "Talk, part three."
        - id: d1_pitch
          at: {day: 1, time: "20:00"}
          pitch: {text: "Reply 1 to join the task group.", reply: {window: 1h}}
    tasks:
      days: 21
      ladder:
        - id: first_order
          title: First sale
          how: Sell one thing.
          unlock: {day: 1}
          goal: {event: order.paid, count: 1}
          promote: shopkeeper
    """)


def at(hhmm: str) -> datetime:
    h, m = (int(x) for x in hhmm.split(":"))
    return DAY1 + timedelta(hours=h, minutes=m)


@dataclass
class Scene:
    api: LocalBotAPI
    bot: BotProcess
    db: AsyncEngine
    time: VirtualTime

    def parts_sent(self) -> list[str]:
        """The talk's parts in the group, in order, as often as each was posted (the
        first comes under the talk's title)."""
        texts = [m.get("text") or "" for m in self.api.messages(WARMUP)]
        return [part for text in texts for part in PARTS if text.endswith(part)]

    async def statuses(self) -> dict[str, tuple[str, str | None]]:
        async with self.db.connect() as conn:
            rows = await conn.execute(
                select(step_runs.c.key, step_runs.c.status, step_runs.c.error)
            )
            return {r.key: (r.status, r.error) for r in rows}


@pytest.fixture
async def scene(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Scene]:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "talky.yaml").write_text(TALKY)
    db = create_engine(sqlite_url)
    deps = Deps(SqlStore(db), RecordingMessenger(), ManualClock(at("08:00")))
    await AddRegion(deps)("SEA", "Southeast Asia", "Asia/Singapore")
    await GrantLeader(deps)(target=Actor(LEADER, "Lee"), region_code="SEA", is_admin=True)
    monkeypatch.setenv("FUNNELBOT_DATABASE_URL", sqlite_url)  # for `funnelbot step`
    with LocalBotAPI(TOKEN, limits=False) as api:
        api.add_user(LEADER, "Lee", started_bot=True)
        api.add_group(WARMUP, "Warm-up", supergroup=True, owner=LEADER)
        time = VirtualTime(tmp_path / "clock", db, api, TICK, at("08:00"))
        monkeypatch.setenv("FUNNELBOT_CLOCK_FILE", str(time.path))  # ops on the same clock
        bot = BotProcess(
            tmp_path,
            api,
            TOKEN,
            FUNNELBOT_DATABASE_URL=sqlite_url,
            FUNNELBOT_SCRIPTS_DIR=str(scripts),
            FUNNELBOT_CLOCK_FILE=str(time.path),
            FUNNELBOT_TICK_SECONDS=str(TICK),
        )
        time.on_stuck = bot.output
        try:
            yield Scene(api, bot, db, time)
        finally:
            if bot.process is not None and bot.process.poll() is None:
                bot.kill()
            await db.dispose()


async def test_a_kill_mid_talk_sends_no_part_twice_and_shows_the_doubt_to_ops(
    scene: Scene,
) -> None:
    api, time = scene.api, scene.time
    scene.bot.start()
    api.say(WARMUP, LEADER, "/launch talky start=2026-03-02")
    await time.settle()
    async with scene.db.connect() as conn:
        code = (await conn.execute(select(cohorts.c.code))).scalar()
    assert code is not None, f"{api.messages(WARMUP)}\n{scene.bot.output()}"

    await time.run_until(at("10:00"))
    assert scene.parts_sent() == PARTS[:1], f"{api.messages(WARMUP)}\n{scene.bot.output()}"

    # Part two reaches Telegram; its answer is held back, and the process dies waiting.
    api.stall_next("sendMessage", 60)
    time.set(at("10:02"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while scene.parts_sent() != PARTS[:2]:
        assert loop.time() < deadline, f"part two never went out:\n{scene.bot.output()}"
        await asyncio.sleep(0.05)
    assert (await scene.statuses())["d1_talk.p1"][0] == "running"
    scene.bot.kill()

    # Started again: part two's lease still runs, and part three, due, waits behind it.
    scene.bot.start()
    await time.glance(at("10:06"))
    assert scene.parts_sent() == PARTS[:2]
    # The lease runs out: in doubt, not sent again; part three is held for a decision.
    await time.at(at("10:08"))
    statuses = await scene.statuses()
    assert statuses["d1_talk.p1"][0] == "unknown"
    assert statuses["d1_talk.p2"] == ("held", "waiting for a decision on d1_talk.p1")
    await time.at(at("10:20"))
    assert scene.parts_sent() == PARTS[:2]

    listed = await funnelbot("step", "list", code)
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("d1_talk.p1\tunknown\tdue 2026-03-02 10:02 UTC")
    assert lines[1].startswith("d1_talk.p2\theld\tdue 2026-03-02 10:06 UTC")

    # Ops saw part two in the group: skip it, and the talk goes on.
    skipped = await funnelbot("step", "skip", code, "d1_talk.p1")
    assert skipped.exit_code == 0, skipped.output
    assert "the rest of its talk goes on: d1_talk.p2" in skipped.stdout
    await time.at(at("10:21"))
    assert scene.parts_sent() == PARTS, await scene.statuses()
    statuses = await scene.statuses()
    assert statuses["d1_talk.p1"][0] == "skipped"
    assert statuses["d1_talk.p2"][0] == "done"
    assert scene.bot.stop() == 0
    assert "Traceback" not in scene.bot.output()
