"""Three ``funnelbot run`` processes share one PostgreSQL database, one Redis and one
bot, behind a round-robin load balancer in webhook mode, for a simulated week on one
virtual clock (``FUNNELBOT_CLOCK_FILE``); then the task group's first task, its events
and its payouts. Every invariant of the funnel is checked at the end:

- each step run once (none in doubt), each post in its group once;
- the work shared: steps claimed and updates handled by more than one process;
- each envelope share given once: nobody holds two, the amounts add up to the cent,
  one ledger entry per share, every tap answered (in the webhook's reply);
- Telegram's limits kept across the processes (no 429 from the Bot API server, which
  enforces them);
- a talk's slow mode kept across processes: a member's rushed second message is deleted
  whichever process receives it;
- each event stored and applied once though every batch was posted twice, to two
  different processes; each reward paid once and each payout delivered once.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from bot.telegram.offline import RecordingMessenger
from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.clock import ManualClock
from funnels.people.leaders import GrantLeader
from funnels.people.regions import AddRegion
from storage.db import create_engine
from storage.tables import (
    cohort_members,
    cohorts,
    envelope_shares,
    envelopes,
    inbound_events,
    ledger_entries,
    payouts,
    step_runs,
    telegram_updates,
    users,
)
from storage.uow import SqlStore
from tests.botapi import LocalBotAPI
from tests.support.balancer import Balancer, balancing
from tests.support.payout_receiver import Receiver, new_secret, receiving
from tests.support.process import BotProcess, free_port
from tests.support.virtual_time import VirtualTime

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

TOKEN = "7373:SCALE"
WEBHOOK_SECRET = "scale-out-secret"
TICK = 0.25
PROCESSES = 3
START = datetime(2026, 3, 2, tzinfo=UTC)  # warm-up day 1
LEADERS = {-100_701: 701, -100_702: 702}  # warm-up group: its leader
TASK_GROUPS = {-100_701: -100_801, -100_702: -100_802}
MEMBERS = {
    chat: list(range(10_000 + 100 * i, 10_000 + 100 * i + 20)) for i, chat in enumerate(LEADERS)
}
RESPONDERS = {chat: people[:8] for chat, people in MEMBERS.items()}


def day(n: int, hhmm: str) -> datetime:
    """Warm-up day ``n`` (task day 1 is day 8) at ``hhmm`` UTC."""
    h, m = (int(x) for x in hhmm.split(":"))
    return START + timedelta(days=n - 1, hours=h, minutes=m)


WEEK = textwrap.dedent("""\
    id: week
    version: 1
    locale: en
    title: A week of warm-up
    timezone: UTC
    capacity: 100
    budget: {currency: USD, total: "100.00"}
    warmup:
      days: 7
      steps:
        - id: d1_welcome
          at: {day: 1, time: "09:00"}
          post: {text: "Welcome, everyone.", pin: true}
        - id: d1_envelope
          at: {day: 1, time: "12:00"}
          red_envelope: {total: "10.00", shares: 15, expires_in: 10m, text: "Lunch envelope"}
        - id: d2_talk
          at: {day: 2, time: "20:00"}
          talk:
            speaker: Ana
            title: Corner shops
            pin: true
            slow_mode: 60s
            parts:
              - text: "Talk, part one."
              - after: 2m
                text: "Talk, part two."
              - after: 4m
                text: "Talk, part three."
        - id: d3_post
          at: {day: 3, time: "09:00"}
          post: {text: "Day three: what did you sell this week?"}
        - id: d4_envelope
          at: {day: 4, time: "12:00"}
          red_envelope: {total: "5.00", shares: 8, expires_in: 10m, text: "Thursday envelope"}
        - id: d5_post
          at: {day: 5, time: "09:00"}
          post: {text: "Day five: a story from a shopkeeper."}
        - id: d6_post
          at: {day: 6, time: "09:00"}
          post: {text: "Day six: tomorrow is the big evening."}
        - id: d7_pitch
          at: {day: 7, time: "20:00"}
          pitch:
            text: "Reply 1 to join the task group."
            reply: {match: ["1"], window: 1h}
    tasks:
      days: 21
      ladder:
        - id: invite_fans
          title: Invite three fans
          how: Share your link with three friends.
          unlock: {day: 1, time: "09:00"}
          goal: {event: fan.locked, count: 3}
          reward: {amount: "0.50"}
    """)

POSTS_PER_GROUP = 11
"""What the steps post in each group: welcome, 2 envelopes, 3 talk parts, 3 posts, the
pitch, and its close."""


@dataclass
class Scene:
    api: LocalBotAPI
    balancer: Balancer
    bots: list[BotProcess]
    db: AsyncEngine
    time: VirtualTime
    receiver: Receiver
    events_secret: str

    async def scalar(self, query: Any) -> Any:
        async with self.db.connect() as conn:
            return (await conn.execute(query)).scalar()

    def output(self) -> str:
        return "\n".join(f"--- process {i}:\n{b.output()[-2500:]}" for i, b in enumerate(self.bots))

    async def until(self, condition: Any, what: str, within: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not await condition():
            if loop.time() > deadline:
                raise AssertionError(f"{what}\n{self.output()}")
            await asyncio.sleep(0.1)

    def post_events(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Post one signed batch to the balancer twice (two processes get it): the
        answers."""
        body = json.dumps(events)
        msg_id = f"msg_{uuid.uuid4().hex}"
        now = datetime.now(UTC)  # noqa: TID251 (a sender's clock signs)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(self.events_secret).sign(msg_id, now, body),
            "content-type": "application/json",
        }
        answers = []
        for _ in range(2):
            answer = httpx.post(f"{self.balancer.url}/api/v1/events", content=body, headers=headers)
            assert answer.status_code == 202, answer.text
            answers.append(answer.json())
        return answers


