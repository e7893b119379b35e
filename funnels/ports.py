"""The vocabulary the slices share with the world: records read from storage, what the
bot is asked to say (messages and the ``Messenger``), and the repositories as Protocols."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal, Protocol

from funnels.kernel.stages import Stage
from funnels.scripts.model import Media
from funnels.scripts.planner import PlannedStep

StepStatus = Literal["pending", "running", "done", "skipped", "failed", "unknown", "held"]
"""``held``: a later part of a talk whose earlier part is ``unknown`` or ``failed``; it
waits, unsent, until ops or the leader retry or skip that part (then it is pending).

A status of its own rather than "pending but not claimable": /status, ``funnelbot step
list`` and the reports see why the part waits (its error names the part it waits on), and
a held part is not open work, so it neither looks due to the scheduler nor keeps its
cohort from finishing. The claim also refuses any talk part whose earlier part is not
done or skipped, which keeps parts in order across processes whatever the status says."""


CohortStatus = Literal["running", "paused", "finished", "cancelled"]


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


@dataclass(frozen=True, slots=True)
class StepRunRecord:
    id: int
    cohort_id: int
    key: str
    source: str
    kind: str
    stage: str
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
    stage: int | None = None
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


# ---------------------------------------------------------------- outgoing messages


@dataclass(frozen=True, slots=True)
class ScriptPost:
    """A post or talk part straight from the script."""

    text: str
    media: Media | None = None
    locale: str = "en"


@dataclass(frozen=True, slots=True)
class EnvelopeOffer:
    envelope_id: int
    total_minor: int
    currency: str
    shares: int
    expires_at: datetime
    caption: str | None
    locale: str
    timezone: str = "UTC"
    """The cohort's zone, for showing when the envelope expires."""


@dataclass(frozen=True, slots=True)
class EnvelopeSummary:
    envelope_id: int
    claimed: int
    shares: int
    claimed_minor: int
    total_minor: int
    currency: str
    luckiest_user_id: int | None
    luckiest_name: str | None
    luckiest_minor: int
    locale: str


@dataclass(frozen=True, slots=True)
class TaskAnnouncement:
    task_id: str
    title: str
    how: str
    reward_minor: int | None
    currency: str
    locale: str


@dataclass(frozen=True, slots=True)
class RewardNotice:
    task_id: str
    title: str
    amount_minor: int
    currency: str
    promoted_to: str | None
    locale: str


@dataclass(frozen=True, slots=True)
class AdmissionsOpen:
    """The batched group message inviting new responders on; never one per member.
    ``join_link``: the task group's join-request link, when the task group is bound."""

    new_responders: int
    total_responders: int
    locale: str
    join_link: str | None = None


@dataclass(frozen=True, slots=True)
class CohortPaused:
    """To the leader, privately: the cohort stopped because the bot lost its group.
    ``reason``: ``removed``, ``demoted`` (see ``missing``) or ``cannot_post``."""

    code: str
    reason: Literal["removed", "demoted", "cannot_post"]
    missing: tuple[str, ...]
    locale: str


@dataclass(frozen=True, slots=True)
class AdmissionNotice:
    """To a member, privately, about getting into the task group. ``outcome``:
    ``approved`` (welcome), ``link`` (a one-time personal link), ``not_replied`` or
    ``closed`` (a friendly refusal)."""

    outcome: Literal["approved", "link", "not_replied", "closed"]
    code: str
    locale: str
    link: str | None = None


Outgoing = (
    ScriptPost
    | EnvelopeOffer
    | EnvelopeSummary
    | TaskAnnouncement
    | RewardNotice
    | AdmissionsOpen
    | CohortPaused
    | AdmissionNotice
)


Right = Literal[
    "admin",
    "can_invite_users",
    "can_pin_messages",
    "can_delete_messages",
    "can_restrict_members",
    "see_messages",
]
"""A right the bot may need in a group. Which ones each kind of group needs is listed
once, here, below; the bot says how each one shows in Telegram."""


WARMUP_RIGHTS: tuple[Right, ...] = (
    "admin",
    "can_invite_users",
    "can_pin_messages",
    "can_delete_messages",
)
"""What the bot needs in a warm-up group: admin (to see every "1" and get ``chat_member``
updates), invite links (to attribute joins), pins (talks), deletes (slow mode)."""


