"""``funnelbot simulate``: whole cohorts on a virtual clock, through what the bot runs.

Leaders ``/launch`` the cohorts and bind their task groups; simulated members join by the
leader's invite link or by a member's own link (``MemberJoined``, attributed as in the
bot), chat (counted by Telegram id through the bot's activity buffer and
``RecordChatter``), grab envelopes (the bot's ``TapBatcher``: taps that arrive together
share one transaction), answer the pitch (``RecordReply``), ask to join the task group
(``DecideJoinRequest``) and work down the ladder with falling probability; their platform
events are stored and applied by the same use cases the HTTP API uses, and the visitors
their tracked links bring click through the same link tracking as ``GET /r/{code}``
(``RecordClicks``, then the event applier's ``ApplyEvents``). Rewards are announced and
delivered as the service does it (``SendRewardNotices``, ``DeliverPayouts`` to a payout
receiver that fails now and then); reminders go out from the tick. What is left out is
Telegram's side: parsing updates, answering taps, slow mode's deletions, reactions.

The store and ``Deps`` come from the composition root; the messenger records what the
bot would have said instead of calling Telegram. Time jumps from one thing that happens
to the next, so 28 days take seconds; the report is the ops slice's (``ReadFunnel``).

Here: the options, the result and the run (the clock, the scheduler's ticks, the
platform's posts). ``people``: what leaders and members do in the warm-up; ``ladder``:
the events of their tasks; ``world``: the agenda, the cohorts and members, the bot.
"""

from __future__ import annotations

import gc
import random
import secrets
import tempfile
import time as _perf
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.composition import build_deps, open_store
from bot.heap import settle_heap
from bot.simulation.people import People
from bot.simulation.world import Agenda, SimMessenger
from funnels.cohorts.launch import cohort_end
from funnels.kernel.clock import ManualClock
from funnels.kernel.codes import ALPHABET, COHORT_CODE_LENGTH
from funnels.ops.experiments import CompareVariants, Experiment
from funnels.ops.ports import CohortFilter
from funnels.ops.report import FunnelReport, ReadFunnel
from funnels.scripts.loader import LoadedScript
from storage.uow import SqlStore

