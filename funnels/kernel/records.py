"""Records the slices share: cohorts, step runs, members, envelopes, tasks, links,
regions, ledger entries, as storage reads and writes them. Plain frozen dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Literal, NamedTuple

from funnels.kernel.stages import Stage

StepStatus = Literal["pending", "running", "done", "skipped", "failed", "unknown", "held"]
"""``held``: a later part of a talk whose earlier part is ``unknown`` or ``failed``; it
waits, unsent, until ops or the leader retry or skip that part (then it is pending).

A status of its own rather than "pending but not claimable": /status, ``funnelbot step
list`` and the reports see why the part waits (its error names the part it waits on), and
a held part is not open work, so it neither looks due to the scheduler nor keeps its
cohort from finishing. The claim also refuses any talk part whose earlier part is not
done or skipped, which keeps parts in order across processes whatever the status says."""


CohortStatus = Literal["running", "paused", "finished", "cancelled"]


AdmissionMode = Literal["requests", "personal"]
"""How responders get into a cohort's task group, chosen at ``/launch``: ``requests``
(one join-request link; the bot approves responders and declines anyone else) or
``personal`` (each responder asks the bot privately for a one-time link of their own)."""

ADMISSION_MODES: tuple[AdmissionMode, ...] = ("requests", "personal")


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class CohortRecord:
    id: int
    code: str
    script_id: str
    script_version: int
    script_hash: str
    script_body: str
    locale: str
    timezone: str
    capacity: int
    currency: str
    budget_minor: int
    spent_minor: int
    start_date: date
    ends_at: datetime
    status: CohortStatus
    warmup_chat_id: int | None
    task_chat_id: int | None
    pitch_opened_at: datetime | None
    pitch_closed_at: datetime | None
    region_id: int | None
    leader_id: int | None
    parent_cohort_id: int | None
    admissions_noted_at: datetime | None = None
    status_reason: str | None = None
    generation: int = 1
    """1 for a leader's own line; a supervisor's line is its parent cohort's + 1."""
    admission: AdmissionMode = "requests"

    def warms_up_in(self, chat_id: int) -> bool:
        """Whether ``chat_id`` is this cohort's warm-up group (not its task group)."""
        return self.warmup_chat_id == chat_id


@dataclass(frozen=True, slots=True)
class NewCohort:
    code: str
    script_id: str
    script_version: int
    script_hash: str
    script_body: str
    locale: str
    timezone: str
    capacity: int
    currency: str
    budget_minor: int
    start_date: date
    ends_at: datetime
    warmup_chat_id: int | None
    region_id: int | None
    leader_id: int | None
    parent_cohort_id: int | None
    generation: int = 1
    admission: AdmissionMode = "requests"


@dataclass(frozen=True, slots=True)
class StepRunRecord:
    id: int
    cohort_id: int
    key: str
    source: str
    kind: PlanKind
    stage: PlanStage
    day: int
    part: int | None
    due_at: datetime
    status: StepStatus
    attempts: int
    started_at: datetime | None = None
    outcome: Mapping[str, object] | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class MemberRef:
    """A member as the domain sees them: the internal user id and their chat id, if any."""

    user_id: int
    telegram_id: int | None
    language: str | None


@dataclass(frozen=True, slots=True)
class EnvelopeRecord:
    id: int
    cohort_id: int
    step_key: str
    currency: str
    total_minor: int
    shares: int
    claimed: int
    claimed_minor: int
    chat_id: int | None
    message_id: int | None
    expires_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ShareClaim:
    """What a tap got. ``outcome``: claimed now, claimed before, none left, or closed."""

    outcome: Literal["claimed", "already", "empty", "closed", "not_member"]
    amount_minor: int = 0
    last_share: bool = False
    cohort_id: int | None = None
    step_key: str | None = None
    currency: str | None = None
    stage: Stage | None = None
    """The member's stage in the envelope's cohort before the tap (None: not a member)."""