TASK_GROUP_RIGHTS: tuple[Right, ...] = ("admin", "can_invite_users")
"""What the bot needs in a task group: admin (to get ``chat_member`` updates and join
requests) and invite links (the join-request link that admits those who replied)."""


class DeliveryError(Exception):
    """A send failed. ``definite``: Telegram said no, so nothing was posted; otherwise the
    outcome is unknown (timeout, connection lost) and a retry could duplicate the post."""

    def __init__(self, reason: str, *, definite: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.definite = definite


class ChatUnavailable(DeliveryError):
    """The bot was removed from the chat or lost the rights it needs there.
    ``cause``: ``removed``, ``demoted`` or ``cannot_post`` (Telegram refused otherwise)."""

    def __init__(
        self, reason: str, cause: Literal["removed", "demoted", "cannot_post"] = "cannot_post"
    ) -> None:
        super().__init__(reason, definite=True)
        self.cause: Literal["removed", "demoted", "cannot_post"] = cause


class Messenger(Protocol):
    async def send(self, chat_id: int, message: Outgoing, *, pin: bool = False) -> int:
        """Post into a chat; returns the message id. Raises DeliveryError."""
        ...

    async def edit(self, chat_id: int, message_id: int, message: Outgoing) -> None: ...

    async def set_slow_mode(self, chat_id: int, seconds: int) -> None: ...

    async def unpin(self, chat_id: int, message_id: int) -> None: ...

    async def notify(self, member: MemberRef, message: Outgoing) -> bool:
        """A private message; False when the member cannot be reached (never pressed
        Start, or blocked the bot)."""
        ...

    async def react(self, chat_id: int, message_id: int) -> None:
        """Acknowledge a member's message with a reaction (a "1" gets no reply)."""
        ...

    async def missing_rights(self, chat_id: int, needs: Sequence[Right]) -> list[Right]:
        """Which of ``needs`` the bot lacks in the chat (all of them if it is not there)."""
        ...

    async def create_invite_link(
        self,
        chat_id: int,
        name: str,
        *,
        join_request: bool = False,
        member_limit: int | None = None,
    ) -> str:
        """A new invite link into the chat (Telegram allows a member limit or join
        requests, not both)."""
        ...

    async def answer_join_request(self, chat_id: int, telegram_id: int, *, approve: bool) -> bool:
        """Approve or decline a pending join request; False if there was none any more."""
        ...


# ---------------------------------------------------------------- repositories


class CohortRepository(Protocol):
    async def create(self, cohort: NewCohort, created_at: datetime) -> CohortRecord: ...
    async def get(self, cohort_id: int) -> CohortRecord | None: ...
    async def by_chat(self, chat_id: int) -> CohortRecord | None: ...
    async def set_status(
        self, cohort_id: int, status: CohortStatus, reason: str | None, at: datetime
    ) -> None: ...
    async def open_pitch(self, cohort_id: int, at: datetime) -> None: ...
    async def bind_task_chat(self, cohort_id: int, chat_id: int) -> None: ...
    async def by_code(self, code: str) -> CohortRecord | None: ...
    async def open_pitches(self) -> list[CohortRecord]:
        """Running cohorts whose pitch window is open now."""
        ...

    async def note_admissions(
        self, cohort_id: int, previous: datetime | None, at: datetime
    ) -> bool:
        """Stamp the batched admissions message at ``at`` if the stamp is still
        ``previous``; False when another process stamped it first."""
        ...

    async def finish_due(self, now: datetime) -> list[int]:
        """Running cohorts past their end with no open step: mark finished."""
        ...

    async def close_pitch(self, cohort_id: int, at: datetime) -> None: ...
    async def move_chat(self, old_chat_id: int, new_chat_id: int) -> list[int]:
        """A group became a supergroup: rebind cohorts from the old chat id to the new
        one; returns the cohorts moved."""
        ...

    async def reserve(self, cohort_id: int, amount_minor: int) -> bool:
        """Add to the cohort's spend if it stays within budget; False (and nothing
        changed) when it would not."""
        ...

    async def release(self, cohort_id: int, amount_minor: int) -> None: ...


class StepRepository(Protocol):
    async def add_plan(self, cohort_id: int, steps: Sequence[PlannedStep]) -> int: ...
    async def claim_due(
        self, now: datetime, owner: str, lease_until: datetime, limit: int
    ) -> list[StepRunRecord]:
        """Lease up to ``limit`` pending runs due by ``now`` of running cohorts, oldest
        first, skipping rows another process holds. A talk part is claimed only once
        every earlier part of its talk is done or skipped, so parts go out in order."""
        ...

    async def expire_leases(self, now: datetime) -> list[StepRunRecord]:
        """Runs whose lease ran out mid-send become ``unknown``; returns them."""
        ...

    async def hold_later_parts(self, cohort_id: int, source: str, part: int, reason: str) -> int:
        """Pending parts after ``part`` of the talk ``source`` become ``held`` with
        ``reason`` as their error; returns how many."""
        ...

    async def talk_parts(self, cohort_id: int, source: str) -> list[StepRunRecord]:
        """Every part of the talk ``source``, in order."""
        ...

    async def release_held(self, run_id: int, due_at: datetime) -> bool:
        """A held run becomes pending, due at ``due_at``; False if it was not held."""
        ...

    async def skip(self, cohort_id: int, key: str, at: datetime, reason: str) -> bool:
        """An unknown or failed run is marked skipped with ``reason``; False otherwise."""
        ...

    async def finish(
        self,
        run_id: int,
        status: StepStatus,
        at: datetime,
        outcome: Mapping[str, object] | None = None,
        error: str | None = None,
    ) -> None: ...
    async def postpone(self, run_id: int, due_at: datetime) -> None:
        """Back to pending with a later due time (nothing was done yet)."""
        ...

    async def release_claim(self, run_id: int) -> None:
        """Back to pending (nothing was sent); used when a cohort pauses mid-tick."""
        ...

    async def get(self, cohort_id: int, key: str) -> StepRunRecord | None: ...
    async def retry(self, cohort_id: int, key: str, at: datetime, by: str | None = None) -> bool:
        """An unknown, failed or skipped run becomes due at ``at`` (``by``: who asked,
        kept in its outcome); False otherwise."""
        ...

    async def next_due_at(self) -> datetime | None: ...
    async def open_count(self, cohort_id: int) -> int: ...
    async def next_pending(self, cohort_id: int) -> StepRunRecord | None: ...
    async def attention(self, cohort_id: int) -> list[StepRunRecord]:
        """Runs whose outcome is unknown, that failed, or that are held waiting for a
        decision on one of those: what ops should look at."""
        ...


class MemberRepository(Protocol):
    async def ensure_user(
        self, telegram_id: int, name: str, language: str | None, at: datetime
    ) -> MemberRef: ...
    async def by_ref(self, ref_code: str) -> MemberRef | None: ...
    async def resolve_many(
        self, refs: Sequence[str], telegram_ids: Sequence[int]
    ) -> tuple[dict[str, MemberRef], dict[int, MemberRef]]:
        """Members of a batch by ref code and by Telegram id."""
        ...

    async def current_cohorts(self, user_ids: Sequence[int]) -> dict[int, int]:
        """``current_cohort`` for many members (absent: none)."""
        ...

    async def by_telegram(self, telegram_id: int) -> MemberRef | None: ...
    async def join(
        self,
        cohort_id: int,
        members: Sequence[tuple[int, int | None]],
        capacity: int,
        at: datetime,
    ) -> dict[int, str]:
        """Record entries into the warm-up group: (user id, inviter id) pairs. Per user:
        "joined", "rejoined" (clears ``left_at``, keeps the stage), "member" (already
        in), or "full" (past capacity, nothing written)."""
        ...

    async def leave(self, cohort_id: int, user_id: int, at: datetime) -> None: ...
    async def count(self, cohort_id: int) -> int: ...
    async def stage(self, cohort_id: int, user_id: int) -> Stage | None: ...
    async def advance(self, cohort_id: int, user_id: int, stage: Stage, at: datetime) -> bool:
        """Move forward to ``stage`` (stamping its time) if not already there or beyond."""
        ...

    async def advance_many(
        self, cohort_id: int, user_ids: Sequence[int], stage: Stage, at: datetime
    ) -> int:
        """``advance`` for many members at once; returns how many moved."""
        ...

    async def record_reply(
        self, cohort_id: int, user_id: int, at: datetime, opened_since: datetime
    ) -> bool:
        """A member's first "1": stamp ``replied_at`` (and ``engaged_at`` if unset) and
        move to at least REPLIED, in one statement, provided the cohort's pitch window is
        open (posted at or after ``opened_since`` and not closed). False when nothing
        changed: not a member, replied before, or the window is not open."""
        ...

    async def add_activity(self, cohort_id: int, counts: Mapping[int, int], day: date) -> None: ...
    async def responders_since(self, cohort_id: int, since: datetime | None) -> tuple[int, int]:
        """(replied after ``since``, replied in all)."""
        ...

    async def current_cohort(self, user_id: int) -> int | None:
        """The cohort in whose task stage the member is (latest admitted)."""
        ...

    async def name(self, user_id: int) -> str | None: ...
    async def set_role_at_least(self, user_id: int, role: int) -> None: ...
    async def ref(self, user_id: int) -> MemberRef | None: ...
    async def latest_cohort(self, user_id: int) -> int | None:
        """The running cohort the user joined last (warm-up or task stage)."""
        ...

    async def role(self, user_id: int) -> int:
        """The user's role (``funnels.stages.Role`` value)."""
        ...

    async def grant(self, user_id: int, role: int, region_id: int | None) -> None:
        """Raise the user's role to at least ``role`` and set their region."""
        ...

    async def region(self, user_id: int) -> int | None: ...
    async def set_locale(self, user_id: int, locale: str) -> None: ...
    async def set_reachable(self, telegram_id: int, reachable: bool, at: datetime) -> None: ...
    async def stage_counts(self, cohort_id: int) -> dict[Stage, int]:
        """How many members reached each stage (a member counts for every stage up to
        the furthest reached; members who left count too)."""
        ...


class EnvelopeRepository(Protocol):
    async def open(
        self,
        cohort_id: int,
        step_key: str,
        currency: str,
        amounts: Sequence[int],
        opened_at: datetime,
        expires_at: datetime,
    ) -> EnvelopeRecord:
        """Create the envelope and its pre-split shares, or return the existing one."""
        ...

    async def set_message(self, envelope_id: int, chat_id: int, message_id: int) -> None: ...
    async def get(self, envelope_id: int) -> EnvelopeRecord | None: ...
    async def by_step(self, cohort_id: int, step_key: str) -> EnvelopeRecord | None: ...
    async def claim(self, envelope_id: int, user_id: int, at: datetime) -> ShareClaim: ...
    async def claim_many(
        self, envelope_id: int, user_ids: Sequence[int], at: datetime
    ) -> dict[int, ShareClaim]:
        """Claims for a batch of taps in tap order (shares go to the first comers)."""
        ...

    async def close(self, envelope_id: int, at: datetime) -> EnvelopeRecord | None:
        """Mark closed; returns the record only to the one caller that closed it."""
        ...

    async def luckiest(self, envelope_id: int) -> tuple[int, int] | None:
        """(user id, amount) of the largest claimed share."""
        ...

    async def full_and_open(self, limit: int) -> list[int]:
        """Envelopes whose every share is claimed but that are not closed yet (the
        process died between the last tap and its close), oldest first."""
        ...


class TaskRepository(Protocol):
    async def progress_many(
        self, keys: Sequence[tuple[int, int, str]], at: datetime
    ) -> dict[tuple[int, int, str], TaskProgressRecord]:
        """Progress rows for (cohort, user, task) triples, created where missing and
        locked against concurrent batches."""
        ...

    async def for_member(self, cohort_id: int, user_id: int) -> dict[str, TaskProgressRecord]:
        """A member's progress rows by task id (read only)."""
        ...

    async def unique_values_many(
        self, progress_ids: Sequence[int], values: Sequence[str]
    ) -> dict[tuple[int, int], set[str]]:
        """Which of ``values`` each (progress id, leaf) has already counted."""
        ...

    async def save_many(
        self,
        rows: Sequence[tuple[int, Mapping[int, int], datetime | None, str | None]],
        at: datetime,
    ) -> None:
        """(id, progress, completed_at, reward status); None keeps what is stored."""
        ...

    async def add_unique_many(self, rows: Sequence[tuple[int, int, str]]) -> None:
        """Remember (progress id, leaf, value) triples as counted."""
        ...

    async def save(
        self,
        progress_id: int,
        progress: Mapping[int, int],
        completed_at: datetime | None,
        at: datetime,
    ) -> None: ...


class EventRepository(Protocol):
    async def store(
        self, source: str, events: Sequence[IncomingEvent], at: datetime
    ) -> dict[str, int]:
        """Insert events, ignoring (source, id) duplicates, also within the batch;
        returns event id -> row id for the rows that were new."""
        ...

    async def mark_handled(
        self, ids: Sequence[tuple[int, int | None, int | None, str]], at: datetime
    ) -> None:
        """(event row id, user id, cohort id, outcome) for each handled event."""
        ...


@dataclass(frozen=True, slots=True)
class InviteLinkRecord:
    link: str
    chat_id: int
    cohort_id: int
    owner_id: int | None
    kind: Literal["leader", "member", "admission", "personal"]


class InviteLinkRepository(Protocol):
    async def add(self, record: InviteLinkRecord, at: datetime) -> None: ...
    async def get(self, link: str) -> InviteLinkRecord | None: ...
    async def find(
        self, cohort_id: int, kind: str, owner_id: int | None = None
    ) -> InviteLinkRecord | None:
        """The newest link of ``kind`` in the cohort (for ``owner_id`` when given)."""
        ...

    async def move_chat(self, old_chat_id: int, new_chat_id: int) -> None: ...


@dataclass(frozen=True, slots=True)
class RegionRecord:
    id: int
    code: str
    name: str
    timezone: str
    weekly_target: int


class RegionRepository(Protocol):
    async def add(
        self, code: str, name: str, timezone: str, weekly_target: int, at: datetime
    ) -> RegionRecord:
        """Raises AlreadyExists when the code is taken."""
        ...

    async def by_code(self, code: str) -> RegionRecord | None: ...
    async def get(self, region_id: int) -> RegionRecord | None: ...
    async def all(self) -> list[RegionRecord]: ...


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


class LedgerRepository(Protocol):
    async def credit(
        self,
        key: str,
        user_id: int,
        cohort_id: int | None,
        kind: str,
        ref: str,
        amount_minor: int,
        currency: str,
        at: datetime,
    ) -> bool:
        """Write an entry once per idempotency key; False if the key was used."""
        ...

    async def credit_many(self, entries: Sequence[LedgerCredit], at: datetime) -> int:
        """``credit`` for many entries; returns how many were new."""
        ...

    async def balance(self, user_id: int) -> dict[str, int]: ...


@dataclass(frozen=True, slots=True)
class UpdateBatch:
    """The Telegram updates a piece of work came from (the bot's id and the update ids),
    so that the work and "these updates are handled" are committed together: a crash
    then neither loses the work nor does it twice."""

    bot_id: int
    update_ids: tuple[int, ...]


class UpdateLog(Protocol):
    async def mark_handled(self, bot_id: int, update_ids: Sequence[int], at: datetime) -> None: ...


class Transaction(Protocol):
    @property
    def cohorts(self) -> CohortRepository: ...
    @property
    def steps(self) -> StepRepository: ...
    @property
    def members(self) -> MemberRepository: ...
    @property
    def envelopes(self) -> EnvelopeRepository: ...
    @property
    def tasks(self) -> TaskRepository: ...
    @property
    def events(self) -> EventRepository: ...
    @property
    def ledger(self) -> LedgerRepository: ...
    @property
    def links(self) -> InviteLinkRepository: ...
    @property
    def regions(self) -> RegionRepository: ...
    @property
    def updates(self) -> UpdateLog: ...

    async def commit(self) -> None: ...


class Store(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A unit of work: commits only on ``commit()``, rolls back otherwise."""
        ...