@pytest.fixture
async def scene(tmp_path: Path, pg_url: str, redis_url: str) -> AsyncIterator[Scene]:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "week.yaml").write_text(WEEK)
    db = create_engine(pg_url)
    deps = Deps(SqlStore(db), RecordingMessenger(), ManualClock(day(0, "08:00")))
    await AddRegion(deps)("SEA", "Southeast Asia", "Asia/Singapore")
    for leader in LEADERS.values():
        await GrantLeader(deps)(
            target=Actor(leader, f"Leader{leader}"), region_code="SEA", is_admin=True
        )
    events_secret = new_secret()
    with (
        LocalBotAPI(TOKEN, webhook_connections=PROCESSES) as api,
        receiving() as receiver,
    ):
        for chat, leader in LEADERS.items():
            api.add_user(leader, f"Leader{leader}", started_bot=True)
            for uid in MEMBERS[chat]:
                api.add_user(uid, f"M{uid}", started_bot=True, language_code="en")
            api.add_group(chat, f"Warm-up {chat}", supergroup=True, owner=leader)
            api.add_group(TASK_GROUPS[chat], f"Tasks {chat}", supergroup=True, owner=leader)
        clock = VirtualTime(tmp_path / "clock", db, api, TICK, day(0, "08:00"))
        bots: list[BotProcess] = []
        ports = [free_port() for _ in range(PROCESSES)]
        with balancing([f"http://127.0.0.1:{p}" for p in ports]) as balancer:
            env = {
                "FUNNELBOT_DATABASE_URL": pg_url,
                "FUNNELBOT_REDIS_URL": redis_url,
                "FUNNELBOT_SCRIPTS_DIR": str(scripts),
                "FUNNELBOT_CLOCK_FILE": str(clock.path),
                "FUNNELBOT_TICK_SECONDS": str(TICK),
                "FUNNELBOT_WEBHOOK_URL": f"{balancer.url}/telegram/webhook",
                "FUNNELBOT_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "FUNNELBOT_EVENTS_SECRET": events_secret,
                "FUNNELBOT_PAYOUT_WEBHOOK_URL": receiver.url,
                "FUNNELBOT_PAYOUT_SECRET": receiver.secret,
                "FUNNELBOT_LOG_FORMAT": "text",
            }
            for i, port in enumerate(ports):
                workdir = tmp_path / f"p{i}"
                workdir.mkdir()
                bots.append(BotProcess(workdir, api, TOKEN, port=port, **env))
            scene = Scene(api, balancer, bots, db, clock, receiver, events_secret)
            clock.on_stuck = scene.output
            try:
                for bot in bots:
                    bot.start()
                yield scene
            finally:
                for bot in bots:
                    if bot.process is not None and bot.process.poll() is None:
                        bot.kill()
                await db.dispose()


