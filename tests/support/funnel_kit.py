"""A small funnel on a virtual clock, over the real store: what the engine tests share.

The script is built inline (2 warm-up days, 3 task days, Asia/Singapore, USD) so every
due time in the tests is easy to read:

warm-up day 1 = 2026-03-02, day 2 = 2026-03-03; task day 1 = 2026-03-04.

| key                 | kind           | local due          |
|---------------------|----------------|--------------------|
| d1_welcome          | post (pinned)  | day 1 09:00        |
| d1_talk, .p1        | talk_part 0, 1 | day 1 10:00, 10:02 |
| d1_envelope, .close | red_envelope   | day 1 12:00, 12:10 |
| d2_pitch, .close    | pitch (1h)     | day 2 20:00, 21:00 |
| task.invite_fans    | task_unlock    | task day 1 09:00   |
| task.visitors       | task_unlock    | task day 1 09:00   |
| task.first_sale     | task_unlock    | task day 2 09:00   |
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Delete, Insert, Select, Update, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.telegram.offline import RecordingMessenger
from funnels.cohorts.launch import StartCohort
from funnels.cohorts.tick import RunDueSteps, TickReport
from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.clock import ManualClock
from funnels.kernel.messaging import DeliveryError
from funnels.kernel.records import (
    AdmissionMode,
    CohortRecord,
    IncomingEvent,
    MemberRef,
    ShareClaim,
    StepRunRecord,
)
from funnels.kernel.stages import Stage
from funnels.ladder.events import IngestEvents
from funnels.scripts.loader import LoadedScript, load_script_text
from funnels.warmup.admissions import AdmitMember
from funnels.warmup.chatter import RecordChatter
from funnels.warmup.envelopes import ClaimShares
from funnels.warmup.joins import MemberJoined, RecordLeave
from funnels.warmup.replies import RecordReply
from storage.models import (
    Cohort,
    CohortMember,
    Envelope,
    EnvelopeShare,
    InboundEvent,
    LedgerEntry,
    StepRun,
    TaskProgress,
    TaskUniqueKey,
    User,
)
from storage.uow import SqlStore, SqlTransaction

TZ = ZoneInfo("Asia/Singapore")
START = date(2026, 3, 2)
WARMUP_DAYS = 2
WARMUP_CHAT = -100_111
TASK_CHAT = -100_222

cohorts_t = Cohort.__table__
members_t = CohortMember.__table__
users_t = User.__table__
steps_t = StepRun.__table__
envelopes_t = Envelope.__table__
shares_t = EnvelopeShare.__table__
progress_t = TaskProgress.__table__
uniques_t = TaskUniqueKey.__table__
events_t = InboundEvent.__table__
ledger_t = LedgerEntry.__table__

ALL_KEYS = [
    "d1_welcome",
    "d1_talk",
    "d1_talk.p1",
    "d1_envelope",
    "d1_envelope.close",
    "d2_pitch",
    "d2_pitch.close",
    "task.invite_fans",
    "task.visitors",
    "task.first_sale",
]


def script_text(
    *,
    budget: str = "1.70",
    reward_seats: int | None = 1,
    capacity: int = 50,
    envelope_total: str = "1.00",
    shares: int = 3,
    code: str = "mini-line",
    reminders: str | None = None,
) -> str:
    """The mini script; ``reminders``: YAML of ``tasks.reminders``, indented as its
    content (four spaces)."""
    seats = f", reward_seats: {reward_seats}" if reward_seats is not None else ""
    text = textwrap.dedent(f"""\
        id: {code}
        version: 1
        locale: en
        title: Mini line
        timezone: Asia/Singapore
        capacity: {capacity}
        budget: {{currency: USD, total: "{budget}"{seats}}}
        warmup:
          days: {WARMUP_DAYS}
          steps:
            - id: d1_welcome
              at: {{day: 1, time: "09:00"}}
              post: {{text: "Welcome to the group.", pin: true}}
            - id: d1_talk
              at: {{day: 1, time: "10:00"}}
              talk:
                speaker: Ana
                title: Corner shops
                pin: true
                slow_mode: 30s
                parts:
                  - text: "Part one of the talk."
                  - after: 2m
                    text: "Part two of the talk."
            - id: d1_envelope
              at: {{day: 1, time: "12:00"}}
              red_envelope:
                {{total: "{envelope_total}", shares: {shares}, expires_in: 10m, text: "Grab it"}}
            - id: d2_pitch
              at: {{day: 2, time: "20:00"}}
              pitch:
                text: "Reply 1 to join the task group."
                reply: {{match: ["1"], window: 1h}}
        tasks:
          days: 3
          ladder:
            - id: invite_fans
              title: Invite three fans
              how: Share your link with three friends.
              unlock: {{day: 1, time: "09:00"}}
              goal: {{event: fan.locked, count: 3}}
              reward: {{amount: "0.50"}}
            - id: visitors
              title: Two distinct visitors
              how: Share the deal link.
              unlock: {{day: 1, time: "09:00"}}
              goal: {{event: link.clicked, unique: visitor, count: 2}}
            - id: first_sale
              title: First sale
              how: Sell one thing through your link.
              unlock: {{day: 2, time: "09:00"}}
              goal: {{event: order.paid, count: 1}}
              reward: {{amount: "0.20"}}
              promote: shopkeeper
        """)
    return text if reminders is None else text + "  reminders:\n" + reminders


async def tick_through(
    store: SqlStore,
    clock: ManualClock,
    tick: Callable[[datetime], Awaitable[TickReport]],
    until: datetime,
) -> list[TickReport]:
    """Tick at every due time up to ``until``, then at ``until``: the scheduler's view."""
    reports = []
    while True:
        async with store.transaction() as tx:
            due = await tx.steps.next_due_at()
        if due is None or due > until:
            break
        reports.append(await tick(max(due, clock.now())))
    reports.append(await tick(max(until, clock.now())))
    return reports


