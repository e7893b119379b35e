"""What a simulation is made of: the agenda of what happens when, the simulated leaders,
members and cohorts, the bot as its handlers call it, and the recording messenger."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.telegram.batching import ActivityBuffer, TapBatcher
from bot.telegram.offline import RecordingMessenger
from funnels.cohorts.launch import BindTaskGroup, LaunchCohort
from funnels.cohorts.tick import RunDueSteps
from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.messaging import EnvelopeSummary, Outgoing
from funnels.kernel.records import CohortRecord
from funnels.ladder.events import ApplyEvents, IngestEvents
from funnels.ladder.links import RecordClicks
from funnels.ladder.payouts import DeliverPayouts, SendResult
from funnels.ladder.rewards import SendRewardNotices
from funnels.people.leaders import GrantLeader
from funnels.people.links import MemberLink
from funnels.scripts.planner import PlannedStep
from funnels.warmup.admissions import DecideJoinRequest
from funnels.warmup.chatter import RecordChatter
from funnels.warmup.envelopes import ClaimShares, CloseEnvelope
from funnels.warmup.joins import MemberJoined, RecordLeave
from funnels.warmup.replies import RecordReply

Action = Callable[[], Awaitable[None]]


class Agenda:
    """Actions in time order; those due at the same instant in the order they were put in."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, Action]] = []
        self._seq = itertools.count()

    def at(self, when: datetime, action: Action) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), action))

    def next_at(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None

    def due(self, now: datetime) -> Iterator[Action]:
        """The actions due by ``now``, taken off the agenda one by one (an action may put
        another one on it, due at once)."""
        while self._heap and self._heap[0][0] <= now:
            yield heapq.heappop(self._heap)[2]


class SimMessenger(RecordingMessenger):
    """Remembers which envelopes closed, so simulated members stop tapping them."""

    def __init__(self) -> None:
        super().__init__()
        self.closed_envelopes: set[int] = set()

    async def edit(self, chat_id: int, message_id: int, message: Outgoing) -> None:
        if isinstance(message, EnvelopeSummary):
            self.closed_envelopes.add(message.envelope_id)
        await super().edit(chat_id, message_id, message)


class SimReceiver:
    """The platform's payout endpoint: answers 2xx, but now and then (``failing``) a 503,
    so deliveries are retried as they are against a real one."""

    def __init__(self, rng: random.Random, failing: float = 0.05) -> None:
        self.rng = rng
        self.failing = failing
        self.attempts = 0

    async def send(self, webhook_id: str, body: str) -> SendResult:
        self.attempts += 1
        if self.rng.random() < self.failing:
            return SendResult(False, "HTTP 503")
        return SendResult(True, "HTTP 200")


class SimBot:
    """The bot's use cases, and the parts of its Telegram side that shape how they are
    called (the activity buffer, the tap batcher), as its handlers use them; what the
    service runs beside them (the event applier, reward notices, payout delivery)."""

    def __init__(self, deps: Deps, receiver: SimReceiver) -> None:
        self.launch, self.bind_task_group = LaunchCohort(deps), BindTaskGroup(deps)
        self.grant_leader = GrantLeader(deps)
        self.joined, self.left = MemberJoined(deps), RecordLeave(deps)
        self.my_link = MemberLink(deps)
        self.chatter, self.activity = RecordChatter(deps), ActivityBuffer()
        self.reply, self.join_request = RecordReply(deps), DecideJoinRequest(deps)
        self.taps, self.close_envelope = TapBatcher(ClaimShares(deps)), CloseEnvelope(deps)
        self.ingest = IngestEvents(deps)
        self.record_clicks, self.apply = RecordClicks(deps), ApplyEvents(deps)
        self.tick = RunDueSteps(deps, batch=200)
        self.reward_notices = SendRewardNotices(deps)
        self.deliver = DeliverPayouts(deps, receiver, owner="simulation")

    async def flush_activity(self) -> None:
        """Write the buffered message counts, a chat at a time (``Services.flush_activity``)."""
        for chat_id, counts, _ in self.activity.take():
            await self.chatter(chat_id, counts)


@dataclass
class Member:
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
class Cohort:
    leader: Actor
    start: date
    tz: ZoneInfo
    chat: int
    task_chat: int
    plan: list[PlannedStep]
    members: list[Member]
    record: CohortRecord | None = None
    """As launched: what the bot's cache of the group's cohort holds."""
    leader_link: str | None = None
    sharers_in: list[Member] = field(default_factory=list)
    envelope_ids: dict[str, int] = field(default_factory=dict)

    @property
    def id(self) -> int:
        assert self.record is not None, "the cohort is not launched yet"
        return self.record.id

    def local(self, day: int, hour: float) -> datetime:
        """``hour`` hours into the cohort's day ``day`` (day 1: the start), in UTC."""
        base = datetime.combine(self.start + timedelta(days=day - 1), time.min, self.tz)
        return (base + timedelta(hours=hour)).astimezone(UTC)