@dataclass(frozen=True, slots=True)
class TaskProgressRecord:
    id: int
    cohort_id: int
    user_id: int
    task_id: str
    progress: Mapping[int, int]
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """One platform event after parsing; ``member_ref`` or ``telegram_user_id`` names the member."""

    event_id: str
    type: str
    occurred_at: datetime
    member_ref: str | None = None
    telegram_user_id: int | None = None
    data: Mapping[str, object] = field(default_factory=dict)


MemberGroupState = Literal["counting", "ready", "talking", "given"]
"""A member's own group for the group task: ``counting`` its members until there are
enough, ``ready`` (``group.created`` recorded), ``talking`` (the owner asked for the
talk; its parts are step runs), ``given`` (``talk.given`` recorded)."""


@dataclass(frozen=True, slots=True)
class MemberGroupRecord:
    id: int
    chat_id: int
    owner_id: int
    cohort_id: int
    task_id: str
    state: MemberGroupState
    member_count: int | None
    checked_at: datetime | None
    left_at: datetime | None

    @property
    def talk_source(self) -> str:
        """The ``source`` of the talk's step runs (and the key of its first part)."""
        return f"{GROUP_TALK}{self.id}"

    @staticmethod
    def id_of_talk(source: str) -> int:
        """The group whose talk's step runs have ``source`` (see :attr:`talk_source`)."""
        return int(source.removeprefix(GROUP_TALK))


GROUP_TALK = "grouptalk."
"""How the step runs of a talk in a member's group are named: ``grouptalk.<group id>``."""


@dataclass(frozen=True, slots=True)
class ReminderCandidate:
    """A member in a task stage who has had no reminder on the day asked about: who they
    are, when they last did something (admitted, an event, progress), and the tasks they
    completed."""

    member: MemberRef
    last_active: datetime
    completed: frozenset[str]


class Arrival(NamedTuple):
    """Someone entering the warm-up group, and who invited them."""

    user_id: int
    inviter_id: int | None


Seat = Literal["joined", "rejoined", "member", "full"]
"""What an arrival got: a new seat, the old one back (``left_at`` cleared, the stage
kept), none needed (already in), or none left (past capacity, nothing written)."""


@dataclass(frozen=True, slots=True)
class InviteLinkRecord:
    link: str
    chat_id: int
    cohort_id: int
    owner_id: int | None
    kind: Literal["leader", "member", "admission", "personal"]


@dataclass(frozen=True, slots=True)
class PersonalLinkRecord:
    """A responder's one-time link into the task group (``admission: personal``): the
    claim to make it and, once made, the link itself.

    ``attempt`` counts the claims: a claim is taken before Telegram is asked for a link,
    so a process that dies in between leaves a claim without a link (``link`` None,
    ``claimed_at`` set), which the next ask takes over once it is stale. ``link`` is
    cleared when the link is used; ``expires_at`` is when Telegram stops accepting it."""

    cohort_id: int
    user_id: int
    attempt: int
    claimed_at: datetime | None
    link: str | None
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class RegionRecord:
    id: int
    code: str
    name: str
    timezone: str
    weekly_target: int


@dataclass(frozen=True, slots=True)
class LedgerCredit:
    key: str
    """Idempotency key: a second credit with it is ignored."""
    user_id: int
    cohort_id: int | None
    kind: str
    ref: str
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class UpdateBatch:
    """The Telegram updates a piece of work came from (the bot's id and the update ids),
    so that the work and "these updates are handled" are committed together: a crash
    then neither loses the work nor does it twice."""

    bot_id: int
    update_ids: tuple[int, ...]


class PlanKind(StrEnum):
    """What a step run does when it falls due (stored by value in ``step_runs.kind``)."""

    POST = "post"
    TALK_PART = "talk_part"
    RED_ENVELOPE = "red_envelope"
    ENVELOPE_CLOSE = "envelope_close"
    PITCH = "pitch"
    PITCH_CLOSE = "pitch_close"
    TASK_UNLOCK = "task_unlock"
    GROUP_TALK_PART = "group_talk_part"
    """A part of the group task's talk, given in a member's own group on their ``/talk``."""

    @property
    def speaks(self) -> bool:
        """Whether the run posts a script step into the warm-up group (a post, a talk's
        part, an envelope, the pitch): what the late policy and the timeline concern."""
        return self in _SPEAKING

    @property
    def is_talk_part(self) -> bool:
        """A part of a talk: parts of one talk go out in order, each after the last."""
        return self in TALK_PART_KINDS


