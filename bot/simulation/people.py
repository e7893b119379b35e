"""What the simulated leaders and members do in the warm-up, and when: leaders launch,
members join (by the leader's link or a member's own), chat, grab envelopes, leave,
answer the pitch and ask into the task group, all through the bot (``SimBot``)."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections import defaultdict
from datetime import date, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.simulation.ladder import LadderWork
from bot.simulation.world import Action, Agenda, Cohort, Member, SimBot, SimMessenger, SimReceiver
from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.records import ShareClaim
from funnels.scripts.loader import LoadedScript
from funnels.scripts.planner import PlannedStep, plan
from funnels.scripts.variants import cohort_arm
from storage.uow import SqlStore

if TYPE_CHECKING:
    from bot.simulation import SimulationOptions

SHARERS = 0.05
"""Members who pass their own invite link (``/mylink``) around."""
BY_MEMBER_LINK = 0.15
"""Of the members who join once a sharer is in, those who come by a sharer's link."""
CHATTER_EVERY = timedelta(hours=1)
"""How long chatter waits in the activity buffer before it is written: the bot writes it
at every tick (seconds apart), the simulation a group's hour of chatter at once."""


class People:
    """Plans each cohort's leader and members, puts what they will do on the agenda, and
    does it through the bot when it falls due."""

    def __init__(
        self,
        loaded: LoadedScript,
        options: SimulationOptions,
        deps: Deps,
        store: SqlStore,
        messenger: SimMessenger,
        agenda: Agenda,
        run_id: int,
    ) -> None:
        self.loaded, self.script = loaded, loaded.script
        self.tz = ZoneInfo(self.script.timezone)
        self.options = options
        self.rng = random.Random(options.seed)
        self.deps, self.clock, self.store = deps, deps.clock, store
        self.messenger, self.agenda = messenger, agenda
        self.receiver = SimReceiver(random.Random(options.seed + 1))
        self.bot = SimBot(deps, self.receiver)
        self.ladder = LadderWork(
            self.script, self.rng, agenda, deps, run_id, arm_lift=options.arm_lift
        )
        self._run_id = run_id
        self._tg_ids = itertools.count(10**12 + run_id * 10**9)
        self._query_ids = itertools.count(1)
        self.actions = 0
        self.launched = False
        """A cohort was launched since this was last reset: it has steps to run."""
        self._activity_due = False
        self._to_grant: dict[int, str] = {}
        """Leaders (by Telegram id) still to be granted their region, with its code."""

    def cohorts(self) -> list[Cohort]:
        """Every cohort as planned, with what its people will do on the agenda; the
        regions launch one a week each."""
        regions = self.options.regions
        leaders = [Actor(next(self._tg_ids), f"leader {n + 1}") for n in range(regions)]
        self._to_grant = {
            leader.telegram_id: code
            for leader, code in zip(leaders, self.options.region_codes, strict=False)
        }
        cohorts = []
        for i in range(self.options.cohorts):
            start = self.options.first_start + timedelta(days=7 * (i // regions))
            cohort = self._new_cohort(i, leaders[i % regions], start)
            cohorts.append(cohort)
            self._schedule(cohort)
        return cohorts

    def _new_cohort(self, i: int, leader: Actor, start: date) -> Cohort:
        # Chats and users get ids no earlier run used, so a simulation can run again and
        # again on the same database (--database-url).
        chat = -(10**13) - self._run_id * 10**4 - 2 * i
        members = [
            Member(
                Actor(next(self._tg_ids), f"member {n}"),
                self.rng.betavariate(2, 3),
                self.rng.lognormvariate(0, 0.6),
                self.rng.betavariate(2, 2),
                self.rng.random() < SHARERS,
            )
            for n in range(self.options.members)
        ]
        steps = plan(self.script, start, self.tz)
        return Cohort(leader, start, self.tz, chat, chat - 1, steps, members)

    def _schedule(self, cohort: Cohort) -> None:
        rng, at = self.rng, self.agenda.at
        warm_days = self.script.warmup.days
        # The leader launches at noon the day before the start, binding the task group.
        at(cohort.local(0, 12), self._launch(cohort))
        crowds: dict[tuple[int, int], list[Member]] = defaultdict(list)
        for member in cohort.members:
            # Most join on day 1, fewer each day after, all before the last warm-up day;
            # those arriving within the same hour come in one after the other.
            day = min(1 + int(rng.expovariate(1.2)), max(1, warm_days - 1))
            crowds[(day, rng.randint(7, 22))].append(member)
        for member in cohort.members:
            if rng.random() < 0.06:
                leave_day = rng.randint(2, warm_days)
                at(cohort.local(leave_day, rng.uniform(0, 23.9)), self._leave(cohort, member))
        for (day, hour), crowd in crowds.items():
            at(cohort.local(day, hour + 0.5), self._join(cohort, crowd))
        for day in range(1, warm_days + 1):
            at(cohort.local(day, 21.75), self._chat(cohort, day))
        for step in cohort.plan:
            if step.kind == "red_envelope":
                self._schedule_taps(cohort, step)
        # Answers to the pitch are drawn once the cohort is launched: the wording its
        # group will see (an A/B arm) depends on the code it is given.

    def _launch(self, cohort: Cohort) -> Action:
        async def act() -> None:
            # As an admin may (FUNNELBOT_ADMIN_IDS): the simulation writes no regions or
            # leader grants into the database it runs on, unless given regions to lead
            # in; then an admin grants the leader theirs before their first launch, and
            # the cohort is in it.
            region = self._to_grant.pop(cohort.leader.telegram_id, None)
            if region is not None:
                await self.bot.grant_leader(target=cohort.leader, region_code=region, is_admin=True)
            launched = await self.bot.launch(
                chat_id=cohort.chat,
                actor=cohort.leader,
                is_admin=True,
                load=lambda: self.loaded,
                start=cohort.start,
                capacity=self.options.members,
            )
            cohort.record, cohort.leader_link = launched.cohort, launched.invite_link
            for step in cohort.plan:
                if step.kind == "pitch":
                    self._schedule_replies(cohort, step)
            await self.bot.bind_task_group(
                chat_id=cohort.task_chat,
                actor=cohort.leader,
                is_admin=True,
                code=cohort.record.code,
            )
            self.launched = True
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

    def _join(self, cohort: Cohort, crowd: list[Member]) -> Action:
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

    async def _invite_link(self, cohort: Cohort) -> str | None:
        """The leader's link, or now and then the own link of a member already in (who
        got it from ``/mylink`` the first time they passed it on)."""
        if not cohort.sharers_in or self.rng.random() >= BY_MEMBER_LINK:
            return cohort.leader_link
        sharer = self.rng.choice(cohort.sharers_in)
        if sharer.link is None:
            sharer.link = await self.bot.my_link(sharer.actor)
        return sharer.link

    def _leave(self, cohort: Cohort, member: Member) -> Action:
        async def act() -> None:
            if member.joined and not member.replied:
                self.actions += 1
                member.left = True
                await self.bot.left(cohort.chat, member.user_id)

        return act

    def _chat(self, cohort: Cohort, day: int) -> Action:
        async def act() -> None:
            for m in cohort.members:
                if m.joined and not m.left and self.rng.random() < m.activity * (1 - day / 20):
                    self.actions += 1
                    for _ in range(1 + int(self.rng.expovariate(1 / (1 + 6 * m.activity)))):
                        self._said(cohort, m)

        return act

    def _said(self, cohort: Cohort, member: Member) -> None:
        """A message in the warm-up group: counted in the bot's buffer, written soon."""
        self.bot.activity.add(cohort.chat, member.actor.telegram_id)
        if not self._activity_due:
            self._activity_due = True
            self.agenda.at(self.clock.now() + CHATTER_EVERY, self._flush_activity)

    async def _flush_activity(self) -> None:
        self._activity_due = False
        await self.bot.flush_activity()

    def _schedule_taps(self, cohort: Cohort, step: PlannedStep) -> None:
        spec = self.script.step(step.source).red_envelope
        assert spec is not None
        window = spec.expires_in.total_seconds()
        # About one and a half tappers per share see the envelope in time; the chatty
        # ones more often than the quiet ones. Taps within the same second arrive
        # together: the bot writes them as one batch.
        reach = min(1.0, 1.5 * spec.shares / max(1, len(cohort.members)))
        waves: dict[int, list[Member]] = defaultdict(list)
        for member in cohort.members:
            if self.rng.random() < reach * (0.4 + 1.5 * member.activity):
                delay = min(window * 1.2, self.rng.expovariate(1 / 60))
                waves[math.ceil(1 + delay)].append(member)
        for second, tappers in waves.items():
            when = step.due_at + timedelta(seconds=second)
            self.agenda.at(when, self._taps(cohort, step.source, tappers))

    def _taps(self, cohort: Cohort, step_key: str, tappers: list[Member]) -> Action:
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

    async def _envelope_id(self, cohort: Cohort, step_key: str) -> int | None:
        """The envelope behind a step's Grab button (members see it on the offer)."""
        envelope_id = cohort.envelope_ids.get(step_key)
        if envelope_id is None:
            async with self.store.transaction() as tx:
                envelope = await tx.envelopes.by_step(cohort.id, step_key)
            if envelope is None:
                return None
            envelope_id = cohort.envelope_ids[step_key] = envelope.id
        return envelope_id

    async def _grab(self, envelope_id: int, tapping: list[Member]) -> list[ShareClaim]:
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

    def _schedule_replies(self, cohort: Cohort, step: PlannedStep) -> None:
        pitch = self.script.step(step.source).pitch
        assert pitch is not None
        window = pitch.reply.window.total_seconds()
        # Members answer in whatever form their keyboard gives them.
        forms = [*pitch.reply.match, "1", "1", " 1 ", "1\ufe0f\u20e3", "\uff11"]
        # The wording this group is shown, and how much it moves them (--arm-lift).
        lift = 1.0
        if pitch.variants and cohort.record is not None:
            arm = cohort_arm(pitch, cohort.record.code, step.key)
            lift = self.options.arm_lift.get(arm.id, 1.0)
        for member in cohort.members:
            rate = self.options.reply_rate * lift
            p = min(1.0, rate * member.warmth * (0.6 + 0.8 * member.activity))
            if self.rng.random() < p:
                delay = min(window - 60, self.rng.expovariate(1 / 5400))
                when = step.due_at + timedelta(seconds=5 + delay)
                self.agenda.at(when, self._reply(cohort, member, self.rng.choice(forms)))
            elif self.rng.random() < 0.05:
                when = step.due_at + timedelta(seconds=self.rng.uniform(5, 3600))
                self.agenda.at(when, self._reply(cohort, member, "10 yuan? what is this"))

    def _reply(self, cohort: Cohort, member: Member, text: str) -> Action:
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
                    self.agenda.at(self.clock.now() + delay, self._ask_to_join(cohort, member))
            self._said(cohort, member)

        return act

    def _ask_to_join(self, cohort: Cohort, member: Member) -> Action:
        """The responder follows the admission link: a join request, which the bot
        approves and admits. (Telegram then lets them in; the bot's join handler finds
        them admitted already, so that step is left out.)"""

        async def act() -> None:
            self.actions += 1
            if await self.bot.join_request(cohort.task_chat, member.actor) == "approved":
                self.ladder.schedule(cohort, member)

        return act
