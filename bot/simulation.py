"""``funnelbot simulate``: whole cohorts on a virtual clock through the real engine and storage.

Simulated members join over the first days, chat, grab envelopes, answer the pitch at
``reply_rate``, get admitted, and work down the ladder with falling probability; their
platform events go through the same ``IngestEvents`` the HTTP API uses. Time jumps from
one thing that happens to the next, so 28 days take seconds. The messenger records what
the bot would have said instead of calling Telegram.
"""

from __future__ import annotations

import heapq
import itertools
import random
import secrets
import tempfile
import time as _perf
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.telegram.offline import RecordingMessenger
from funnels.cohorts.launch import StartCohort
from funnels.cohorts.tick import RunDueSteps
from funnels.deps import Deps
from funnels.kernel.clock import ManualClock
from funnels.kernel.codes import new_code
from funnels.kernel.messaging import EnvelopeSummary, Outgoing
from funnels.kernel.records import Arrival, IncomingEvent, MemberRef
from funnels.ladder.events import IngestEvents
from funnels.ops.report import FunnelReport, ReadFunnel
from funnels.scripts.loader import LoadedScript
from funnels.scripts.model import Goal, Script
from funnels.scripts.planner import PlannedStep, plan
from funnels.warmup.admissions import AdmitMember
from funnels.warmup.chatter import RecordActivity
from funnels.warmup.envelopes import ClaimShare
from funnels.warmup.joins import RecordJoin, RecordLeave
from funnels.warmup.replies import RecordReply
from storage.db import create_engine
from storage.migrate import upgrade_async
from storage.uow import SqlStore

Action = Callable[[], Awaitable[None]]


class SimulationError(Exception):
    """Impossible options; the message says which and what is allowed."""


@dataclass(frozen=True)
class SimulationOptions:
    cohorts: int = 24
    members: int = 500
    reply_rate: float = 0.35
    seed: int = 1
    regions: int = 6
    first_start: date = date(2026, 1, 5)
    database_url: str | None = None

    def check(self) -> None:
        problems = []
        if not 1 <= self.cohorts <= 1000:
            problems.append("--cohorts must be between 1 and 1000")
        if not 1 <= self.members <= 200_000:
            problems.append("--members must be between 1 and 200000")
        if not 0.0 <= self.reply_rate <= 1.0:
            problems.append("--reply-rate must be between 0 and 1 (0.35 means 35%)")
        if self.regions < 1:
            problems.append("--regions must be at least 1")
        if problems:
            raise SimulationError("; ".join(problems))


@dataclass
class SimulationResult:
    report: FunnelReport
    wall_seconds: float
    steps_run: int
    member_actions: int
    events: int
    duplicates: int
    sent: int
    edits: int
    notices: int
    cohort_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        r = self.report
        late = r.lateness_seconds
        return {
            "cohorts": r.cohorts,
            "funnel": [
                {"stage": s, "members": n, "conversion": None if c is None else round(c, 4)}
                for s, n, c in r.conversions()
            ],
            "left": r.left,
            "currency": r.currency,
            "budget_minor": r.budget_minor,
            "envelopes": {
                "count": r.envelopes,
                "planned_minor": r.envelope_planned_minor,
                "claimed_minor": r.envelope_claimed_minor,
                "claims": r.envelope_claims,
            },
            "rewards": {
                "paid": r.rewards_paid,
                "paid_minor": r.rewards_paid_minor,
                "over_budget": r.rewards_over_budget,
                "tasks_completed": r.tasks_completed,
            },
            "spend_minor": r.envelope_claimed_minor + r.rewards_paid_minor,
            "steps": {
                "status": r.step_status,
                "late_max_seconds": late[-1] if late else 0,
                "late_p95_seconds": late[int(len(late) * 0.95)] if late else 0,
            },
            "run": {
                "wall_seconds": round(self.wall_seconds, 3),
                "steps_run": self.steps_run,
                "member_actions": self.member_actions,
                "events": self.events,
                "duplicate_events": self.duplicates,
                "messages_sent": self.sent,
                "messages_edited": self.edits,
                "private_notices": self.notices,
            },
        }


class _SimMessenger(RecordingMessenger):
    """Remembers which envelopes closed, so simulated members stop tapping them."""

    def __init__(self) -> None:
        super().__init__()
        self.closed_envelopes: set[int] = set()

    async def edit(self, chat_id: int, message_id: int, message: Outgoing) -> None:
        if isinstance(message, EnvelopeSummary):
            self.closed_envelopes.add(message.envelope_id)
        await super().edit(chat_id, message_id, message)


@dataclass
class _Member:
    ref: MemberRef
    activity: float  # how chatty, 0..1
    warmth: float  # how likely to answer the pitch, relative to the cohort rate
    diligence: float  # how far down the ladder they go
    joined: bool = False
    left: bool = False
    replied: bool = False