def load(**options: Any) -> LoadedScript:
    return load_script_text(script_text(**options), "mini.yaml")


def warmup_at(day: int, hhmm: str) -> datetime:
    """A local wall time on warm-up day ``day``, as an aware datetime."""
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime.combine(START + timedelta(days=day - 1), time(h, m), tzinfo=TZ)


def task_at(day: int, hhmm: str) -> datetime:
    return warmup_at(WARMUP_DAYS + day, hhmm)


@dataclass
class Kit:
    store: SqlStore
    clock: ManualClock
    messenger: RecordingMessenger
    deps: Deps
    loaded: LoadedScript
    _tg: int = 5000
    _events: int = 0
    cohorts: list[CohortRecord] = field(default_factory=list)

    # ------------------------------------------------------------ use cases

    @property
    def dialect(self) -> str:
        return self.store.engine.dialect.name

    async def start(
        self,
        *,
        chat: int | None = WARMUP_CHAT,
        capacity: int | None = None,
        code: str | None = None,
        loaded: LoadedScript | None = None,
        leader: MemberRef | None = None,
        region_id: int | None = None,
        admission: AdmissionMode = "requests",
    ) -> CohortRecord:
        record = await StartCohort(self.deps)(
            loaded or self.loaded,
            start=START,
            code=code or f"C{len(self.cohorts) + 1}",
            capacity=capacity,
            warmup_chat_id=chat,
            leader_id=leader.user_id if leader else None,
            region_id=region_id,
            admission=admission,
        )
        self.cohorts.append(record)
        return record

    async def talk_in_doubt(
        self, *, code: str | None = None, leader: Actor | None = None
    ) -> CohortRecord:
        """A cohort (led by ``leader``) whose talk's first part went out with no answer:
        unknown, the second part held. (The default script's talk is ``d1_talk``.)"""
        ref = None
        if leader is not None:
            async with self.store.transaction() as tx:
                at = warmup_at(1, "08:00")
                ref = await tx.users.ensure_user(leader.telegram_id, leader.name, None, at)
                await tx.commit()
        cohort = await self.start(code=code, leader=ref)
        await self.tick(warmup_at(1, "09:00"))
        self.messenger.sent.clear()
        self.messenger.fail_next.append(DeliveryError("timed out", definite=False))
        await self.tick(warmup_at(1, "10:00"))
        assert (await self.step(cohort.id, "d1_talk")).status == "unknown"
        assert (await self.step(cohort.id, "d1_talk.p1")).status == "held"
        return cohort

    async def tick(self, at: datetime | None = None) -> TickReport:
        if at is not None:
            self.clock.set(at)
        return await RunDueSteps(self.deps)()

    async def run_until(self, until: datetime) -> list[TickReport]:
        """Tick at every due time up to ``until``, then at ``until``, like the scheduler would."""
        return await tick_through(self.store, self.clock, self.tick, until)

    async def users(self, n: int, *, language: str | None = "en") -> list[MemberRef]:
        rows = [(self._tg + i, f"Member {self._tg + i}", language) for i in range(n)]
        self._tg += n
        async with self.store.transaction() as tx:
            refs = await tx.users.add_users(rows, self.clock.now())
            await tx.commit()
        return refs

    def actor(self, ref: MemberRef) -> Actor:
        """The Telegram user behind ``ref`` (made by :meth:`users`), as updates show them."""
        assert ref.telegram_id is not None
        return Actor(ref.telegram_id, f"Member {ref.telegram_id}", ref.language)

    def actor_of(self, telegram_id: int) -> Actor:
        """A Telegram user by id, named as :meth:`users` names them."""
        return Actor(telegram_id, f"Member {telegram_id}", "en")

    async def members(self, n: int, *, chat: int = WARMUP_CHAT) -> list[MemberRef]:
        """``n`` new users who joined the warm-up group, one ``chat_member`` update each."""
        refs = await self.users(n)
        join = self.join()
        for ref in refs:
            joined = await join(chat, self.actor(ref))
            assert (joined.outcome, joined.user_id) == ("joined", ref.user_id), joined
        return refs

    async def force_stage(self, cohort_id: int, user_id: int, stage: Stage) -> None:
        """Move a member up to ``stage`` through the repository (set-up shortcut)."""
        async with self.store.transaction() as tx:
            for s in Stage:
                if Stage.ENGAGED <= s <= stage:
                    await tx.members.advance(cohort_id, user_id, s, self.clock.now())
            await tx.commit()

    async def admitted(self, cohort: CohortRecord, n: int) -> list[MemberRef]:
        """``n`` members who replied "1" and were admitted to the task stage."""
        refs = await self.members(n, chat=cohort.warmup_chat_id or WARMUP_CHAT)
        for r in refs:
            await self.force_stage(cohort.id, r.user_id, Stage.REPLIED)
            assert await AdmitMember(self.deps)(cohort.id, r.user_id) == "admitted"
        return refs

    def event(
        self,
        type_: str,
        at: datetime,
        member: MemberRef | None = None,
        *,
        event_id: str | None = None,
        **data: object,
    ) -> IncomingEvent:
        self._events += 1
        return IncomingEvent(
            event_id=event_id or f"ev-{self._events}",
            type=type_,
            occurred_at=at,
            telegram_user_id=member.telegram_id if member else None,
            data=data,
        )

    def join(self) -> MemberJoined:
        return MemberJoined(self.deps)

    def leave(self) -> RecordLeave:
        return RecordLeave(self.deps)

    def chatter(self) -> RecordChatter:
        """Message counts by Telegram id, as the bot's activity buffer writes them."""
        return RecordChatter(self.deps)

    def reply(self) -> RecordReply:
        return RecordReply(self.deps)

    def admit(self) -> AdmitMember:
        return AdmitMember(self.deps)

    async def tap(self, envelope_id: int, user_id: int, *, close: bool = True) -> ShareClaim:
        """One tap on an envelope's Grab button: a batch of one for ``ClaimShares``."""
        return (await ClaimShares(self.deps)(envelope_id, [user_id], close=close))[user_id]

    def ingest(self) -> IngestEvents:
        return IngestEvents(self.deps)

    # ------------------------------------------------------------ reading back

    async def step(self, cohort_id: int, key: str) -> StepRunRecord:
        async with self.store.transaction() as tx:
            run = await tx.steps.get(cohort_id, key)
        assert run is not None, key
        return run

    async def statuses(self, cohort_id: int) -> dict[str, str]:
        rows = await self.rows(
            select(steps_t.c.key, steps_t.c.status).where(steps_t.c.cohort_id == cohort_id)
        )
        return {r.key: r.status for r in rows}

    async def cohort(self, cohort_id: int) -> CohortRecord:
        async with self.store.transaction() as tx:
            record = await tx.cohorts.get(cohort_id)
        assert record is not None
        return record

    async def stage(self, cohort_id: int, user_id: int) -> Stage | None:
        async with self.store.transaction() as tx:
            return await tx.members.stage(cohort_id, user_id)

    async def rows(self, query: Select[Any]) -> Sequence[Any]:
        async with self.store.transaction() as tx:
            conn: AsyncConnection = tx.conn
            return (await conn.execute(query)).all()

    async def count(self, table: Any, *where: Any) -> int:
        async with self.store.transaction() as tx:
            query = select(func.count()).select_from(table)
            if where:
                query = query.where(*where)
            return int((await tx.conn.execute(query)).scalar_one())

    async def envelope_id(self, cohort_id: int, key: str = "d1_envelope") -> int:
        async with self.store.transaction() as tx:
            env = await tx.envelopes.by_step(cohort_id, key)
        assert env is not None
        return env.id