async def test_three_processes_share_a_week_and_keep_every_invariant(scene: Scene) -> None:
    api, time = scene.api, scene.time

    # Each leader launches a cohort in their group; members join; the task groups bound.
    for chat, leader in LEADERS.items():
        api.say(chat, leader, "/launch week start=2026-03-02")

    async def launched() -> bool:
        return await scene.scalar(select(func.count()).select_from(cohorts)) == len(LEADERS)

    await scene.until(launched, "the cohorts were not launched")
    codes = {}
    async with scene.db.connect() as conn:
        for row in await conn.execute(select(cohorts.c.code, cohorts.c.warmup_chat_id)):
            codes[row.warmup_chat_id] = row.code
    for chat, leader in LEADERS.items():
        api.say(TASK_GROUPS[chat], leader, f"/taskgroup {codes[chat]}")
        for uid in MEMBERS[chat]:
            api.join(chat, uid)
    everyone = sum(len(m) for m in MEMBERS.values())

    async def joined() -> bool:
        return await scene.scalar(select(func.count()).select_from(cohort_members)) == everyone

    await scene.until(joined, "not everyone joined")
    await time.settle()

    # Day 1: the welcome, then the lunch envelope; everyone taps, some twice.
    await time.run_until(day(1, "12:00"))
    taps = _tap_envelopes(api, "Lunch envelope")
    await _answered(scene, taps)
    await time.run_until(day(2, "20:00"))

    # Day 2's talk: slow mode. Each member says two things at once; the balancer sends
    # the second message to another process than the first.
    deleted_before = len(api.calls_of("deleteMessage"))
    for chat in LEADERS:
        talker = MEMBERS[chat][-1]
        api.say(chat, talker, "great talk")
        api.say(chat, talker, "really great")
    await time.settle()
    deleted = api.calls_of("deleteMessage")[deleted_before:]
    assert len(deleted) == len(LEADERS), scene.output()
    chatter = [
        r for r in scene.balancer.routed if b"really great" in r.body or b"great talk" in r.body
    ]
    assert len({r.backend for r in chatter}) > 1  # the two messages went to two processes

    # The rest of the week: the Thursday envelope, posts, the pitch; responders reply.
    await time.run_until(day(4, "12:00"))
    taps += _tap_envelopes(api, "Thursday envelope")
    await _answered(scene, taps)
    await time.run_until(day(7, "20:00"))
    for chat in LEADERS:
        for uid in RESPONDERS[chat]:
            api.say(chat, uid, "1")
    replied = select(func.count()).where(cohort_members.c.replied_at.is_not(None))

    async def all_replied() -> bool:
        # The clock moves on (and the reply window closes) only once every "1" is
        # recorded: a reply handled after the close would rightly not count.
        return await scene.scalar(replied) == sum(len(r) for r in RESPONDERS.values())

    await scene.until(all_replied, 'not every "1" was recorded')
    await time.run_until(day(7, "21:30"))

    # Responders ask to join the task group and are let in.
    for chat in LEADERS:
        admission = next(
            link
            for link, state in api.invite_links.items()
            if state.chat_id == TASK_GROUPS[chat] and state.creates_join_request
        )
        for uid in RESPONDERS[chat]:
            api.request_join(TASK_GROUPS[chat], uid, admission)
    await time.settle()
    approved = [s for s in api.join_requests.values() if s.status == "approved"]
    assert len(approved) == sum(len(r) for r in RESPONDERS.values()), scene.output()

    # Task day 1: each responder locks three fans; every batch is posted twice.
    await time.run_until(day(8, "10:00"))
    sent = 0
    for chat in LEADERS:
        for uid in RESPONDERS[chat]:
            batch = [
                {
                    "id": f"fan-{uid}-{n}",
                    "type": "fan.locked",
                    "occurred_at": day(8, "09:30").isoformat(),
                    "member": {"telegram_user_id": uid},
                    "data": {"fan": f"f{uid}{n}"},
                }
                for n in range(3)
            ]
            first, second = scene.post_events(batch)
            assert first["accepted"] + second["accepted"] == 3
            assert first["duplicates"] + second["duplicates"] == 3
            sent += 3
    rewards = sum(len(r) for r in RESPONDERS.values())

    async def delivered() -> bool:
        return len(scene.receiver.ids()) >= rewards

    await scene.until(delivered, "the payouts were not delivered")
    await time.run_until(day(9, "00:00"))

    await _check_invariants(scene, taps, sent, rewards)


def _tap_envelopes(api: LocalBotAPI, text: str) -> list[str]:
    """Every member taps the envelope in their group; every third taps again."""
    query_ids = []
    for chat, people in MEMBERS.items():
        envelope = next(m for m in api.messages(chat) if text in (m.get("text") or ""))
        for n, uid in enumerate(people):
            for _ in range(2 if n % 3 == 0 else 1):
                update = api.tap(chat, envelope["message_id"], uid)
                query_ids.append(update["callback_query"]["id"])
    return query_ids