@dataclass
class _Cohort:
    id: int
    script: Script
    tz: ZoneInfo
    start: date
    chat: int
    task_chat: int
    plan: list[PlannedStep]
    members: list[_Member]
    envelope_ids: dict[str, int] = field(default_factory=dict)


class Simulation:
    def __init__(
        self,
        loaded: LoadedScript,
        options: SimulationOptions,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        options.check()
        self.loaded = loaded
        self.script = loaded.script
        self.options = options
        self.rng = random.Random(options.seed)
        self.progress = progress
        self._heap: list[tuple[datetime, int, Action]] = []
        self._seq = itertools.count()
        # Simulated chats and users get ids no earlier run used, so a simulation can run
        # again and again on the same database (--database-url).
        self._run_id = secrets.randbelow(10**6)
        self._tg_ids = itertools.count(10**12 + self._run_id * 10**9)
        self._event_ids = itertools.count(1)
        self.actions = 0
        self.events = 0
        self.duplicates = 0
        self._pending_events: dict[int, list[IncomingEvent]] = defaultdict(list)
        self._last_flush = datetime.min.replace(tzinfo=UTC)

    def _at(self, when: datetime, action: Action) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), action))

    async def run(self) -> SimulationResult:
        started = _perf.perf_counter()
        if self.options.database_url:
            url = self.options.database_url
            tmp = None
        else:
            tmp = tempfile.TemporaryDirectory(prefix="funnelbot-sim-")
            url = f"sqlite+aiosqlite:///{Path(tmp.name) / 'simulate.db'}"
        try:
            await upgrade_async(url)
            engine = create_engine(url)
            try:
                return await self._run(engine, started)
            finally:
                await engine.dispose()
        finally:
            if tmp is not None:
                tmp.cleanup()

    async def _run(self, engine: Any, started: float) -> SimulationResult:
        tz = ZoneInfo(self.script.timezone)
        first = datetime.combine(self.options.first_start, datetime.min.time(), tz)
        clock = ManualClock(first)
        messenger = _SimMessenger()
        store = SqlStore(engine)
        deps = Deps(store=store, messenger=messenger, clock=clock)
        self.clock, self.store, self.messenger = clock, store, messenger
        self.tick = RunDueSteps(deps, batch=200)
        self.join, self.leave = RecordJoin(deps), RecordLeave(deps)
        self.activity, self.reply = RecordActivity(deps), RecordReply(deps)
        self.claim, self.admit = ClaimShare(deps), AdmitMember(deps)
        self.ingest = IngestEvents(deps)
        start_cohort = StartCohort(deps)

        cohorts: list[_Cohort] = []
        for i in range(self.options.cohorts):
            start = self.options.first_start + timedelta(days=7 * (i // self.options.regions))
            chat = -(10**13) - self._run_id * 10**4 - 2 * i
            task_chat = chat - 1
            record = await start_cohort(
                self.loaded,
                start=start,
                code=new_code(),
                warmup_chat_id=chat,
                capacity=self.options.members,
            )
            async with store.transaction() as tx:
                await tx.cohorts.bind_task_chat(record.id, task_chat)
                refs = await tx.users.add_users(
                    [
                        (next(self._tg_ids), f"member {n}", None)
                        for n in range(self.options.members)
                    ],
                    clock.now(),
                )
                await tx.commit()
            members = [
                _Member(
                    ref,
                    self.rng.betavariate(2, 3),
                    self.rng.lognormvariate(0, 0.6),
                    self.rng.betavariate(2, 2),
                )
                for ref in refs
            ]
            cohort = _Cohort(
                record.id,
                self.script,
                tz,
                start,
                chat,
                task_chat,
                plan(self.script, start, tz),
                members,
            )
            cohorts.append(cohort)
            self._schedule(cohort)

        end = max(c.plan[-1].due_at for c in cohorts) + timedelta(days=1)
        span = (end - clock.now()).total_seconds()
        next_due = await self._next_due()
        steps_run = 0
        while self._heap or next_due is not None:
            action_at = self._heap[0][0] if self._heap else None
            if next_due is not None and (action_at is None or next_due <= action_at):
                await self._flush_events()
                clock.set(max(clock.now(), next_due))
                report = await self.tick()
                steps_run += report.claimed
                next_due = await self._next_due()
                continue
            assert action_at is not None
            clock.set(max(clock.now(), action_at))
            while self._heap and self._heap[0][0] <= clock.now():
                _, _, action = heapq.heappop(self._heap)
                self.actions += 1
                await action()
            # The platform posts events in batches, as the HTTP API allows.
            if sum(
                map(len, self._pending_events.values())
            ) >= 500 or clock.now() - self._last_flush >= timedelta(hours=1):
                await self._flush_events()
            if self.progress:
                self.progress(min(1.0, 1 - (end - clock.now()).total_seconds() / span))
        await self._flush_events()
        clock.set(max(clock.now(), end))
        steps_run += (await self.tick()).claimed
        report_data = await ReadFunnel(deps)([c.id for c in cohorts])
        return SimulationResult(
            report=report_data,
            wall_seconds=_perf.perf_counter() - started,
            steps_run=steps_run,
            member_actions=self.actions,
            events=self.events,
            duplicates=self.duplicates,
            sent=len(messenger.sent),
            edits=len(messenger.edits),
            notices=len(messenger.notices),
            cohort_ids=[c.id for c in cohorts],
        )

    async def _next_due(self) -> datetime | None:
        async with self.store.transaction() as tx:
            return await tx.steps.next_due_at()

    # ------------------------------------------------------------ member behaviour

    def _local(self, cohort: _Cohort, day: int, hour: float) -> datetime:
        base = datetime.combine(
            cohort.start + timedelta(days=day - 1), datetime.min.time(), cohort.tz
        )
        return (base + timedelta(hours=hour)).astimezone(UTC)

    def _schedule(self, cohort: _Cohort) -> None:
        rng = self.rng
        warm_days = cohort.script.warmup.days
        crowds: dict[tuple[int, int], list[_Member]] = defaultdict(list)
        for member in cohort.members:
            # Most join on day 1, fewer each day after, all before the last warm-up day;
            # those arriving within the same hour come in as one batch of updates.
            day = min(1 + int(rng.expovariate(1.2)), max(1, warm_days - 1))
            crowds[(day, rng.randint(7, 22))].append(member)
        for member in cohort.members:
            if rng.random() < 0.06:
                leave_day = rng.randint(2, warm_days)
                self._at(
                    self._local(cohort, leave_day, rng.uniform(0, 23.9)),
                    self._leave(cohort, member),
                )
        for (day, hour), crowd in crowds.items():
            self._at(self._local(cohort, day, hour + 0.5), self._join(cohort, crowd))
        for day in range(1, warm_days + 1):
            self._at(self._local(cohort, day, 21.75), self._chat(cohort, day))
        for step in cohort.plan:
            if step.kind == "red_envelope":
                self._schedule_taps(cohort, step)
            elif step.kind == "pitch":
                self._schedule_replies(cohort, step)

    def _join(self, cohort: _Cohort, crowd: list[_Member]) -> Action:
        async def act() -> None:
            arriving = [m for m in crowd if not m.left]
            outcome = await self.join(cohort.chat, [Arrival(m.ref.user_id, None) for m in arriving])
            for m in arriving:
                m.joined = outcome.get(m.ref.user_id) in ("joined", "rejoined", "member")

        return act

    def _leave(self, cohort: _Cohort, member: _Member) -> Action:
        async def act() -> None:
            if member.joined and not member.replied:
                member.left = True
                await self.leave(cohort.chat, member.ref.user_id)

        return act

    def _chat(self, cohort: _Cohort, day: int) -> Action:
        async def act() -> None:
            counts = {
                m.ref.user_id: 1 + int(self.rng.expovariate(1 / (1 + 6 * m.activity)))
                for m in cohort.members
                if m.joined and not m.left and self.rng.random() < m.activity * (1 - day / 20)
            }
            await self.activity(cohort.chat, counts)

        return act

    def _schedule_taps(self, cohort: _Cohort, step: PlannedStep) -> None:
        spec = cohort.script.step(step.source).red_envelope
        assert spec is not None
        window = spec.expires_in.total_seconds()
        # About one and a half tappers per share see the envelope in time; the chatty
        # ones more often than the quiet ones.
        reach = min(1.0, 1.5 * spec.shares / max(1, len(cohort.members)))
        for member in cohort.members:
            if self.rng.random() < reach * (0.4 + 1.5 * member.activity):
                delay = min(window * 1.2, self.rng.expovariate(1 / 60))
                when = step.due_at + timedelta(seconds=1 + delay)
                self._at(when, self._tap(cohort, step.source, member))

    def _tap(self, cohort: _Cohort, step_key: str, member: _Member) -> Action:
        async def act() -> None:
            if not member.joined or member.left:
                return
            envelope_id = cohort.envelope_ids.get(step_key)
            if envelope_id is None:
                async with self.store.transaction() as tx:
                    envelope = await tx.envelopes.by_step(cohort.id, step_key)
                if envelope is None:
                    return
                envelope_id = cohort.envelope_ids[step_key] = envelope.id
            # Once the summary says "all grabbed", nearly everyone stops tapping.
            if envelope_id in self.messenger.closed_envelopes and self.rng.random() < 0.9:
                return
            claim = await self.claim(envelope_id, member.ref.user_id)
            if claim.outcome == "claimed" and self.rng.random() < 0.1:
                # A double tap, as Telegram re-delivers or an impatient thumb repeats.
                await self.claim(envelope_id, member.ref.user_id)

        return act

    def _schedule_replies(self, cohort: _Cohort, step: PlannedStep) -> None:
        pitch = cohort.script.step(step.source).pitch
        assert pitch is not None
        window = pitch.reply.window.total_seconds()
        # Members answer in whatever form their keyboard gives them.
        forms = [*pitch.reply.match, "1", "1", " 1 ", "1\ufe0f\u20e3", "\uff11"]
        for member in cohort.members:
            p = min(1.0, self.options.reply_rate * member.warmth * (0.6 + 0.8 * member.activity))
            if self.rng.random() < p:
                delay = min(window - 60, self.rng.expovariate(1 / 5400))
                when = step.due_at + timedelta(seconds=5 + delay)
                self._at(when, self._reply(cohort, member, self.rng.choice(forms)))
            elif self.rng.random() < 0.05:
                when = step.due_at + timedelta(seconds=self.rng.uniform(5, 3600))
                self._at(when, self._reply(cohort, member, "10 yuan? what is this"))

    def _reply(self, cohort: _Cohort, member: _Member, text: str) -> Action:
        async def act() -> None:
            if not member.joined or member.left:
                return
            outcome = await self.reply(cohort.chat, member.ref.user_id, text)
            if outcome == "recorded":
                member.replied = True
                delay = timedelta(minutes=self.rng.uniform(5, 360))
                self._at(self.clock.now() + delay, self._admit(cohort, member))

        return act

    def _admit(self, cohort: _Cohort, member: _Member) -> Action:
        async def act() -> None:
            if await self.admit(cohort.id, member.ref.user_id) == "admitted":
                self._schedule_tasks(cohort, member)

        return act

    def _schedule_tasks(self, cohort: _Cohort, member: _Member) -> None:
        script = cohort.script
        first_task_day = script.warmup.days
        drive = member.diligence
        for rank, task in enumerate(script.tasks.ladder):
            # Falling probability down the ladder (each rung a little less likely, more so
            # for the less driven); a member who stops, stops for good.
            if self.rng.random() > 0.5 + 0.45 * drive - 0.04 * rank:
                break
            day = first_task_day + task.unlock.day
            unlock = self._local(cohort, day, task.unlock.time.hour + task.unlock.time.minute / 60)
            complete = self.rng.random() < 0.85
            for offset, (event_type, data) in enumerate(
                self._events_for(task.goal, script.budget.currency, complete)
            ):
                when = unlock + timedelta(minutes=5 + offset * self.rng.uniform(1, 40))
                self._at(when, self._emit(cohort, member, event_type, data))

    def _events_for(
        self, goal: Goal, currency: str, complete: bool
    ) -> list[tuple[str, dict[str, object]]]:
        from funnels.ladder.goals import target

        if goal.all is not None:
            return [e for g in goal.all for e in self._events_for(g, currency, complete)]
        if goal.any is not None:
            return self._events_for(self.rng.choice(goal.any), currency, complete)
        assert goal.event is not None
        base: dict[str, object] = dict(goal.where or {})
        need = target(goal, currency)
        if not complete:
            need = max(0, need // 2)
        if goal.sum is not None:
            out, total = [], 0
            while total < need:
                amount = self.rng.randint(max(1, need // 4), max(2, need // 2))
                total += amount
                out.append((goal.event, {**base, goal.sum: amount}))
            return out
        if goal.unique is not None:
            out = [(goal.event, {**base, goal.unique: f"v{n}"}) for n in range(need)]
            out += [(goal.event, {**base, goal.unique: "v0"})] * (need // 10)  # repeat visitors
            return out
        extra: dict[str, object] = (
            {"amount": self.rng.randint(1000, 20000)} if goal.event == "order.paid" else {}
        )
        return [(goal.event, {**base, **extra}) for _ in range(need)]

    def _emit(
        self, cohort: _Cohort, member: _Member, event_type: str, data: dict[str, object]
    ) -> Action:
        async def act() -> None:
            event = IncomingEvent(
                event_id=f"sim-{self._run_id}-{next(self._event_ids)}",
                type=event_type,
                occurred_at=self.clock.now(),
                telegram_user_id=member.ref.telegram_id,
                data=data,
            )
            batch = self._pending_events[cohort.id]
            batch.append(event)
            if self.rng.random() < 0.02:
                batch.append(event)  # the platform re-sends now and then

        return act

    async def _flush_events(self) -> None:
        self._last_flush = self.clock.now()
        for batch in list(self._pending_events.values()):
            if batch:
                result = await self.ingest("platform", batch)
                self.events += result.accepted
                self.duplicates += result.duplicates
        self._pending_events.clear()
