"""``funnelbot simulate``: whole cohorts on a virtual clock, through what the bot runs.

Leaders ``/launch`` the cohorts and bind their task groups; simulated members join by the
leader's invite link or by a member's own link (``MemberJoined``, attributed as in the
bot), chat (counted by Telegram id through the bot's activity buffer and
``RecordChatter``), grab envelopes (the bot's ``TapBatcher``: taps that arrive together
share one transaction), answer the pitch (``RecordReply``), ask to join the task group
(``DecideJoinRequest``) and work down the ladder with falling probability; their platform
events go through the same ``IngestEvents`` the HTTP API uses. What is left out is
Telegram's side: parsing updates, answering taps, slow mode's deletions, reactions.

The store and ``Deps`` come from the composition root; the messenger records what the
bot would have said instead of calling Telegram. Time jumps from one thing that happens
to the next, so 28 days take seconds.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import itertools
import math
import random
import secrets
import tempfile
import time as _perf
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.composition import build_deps, open_store
from bot.service import settle_heap
from bot.telegram.offline import RecordingMessenger
from bot.telegram.services import ActivityBuffer, TapBatcher
from funnels.cohorts.launch import BindTaskGroup, LaunchCohort
from funnels.cohorts.tick import RunDueSteps
from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.clock import ManualClock
from funnels.kernel.messaging import EnvelopeSummary, Outgoing
from funnels.kernel.records import CohortRecord, IncomingEvent, ShareClaim
from funnels.ladder.events import IngestEvents
from funnels.ops.report import FunnelReport, ReadFunnel
from funnels.people.links import MemberLink
from funnels.scripts.loader import LoadedScript
from funnels.scripts.model import Goal
from funnels.scripts.planner import PlannedStep, plan
from funnels.warmup.admissions import DecideJoinRequest
from funnels.warmup.chatter import RecordChatter
from funnels.warmup.envelopes import ClaimShares, CloseEnvelope
from funnels.warmup.joins import MemberJoined, RecordLeave
from funnels.warmup.replies import RecordReply
from storage.uow import SqlStore

Action = Callable[[], Awaitable[None]]

SHARERS = 0.05
"""Members who pass their own invite link (``/mylink``) around."""
BY_MEMBER_LINK = 0.15
"""Of the members who join once a sharer is in, those who come by a sharer's link."""
CHATTER_EVERY = timedelta(hours=1)
"""How long chatter waits in the activity buffer before it is written: the bot writes it
at every tick (seconds apart), the simulation a group's hour of chatter at once."""


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


@contextmanager
def _settled_heap() -> Iterator[None]:
    """The collector tuned as ``funnelbot run`` tunes it once it is up (``settle_heap``:
    what start-up left alive, aiogram's classes and schemas above all, out of its sight,
    and collections rarer), for the run only: the process that called is left as it was."""
    thresholds = gc.get_threshold()
    settle_heap()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


class _SimMessenger(RecordingMessenger):
    """Remembers which envelopes closed, so simulated members stop tapping them."""

    def __init__(self) -> None:
        super().__init__()
        self.closed_envelopes: set[int] = set()

    async def edit(self, chat_id: int, message_id: int, message: Outgoing) -> None:
        if isinstance(message, EnvelopeSummary):
            self.closed_envelopes.add(message.envelope_id)
        await super().edit(chat_id, message_id, message)


class _Bot:
    """The bot's use cases, and the parts of its Telegram side that shape how they are
    called (the activity buffer, the tap batcher), as its handlers use them."""

    def __init__(self, deps: Deps) -> None:
        self.launch, self.bind_task_group = LaunchCohort(deps), BindTaskGroup(deps)
        self.joined, self.left = MemberJoined(deps), RecordLeave(deps)
        self.my_link = MemberLink(deps)
        self.chatter, self.activity = RecordChatter(deps), ActivityBuffer()
        self.reply, self.join_request = RecordReply(deps), DecideJoinRequest(deps)
        self.taps, self.close_envelope = TapBatcher(ClaimShares(deps)), CloseEnvelope(deps)
        self.ingest = IngestEvents(deps)
        self.tick = RunDueSteps(deps, batch=200)

    async def flush_activity(self) -> None:
        """Write the buffered message counts, a chat at a time (``Services.flush_activity``)."""
        for chat_id, counts, _ in self.activity.take():
            await self.chatter(chat_id, counts)


@dataclass
class _Member:
    actor: Actor
    activity: float  # how chatty, 0..1
    warmth: float  # how likely to answer the pitch, relative to the cohort rate
    diligence: float  # how far down the ladder they go
    sharer: bool  # passes their own invite link around
    user_id: int = 0  # the bot's id for them, known once they joined
    link: str | None = None
    joined: bool = False
    left: bool = False
    replied: bool = False