async def _answered(scene: Scene, query_ids: list[str]) -> None:
    async def all_answered() -> bool:
        return len(scene.api.answers_to(query_ids)) == len(query_ids)

    await scene.until(all_answered, "taps left unanswered")


async def _check_invariants(scene: Scene, taps: list[str], sent: int, rewards: int) -> None:
    api = scene.api
    async with scene.db.connect() as conn:
        statuses = Counter(
            r.status for r in await conn.execute(select(step_runs.c.status, step_runs.c.key))
        )
        owners = {
            r[0].rsplit(":", 1)[-1]
            for r in await conn.execute(
                select(step_runs.c.lease_owner).where(step_runs.c.lease_owner.is_not(None))
            )
        }
        handlers = {
            r[0]
            for r in await conn.execute(
                select(telegram_updates.c.owner).where(telegram_updates.c.owner.is_not(None))
            )
        }
        share_rows = (
            await conn.execute(
                select(
                    envelope_shares.c.envelope_id,
                    envelope_shares.c.user_id,
                    envelope_shares.c.amount_minor,
                )
            )
        ).all()
        totals = {
            r.id: r.total_minor
            for r in await conn.execute(select(envelopes.c.id, envelopes.c.total_minor))
        }
        credits = (
            await conn.execute(select(func.count()).where(ledger_entries.c.kind == "envelope"))
        ).scalar()
        event_rows = (await conn.execute(select(inbound_events.c.state))).all()
        reward_rows = (
            await conn.execute(select(func.count()).where(ledger_entries.c.kind == "reward"))
        ).scalar()
        payout_states = Counter(r[0] for r in await conn.execute(select(payouts.c.status)))
        responders = (
            await conn.execute(
                select(func.count())
                .select_from(cohort_members.join(users, users.c.id == cohort_members.c.user_id))
                .where(cohort_members.c.replied_at.is_not(None))
            )
        ).scalar()

    # Steps: every one done, none in doubt; they were shared (which process claims a
    # due step is a race, which a process slowed by a busy machine may lose every time).
    assert set(statuses) <= {"done", "pending"}, statuses
    assert len(owners) >= 2, owners
    assert len(handlers) >= 2, handlers
    # Each post once in its group.
    for chat in LEADERS:
        texts = Counter(
            m.get("text") or "" for m in api.messages(chat) if m.get("text") and not _notice(m)
        )
        repeated = {t: n for t, n in texts.items() if n > 1}
        assert not repeated, repeated
    # Envelopes: shares once each, to the cent.
    by_envelope: dict[int, list[tuple[int | None, int]]] = {}
    for envelope_id, user_id, amount in share_rows:
        by_envelope.setdefault(envelope_id, []).append((user_id, amount))
    assert len(by_envelope) == 2 * len(LEADERS)
    claimed = 0
    for envelope_id, shares in by_envelope.items():
        holders = [u for u, _ in shares if u is not None]
        assert len(holders) == len(set(holders)), f"envelope {envelope_id}: someone holds two"
        assert sum(a for _, a in shares) == totals[envelope_id]
        claimed += len(holders)
    assert claimed == len(LEADERS) * (15 + 8)  # every share went: more members than shares
    assert credits == claimed
    answers = api.answers_to(taps)
    assert len(answers) == len(taps)
    assert {c.via for c in api.calls_of("answerCallbackQuery")} == {"webhook reply"}
    # Telegram's limits, across the processes.
    assert api.too_many_requests == 0
    # Events once; rewards once; payouts delivered once each.
    assert len(event_rows) == sent
    assert {r.state for r in event_rows} == {"handled"}
    assert responders == sum(len(r) for r in RESPONDERS.values())
    assert reward_rows == rewards
    assert payout_states == {"delivered": rewards}
    ids = scene.receiver.ids()
    assert len(ids) == len(set(ids)) == rewards
    assert scene.receiver.bad_signatures == 0
    for i, bot in enumerate(scene.bots):
        assert "Traceback" not in bot.output(), f"process {i}:\n{bot.output()[-3000:]}"


def _notice(message: dict[str, Any]) -> bool:
    """A message that may rightly repeat: the batched "come on over" notices and an
    envelope's closing summary."""
    return bool(message.get("reply_markup")) or bool(message.get("edited"))