PAY_EVERY = timedelta(minutes=30)
"""How often payouts are looked at when no reward was recorded (retries wait longer)."""
EVENTS_EVERY = timedelta(hours=1)
"""The platform posts what happened at least this often, and at once past 500 events."""


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
    region_codes: tuple[str, ...] = ()
    """Regions (existing ones, by code) the leaders lead in, one each; empty: the
    leaders launch as admins, in no region (``funnelbot demo`` gives its own)."""
    arm_lift: dict[str, float] = field(default_factory=dict)
    """A/B variants: how much likelier members are to reply in a cohort whose pitch drew
    this arm (``{"story": 1.2}``: a fifth likelier); arms not named: 1."""

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
        for arm, lift in self.arm_lift.items():
            if not 0.0 <= lift <= 10.0:
                problems.append(f"--arm-lift {arm}={lift}: the lift must be between 0 and 10")
        if self.region_codes and len(self.region_codes) != self.regions:
            problems.append(f"{self.regions} regions need as many region codes")
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
    clicks: int = 0
    reminders: int = 0
    member_days: int = 0
    """Days members spent in a task stage (admitted members × the ladder's days)."""
    payout_attempts: int = 0
    cohort_ids: list[int] = field(default_factory=list)
    experiments: list[Experiment] = field(default_factory=list)
    """The script's varied messages, their arms compared over the simulated cohorts."""

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
                "owed": r.payout("owed")[0],
                "owed_minor": r.payout("owed")[1],
                "tasks_completed": r.tasks_completed,
            },
            "payouts": {
                "delivered": r.payout("delivered")[0],
                "pending": r.payout("pending")[0],
                "parked": r.payout("parked")[0],
                "attempts": self.payout_attempts,
            },
            "reminders": {
                "sent": self.reminders,
                "per_member_day": round(self.reminders / self.member_days, 4)
                if self.member_days
                else 0.0,
            },
            "spend_minor": r.envelope_claimed_minor + r.rewards_paid_minor,
            "steps": {
                "status": r.step_status,
                "late_max_seconds": late[-1] if late else 0,
                "late_p95_seconds": late[int(len(late) * 0.95)] if late else 0,
            },
            "experiments": [
                {
                    "step_key": e.step_key,
                    "kind": e.kind,
                    "stage": e.stage,
                    "verdict": e.verdict,
                    "leader": e.leader,
                    "detail": e.detail,
                    "arms": [
                        {
                            "arm": a.arm,
                            "cohorts": a.cohorts,
                            "members": a.members,
                            "converted": a.converted,
                            "rate": None if a.rate is None else round(a.rate, 4),
                        }
                        for a in e.arms
                    ],
                }
                for e in self.experiments
            ],
            "run": {
                "wall_seconds": round(self.wall_seconds, 3),
                "steps_run": self.steps_run,
                "member_actions": self.member_actions,
                "events": self.events,
                "duplicate_events": self.duplicates,
                "clicks": self.clicks,
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


class Simulation:
    def __init__(
        self,
        loaded: LoadedScript,
        options: SimulationOptions,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        options.check()
        self.loaded = loaded
        self.options = options
        self.progress = progress
        self.agenda = Agenda()
        self.events = 0
        self.duplicates = 0
        self.reminders = 0
        self._rewards_new = False
        self._paid_at = datetime.min.replace(tzinfo=UTC)
        self._posted_at = datetime.min.replace(tzinfo=UTC)

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
        tz = ZoneInfo(self.loaded.script.timezone)
        # The first leaders launch the day before the first cohort starts.
        first = datetime.combine(self.options.first_start - timedelta(days=1), time.min, tz)
        self.clock = clock = ManualClock(first)
        messenger = SimMessenger()
        self.deps = build_deps(store, messenger, clock)
        # Cohort codes from the seed (and the cohorts already in the database, so a
        # second run on it makes new ones): the A/B arms, drawn by code, reproduce.
        async with store.transaction() as tx:
            there = await tx.kpis.cohort_figures(CohortFilter())
        codes = random.Random(f"codes:{self.options.seed}:{len(there)}")
        self.deps.cohort_codes = lambda: "".join(
            codes.choice(ALPHABET) for _ in range(COHORT_CODE_LENGTH)
        )
        self.store = store
        store.on_rewards = self._rewards_recorded
        run_id = secrets.randbelow(10**6)
        self.people = people = People(
            self.loaded, self.options, self.deps, store, messenger, self.agenda, run_id
        )
        cohorts = people.cohorts()

        # A day past the last step, and past the last cohort's end (its last task day
        # may have no step), so the tick marks every cohort finished.
        script = self.loaded.script
        end = max(
            max(c.plan[-1].due_at + timedelta(days=1), cohort_end(script, c.start, c.tz))
            for c in cohorts
        )
        span = (end - clock.now()).total_seconds()
        steps_run = 0
        next_due: datetime | None = None
        while (action_at := self.agenda.next_at()) is not None or next_due is not None:
            if next_due is not None and (action_at is None or next_due <= action_at):
                await self._post_events()
                clock.set(max(clock.now(), next_due))
                steps_run += await self._tick()
                next_due = await self._next_due()
                continue
            assert action_at is not None
            clock.set(max(clock.now(), action_at))
            for action in self.agenda.due(clock.now()):
                await action()
            if people.launched:  # a new cohort's steps: the next due time may be sooner
                people.launched = False
                next_due = await self._next_due()
            # The platform posts events in batches, as the HTTP API allows.
            pending = len(people.ladder.pending) + len(people.ladder.clicks)
            if pending >= 500 or clock.now() - self._posted_at >= EVENTS_EVERY:
                await self._post_events()
            if self.progress:
                self.progress(min(1.0, 1 - (end - clock.now()).total_seconds() / span))
        await self._post_events()
        clock.set(max(clock.now(), end))
        steps_run += await self._tick()
        await self._deliver_the_rest()
        cohort_ids = [c.id for c in cohorts]
        return SimulationResult(
            report=await ReadFunnel(self.deps)(cohort_ids),
            wall_seconds=_perf.perf_counter() - started,
            steps_run=steps_run,
            member_actions=people.actions + people.ladder.actions,
            events=self.events,
            duplicates=self.duplicates,
            sent=len(messenger.sent),
            edits=len(messenger.edits),
            notices=len(messenger.notices),
            clicks=people.ladder.clicked,
            reminders=self.reminders,
            member_days=await self._member_days(cohort_ids),
            payout_attempts=people.receiver.attempts,
            cohort_ids=cohort_ids,
            experiments=await CompareVariants(self.deps)(CohortFilter(), cohort_ids),
        )

    async def _tick(self) -> int:
        """What the service's tick does: due steps (reminders with them), then reward
        notices and payout deliveries; the steps run."""
        tick = self.people.bot.tick
        report = await tick()
        claimed, self.reminders = report.claimed, self.reminders + report.reminders
        while report.claimed >= tick.batch:  # more is due: claim on, as the service does
            report = await tick()
            claimed, self.reminders = claimed + report.claimed, self.reminders + report.reminders
        await self._pay()
        return claimed

    def _rewards_recorded(self) -> None:
        self._rewards_new = True

    async def _pay(self, *, force: bool = False) -> None:
        """Reward notices and payout deliveries, as the service's payout worker sends
        them: at once after rewards are recorded, else every half hour (for retries),
        so quiet ticks cost nothing."""
        now = self.clock.now()
        if not (force or self._rewards_new or now - self._paid_at >= PAY_EVERY):
            return
        self._rewards_new, self._paid_at = False, now
        bot = self.people.bot
        await bot.reward_notices()
        while (await bot.deliver()).claimed == bot.deliver.batch:
            pass

    async def _deliver_the_rest(self) -> None:
        """After the last cohort: the payout worker goes on until every delivery that
        can be made is made (a retry waits up to hours; a row is parked after 3 days)."""
        for _ in range(4 * 24 * 2):
            async with self.store.transaction() as tx:
                if not await tx.payouts.count(["pending"]):
                    return
            self.clock.set(self.clock.now() + timedelta(minutes=30))
            await self._pay(force=True)

    async def _member_days(self, cohort_ids: list[int]) -> int:
        report = await ReadFunnel(self.deps)(cohort_ids)
        return report.stages.get("admitted", 0) * self.loaded.script.tasks.days

    async def _next_due(self) -> datetime | None:
        async with self.store.transaction() as tx:
            return await tx.steps.next_due_at()

    async def _post_events(self) -> None:
        """What the platform has to tell, in one batch (stored, then applied, as the HTTP
        API does), and the clicks since the last post (recorded as ``GET /r/{code}``
        records them, then applied as the service's event applier applies them)."""
        self._posted_at = self.clock.now()
        bot = self.people.bot
        batch = self.people.ladder.take()
        if batch:
            result = await bot.ingest("platform", batch)
            self.events += result.accepted
            self.duplicates += result.duplicates
        clicks = self.people.ladder.take_clicks()
        if clicks:
            await bot.record_clicks(clicks)
            while (await bot.apply()).applied:
                pass