@dataclass
class _Cohort:
    leader: Actor
    start: date
    chat: int
    task_chat: int
    plan: list[PlannedStep]
    members: list[_Member]
    record: CohortRecord | None = None
    """As launched: what the bot's cache of the group's cohort holds."""
    leader_link: str | None = None
    sharers_in: list[_Member] = field(default_factory=list)
    envelope_ids: dict[str, int] = field(default_factory=dict)

    @property
    def id(self) -> int:
        assert self.record is not None, "the cohort is not launched yet"
        return self.record.id


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
        self.tz = ZoneInfo(self.script.timezone)
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
        self._query_ids = itertools.count(1)
        self.actions = 0
        self.events = 0
        self.duplicates = 0
        self._pending_events: dict[int, list[IncomingEvent]] = defaultdict(list)
        self._last_flush = datetime.min.replace(tzinfo=UTC)
        self._activity_due = False
        self._launched = False

    def _at(self, when: datetime, action: Action) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), action))

    async def run(self) -> SimulationResult:
        started = _perf.perf_counter()
        with _settled_heap():
            async with self._store() as store:
                return await self._run(store, started)

    @asynccontextmanager
    async def _store(self) -> AsyncIterator[SqlStore]:
        """The store from the composition root, over the given database or a temporary
        SQLite file."""
        if self.options.database_url:
            async with open_store(self.options.database_url) as store:
                yield store
            return
        with tempfile.TemporaryDirectory(prefix="funnelbot-sim-") as tmp:
            async with open_store(f"sqlite+aiosqlite:///{Path(tmp) / 'simulate.db'}") as store:
                yield store

    async def _run(self, store: SqlStore, started: float) -> SimulationResult:
        # The first leaders launch the day before the first cohort starts.
        first = datetime.combine(self.options.first_start - timedelta(days=1), time.min, self.tz)
        self.clock = ManualClock(first)
        self.messenger = _SimMessenger()
        self.deps = build_deps(store, self.messenger, self.clock)
        self.store = store
        self.bot = _Bot(self.deps)
        leaders = [
            Actor(next(self._tg_ids), f"leader {n + 1}") for n in range(self.options.regions)
        ]
        cohorts = []
        for i in range(self.options.cohorts):
            cohort = self._new_cohort(i, leaders[i % self.options.regions])
            cohorts.append(cohort)
            self._schedule(cohort)

        end = max(c.plan[-1].due_at for c in cohorts) + timedelta(days=1)
        span = (end - self.clock.now()).total_seconds()
        steps_run = 0
        next_due: datetime | None = None
        while self._heap or next_due is not None:
            action_at = self._heap[0][0] if self._heap else None
            if next_due is not None and (action_at is None or next_due <= action_at):
                await self._flush_events()
                self.clock.set(max(self.clock.now(), next_due))
                steps_run += (await self.bot.tick()).claimed
                next_due = await self._next_due()
                continue
            assert action_at is not None
            self.clock.set(max(self.clock.now(), action_at))
            while self._heap and self._heap[0][0] <= self.clock.now():
                _, _, action = heapq.heappop(self._heap)
                await action()
            if self._launched:  # a new cohort's steps: the next due time may be sooner
                self._launched = False
                next_due = await self._next_due()
            # The platform posts events in batches, as the HTTP API allows.
            if sum(
                map(len, self._pending_events.values())
            ) >= 500 or self.clock.now() - self._last_flush >= timedelta(hours=1):
                await self._flush_events()
            if self.progress:
                self.progress(min(1.0, 1 - (end - self.clock.now()).total_seconds() / span))
        await self._flush_events()
        self.clock.set(max(self.clock.now(), end))
        steps_run += (await self.bot.tick()).claimed
        cohort_ids = [c.id for c in cohorts]
        return SimulationResult(
            report=await ReadFunnel(self.deps)(cohort_ids),
            wall_seconds=_perf.perf_counter() - started,
            steps_run=steps_run,
            member_actions=self.actions,
            events=self.events,
            duplicates=self.duplicates,
            sent=len(self.messenger.sent),
            edits=len(self.messenger.edits),
            notices=len(self.messenger.notices),
            cohort_ids=cohort_ids,
        )

    async def _next_due(self) -> datetime | None:
        async with self.store.transaction() as tx:
            return await tx.steps.next_due_at()

    def _new_cohort(self, i: int, leader: Actor) -> _Cohort:
        """Cohort ``i`` as planned: its groups, its members-to-be and when it starts (the
        regions launch one a week each)."""
        start = self.options.first_start + timedelta(days=7 * (i // self.options.regions))
        chat = -(10**13) - self._run_id * 10**4 - 2 * i
        members = [
            _Member(
                Actor(next(self._tg_ids), f"member {n}"),
                self.rng.betavariate(2, 3),
                self.rng.lognormvariate(0, 0.6),
                self.rng.betavariate(2, 2),
                self.rng.random() < SHARERS,
            )
            for n in range(self.options.members)
        ]
        return _Cohort(leader, start, chat, chat - 1, plan(self.script, start, self.tz), members)

    # ------------------------------------------------------------ member behaviour

    def _local(self, cohort: _Cohort, day: int, hour: float) -> datetime:
        base = datetime.combine(cohort.start + timedelta(days=day - 1), time.min, self.tz)
        return (base + timedelta(hours=hour)).astimezone(UTC)

    def _schedule(self, cohort: _Cohort) -> None:
        rng = self.rng
        warm_days = self.script.warmup.days
        # The leader launches at noon the day before the start, binding the task group.
        self._at(self._local(cohort, 0, 12), self._launch(cohort))
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

    def _launch(self, cohort: _Cohort) -> Action:
        async def act() -> None:
            # As an admin may (FUNNELBOT_ADMIN_IDS): the simulation writes no regions or
            # leader grants into the database it runs on.
            launched = await self.bot.launch(
                chat_id=cohort.chat,
                actor=cohort.leader,
                is_admin=True,
                load=lambda: self.loaded,
                start=cohort.start,
                capacity=self.options.members,
            )
            cohort.record, cohort.leader_link = launched.cohort, launched.invite_link
            await self.bot.bind_task_group(
                chat_id=cohort.task_chat,
                actor=cohort.leader,
                is_admin=True,
                code=cohort.record.code,
            )
            self._launched = True
            # The members-to-be are registered in one statement: the bot meets most people
            # first when they join, but making up 500 users one insert at a time would
            # only slow the simulation; the join itself is the bot's, member by member.
            async with self.store.transaction() as tx:
                await tx.users.add_users(
                    [(m.actor.telegram_id, m.actor.name, None) for m in cohort.members],
                    self.clock.now(),
                )
                await tx.commit()

        return act

    def _join(self, cohort: _Cohort, crowd: list[_Member]) -> Action:
        async def act() -> None:
            for m in crowd:
                self.actions += 1
                link = await self._invite_link(cohort)
                joined = await self.bot.joined(cohort.chat, m.actor, invite_link=link)
                m.user_id = joined.user_id
                m.joined = joined.outcome in ("joined", "rejoined", "member")
                if m.joined and m.sharer:
                    cohort.sharers_in.append(m)

        return act

    async def _invite_link(self, cohort: _Cohort) -> str | None:
        """The leader's link, or now and then the own link of a member already in (who
        got it from ``/mylink`` the first time they passed it on)."""
        if not cohort.sharers_in or self.rng.random() >= BY_MEMBER_LINK:
            return cohort.leader_link
        sharer = self.rng.choice(cohort.sharers_in)
        if sharer.link is None:
            sharer.link = await self.bot.my_link(sharer.actor)
        return sharer.link

    def _leave(self, cohort: _Cohort, member: _Member) -> Action:
        async def act() -> None:
            if member.joined and not member.replied:
                self.actions += 1
                member.left = True
                await self.bot.left(cohort.chat, member.user_id)

        return act

    def _chat(self, cohort: _Cohort, day: int) -> Action:
        async def act() -> None:
            for m in cohort.members:
                if m.joined and not m.left and self.rng.random() < m.activity * (1 - day / 20):
                    self.actions += 1
                    for _ in range(1 + int(self.rng.expovariate(1 / (1 + 6 * m.activity)))):
                        self._said(cohort, m)

        return act

    def _said(self, cohort: _Cohort, member: _Member) -> None:
        """A message in the warm-up group: counted in the bot's buffer, written soon."""
        self.bot.activity.add(cohort.chat, member.actor.telegram_id)
        if not self._activity_due:
            self._activity_due = True
            self._at(self.clock.now() + CHATTER_EVERY, self._flush_activity)

    async def _flush_activity(self) -> None:
        self._activity_due = False
        await self.bot.flush_activity()

    def _schedule_taps(self, cohort: _Cohort, step: PlannedStep) -> None:
        spec = self.script.step(step.source).red_envelope
        assert spec is not None
        window = spec.expires_in.total_seconds()
        # About one and a half tappers per share see the envelope in time; the chatty
        # ones more often than the quiet ones. Taps within the same second arrive
        # together: the bot writes them as one batch.
        reach = min(1.0, 1.5 * spec.shares / max(1, len(cohort.members)))
        waves: dict[int, list[_Member]] = defaultdict(list)
        for member in cohort.members:
            if self.rng.random() < reach * (0.4 + 1.5 * member.activity):
                delay = min(window * 1.2, self.rng.expovariate(1 / 60))
                waves[math.ceil(1 + delay)].append(member)
        for second, tappers in waves.items():
            when = step.due_at + timedelta(seconds=second)
            self._at(when, self._taps(cohort, step.source, tappers))

    def _taps(self, cohort: _Cohort, step_key: str, tappers: list[_Member]) -> Action:
        async def act() -> None:
            envelope_id = await self._envelope_id(cohort, step_key)
            if envelope_id is None:
                return
            # Once the summary says "all grabbed", nearly everyone stops tapping.
            closed = envelope_id in self.messenger.closed_envelopes
            tapping = [
                m
                for m in tappers
                if m.joined and not m.left and not (closed and self.rng.random() < 0.9)
            ]
            claims = await self._grab(envelope_id, tapping)
            # A double tap, from an impatient thumb: a new callback query, told "already".
            again = [
                m
                for m, claim in zip(tapping, claims, strict=True)
                if claim.outcome == "claimed" and self.rng.random() < 0.1
            ]
            await self._grab(envelope_id, again)

        return act

    async def _envelope_id(self, cohort: _Cohort, step_key: str) -> int | None:
        """The envelope behind a step's Grab button (members see it on the offer)."""
        envelope_id = cohort.envelope_ids.get(step_key)
        if envelope_id is None:
            async with self.store.transaction() as tx:
                envelope = await tx.envelopes.by_step(cohort.id, step_key)
            if envelope is None:
                return None
            envelope_id = cohort.envelope_ids[step_key] = envelope.id
        return envelope_id

    async def _grab(self, envelope_id: int, tapping: list[_Member]) -> list[ShareClaim]:
        """Taps arriving together, through the bot's tap batcher (one transaction); the
        tap that took the last share closes the envelope, as the tap handler does."""
        if not tapping:
            return []
        self.actions += len(tapping)
        claims = await asyncio.gather(
            *(
                self.bot.taps.claim(envelope_id, m.user_id, f"sim-{next(self._query_ids)}")
                for m in tapping
            )
        )
        if any(claim.last_share for claim in claims):
            await self.bot.close_envelope(envelope_id)
        return claims

    def _schedule_replies(self, cohort: _Cohort, step: PlannedStep) -> None:
        pitch = self.script.step(step.source).pitch
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
            self.actions += 1
            record = cohort.record
            assert record is not None
            # As the bot's group handler: an answer is recorded (with the cohort as its
            # cache holds it), and every message is counted.
            if self.deps.scripts.matcher(record)(text):
                outcome = await self.bot.reply(cohort.chat, member.user_id, text, cohort=record)
                if outcome == "recorded":
                    member.replied = True
                    delay = timedelta(minutes=self.rng.uniform(5, 360))
                    self._at(self.clock.now() + delay, self._ask_to_join(cohort, member))
            self._said(cohort, member)

        return act

    def _ask_to_join(self, cohort: _Cohort, member: _Member) -> Action:
        """The responder follows the admission link: a join request, which the bot
        approves and admits. (Telegram then lets them in; the bot's join handler finds
        them admitted already, so that step is left out.)"""

        async def act() -> None:
            self.actions += 1
            if await self.bot.join_request(cohort.task_chat, member.actor) == "approved":
                self._schedule_tasks(cohort, member)

        return act

    def _schedule_tasks(self, cohort: _Cohort, member: _Member) -> None:
        script = self.script
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
            self.actions += 1
            event = IncomingEvent(
                event_id=f"sim-{self._run_id}-{next(self._event_ids)}",
                type=event_type,
                occurred_at=self.clock.now(),
                telegram_user_id=member.actor.telegram_id,
                data=data,
            )
            batch = self._pending_events[cohort.id]
            batch.append(event)
            if self.rng.random() < 0.02:
                batch.append(event)  # the platform re-sends now and then

        return act

    async def _flush_events(self) -> None:
        self._last_flush = self.clock.now()
        batch = [e for events in self._pending_events.values() for e in events]
        self._pending_events.clear()
        if batch:
            result = await self.bot.ingest("platform", batch)
            self.events += result.accepted
            self.duplicates += result.duplicates