class Rendezvous:
    """A store whose units of work each stop after their first call of one repository
    method until ``parties`` of them got there: forces the interleaving that two
    processes can produce.

    ``repo`` and ``method`` name the call (e.g. "cohorts", "by_chat"). A unit of work that
    waits ``patience`` seconds without the others arriving (because the code under test
    made them wait on a lock, as a fix would) goes on alone, so a correct implementation
    passes after a short delay instead of hanging. Only meaningful on PostgreSQL: on
    SQLite, SqlStore runs units of work one at a time.
    """

    def __init__(
        self, store: SqlStore, repo: str, method: str, parties: int, patience: float = 1.0
    ) -> None:
        self.store = store
        self.repo = repo
        self.method = method
        self.parties = parties
        self.patience = patience
        self.arrived = 0
        self.all_here = asyncio.Event()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlTransaction]:
        async with self.store.transaction() as tx:
            repository = getattr(tx, self.repo)
            original = getattr(repository, self.method)
            waited = False

            async def call_then_wait(*args: Any, **kwargs: Any) -> Any:
                nonlocal waited
                found = await original(*args, **kwargs)
                if not waited:
                    waited = True
                    self.arrived += 1
                    if self.arrived >= self.parties:
                        self.all_here.set()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.all_here.wait(), timeout=self.patience)
                return found

            setattr(repository, self.method, call_then_wait)
            yield tx

    def one_statement(self) -> contextlib.AbstractAsyncContextManager[SqlTransaction]:
        return self.store.one_statement()

    def snapshot(self) -> contextlib.AbstractAsyncContextManager[SqlTransaction]:
        return self.store.snapshot()


class PauseBeforeFirstWrite:
    """A store whose envelope claims stop after reading, right before their first write,
    until ``go`` is set; ``reached`` tells the test they got there."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.reached = asyncio.Event()
        self.go = asyncio.Event()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlTransaction]:
        async with self.store.transaction() as tx:
            tx.envelopes.conn = _PausingConnection(tx.conn, self)  # type: ignore[assignment]
            yield tx

    def one_statement(self) -> contextlib.AbstractAsyncContextManager[SqlTransaction]:
        return self.store.one_statement()

    def snapshot(self) -> contextlib.AbstractAsyncContextManager[SqlTransaction]:
        return self.store.snapshot()


class _PausingConnection:
    def __init__(self, conn: AsyncConnection, pause: PauseBeforeFirstWrite) -> None:
        self._conn = conn
        self._pause = pause
        self.dialect = conn.dialect

    def begin_nested(self) -> Any:
        return self._conn.begin_nested()

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(statement, (Insert, Update, Delete)) and not self._pause.go.is_set():
            self._pause.reached.set()
            await asyncio.wait_for(self._pause.go.wait(), timeout=10)
        return await self._conn.execute(statement, *args, **kwargs)