TALK_PART_KINDS = frozenset({PlanKind.TALK_PART, PlanKind.GROUP_TALK_PART})
_SPEAKING = frozenset({PlanKind.POST, PlanKind.TALK_PART, PlanKind.RED_ENVELOPE, PlanKind.PITCH})


class PlanStage(StrEnum):
    WARMUP = "warmup"
    TASKS = "tasks"


ProofState = Literal["pending", "approved", "rejected"]


@dataclass(frozen=True, slots=True)
class ProofRecord:
    """A member's screenshot for a proof task, and the leader's decision on it."""

    id: int
    cohort_id: int
    user_id: int
    task_id: str
    file_id: str
    """Telegram's file id of the photo: the bot sends it on by this id."""
    state: ProofState
    reason: str | None
    """Why it was rejected (a code of ``funnels.ladder.proofs.REJECT_REASONS``)."""
    decided_by: int | None
    """The user who decided (the cohort's leader or an admin)."""
    created_at: datetime
    decided_at: datetime | None


PayoutStatus = Literal["owed", "pending", "delivered", "parked"]
"""A task reward's way out: ``owed`` (past the cohort budget: recorded, not credited yet),
``pending`` (credited; its ``reward.granted`` event waits to be delivered), ``delivered``
(the platform answered 2xx) or ``parked`` (retried for days in vain; ops decide)."""


@dataclass(frozen=True, slots=True)
class PayoutRecord:
    """One task reward and the delivery of its ``reward.granted`` event. ``key`` is the
    ledger entry's idempotency key and the event's ``webhook-id``; ``body`` is fixed when
    the reward is credited, so every attempt sends the same event."""

    id: int
    key: str
    cohort_id: int
    user_id: int
    task_id: str
    amount_minor: int
    currency: str
    status: PayoutStatus
    body: str | None
    completed_at: datetime
    granted_at: datetime | None
    attempts: int
    first_attempt_at: datetime | None
    next_attempt_at: datetime | None
    last_error: str | None
    member_notice: Literal["owed", "paid"] | None = None
    """What the member is still to be told (sent by the service, then cleared)."""
    leader_notice: bool = False
    """Whether the cohort's leader is still to be told that the budget ran out."""


@dataclass(frozen=True, slots=True)
class RewardDue:
    """A finished task's reward as it is recorded, owed or credited."""

    key: str
    cohort_id: int
    user_id: int
    task_id: str
    amount_minor: int
    currency: str
    completed_at: datetime


@dataclass(frozen=True, slots=True)
class TrackedLinkRecord:
    """A member's tracked link for one task of their cohort (``GET /r/{code}``)."""

    code: str
    cohort_id: int
    user_id: int
    member_ref: str
    """The member's personal ref code: how the link's events name the member."""
    task_id: str


@dataclass(frozen=True, slots=True)
class FanLockRequest:
    """Lock ``visitor`` as the fan of ``user_id`` in the cohort, unless someone has them."""

    cohort_id: int
    visitor: str
    user_id: int
    code: str


@dataclass(frozen=True, slots=True)
class EventIfHolder:
    """An event to store, if ``holder`` is given only when that request's member holds
    its visitor's fan lock once the locks are taken (first touch wins)."""

    event: IncomingEvent
    holder: FanLockRequest | None = None


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A key of the HTTP API, as lists show it (the key itself is never stored)."""

    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class OpsActionRecord:
    """Something ops did to a cohort, with who did it (an API key, by id and name) and
    when: it shows in the cohort's timeline."""

    id: int
    cohort_id: int
    api_key_id: int | None
    by: str
    action: str
    detail: str | None
    at: datetime
