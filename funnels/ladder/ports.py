"""What the ladder slice asks of storage (platform events, task progress, rewards): for
each repository, only the methods its use cases call, and the unit of work that
carries them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime
from typing import Protocol

from funnels.kernel.actions import ActionLog
from funnels.kernel.records import (
    CohortRecord,
    EventIfHolder,
    FanLockRequest,
    IncomingEvent,
    LedgerCredit,
    MemberRef,
    PayoutRecord,
    PayoutStatus,
    ProofRecord,
    ProofState,
    ReminderCandidate,
    RewardDue,
    TaskProgressRecord,
    TrackedLinkRecord,
)
from funnels.kernel.stages import Role, Stage


class Cohorts(Protocol):
    async def by_code(self, code: str) -> CohortRecord | None: ...
    async def get(self, cohort_id: int) -> CohortRecord | None: ...
    async def get_many(self, cohort_ids: Sequence[int]) -> dict[int, CohortRecord]: ...
    async def lock_budgets(self, cohort_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Each cohort's (budget, spent) in minor units, its row held until the
        transaction ends (taken in id order)."""
        ...

    async def read_budgets(self, cohort_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Each cohort's (budget, spent) in minor units as committed, not held."""
        ...

    async def spend_many(self, amounts: Mapping[int, int]) -> None:
        """Add to cohorts' spend (cohort id -> minor units), unchecked: for rows held
        with :meth:`lock_budgets`."""
        ...

    async def raise_budget(self, cohort_id: int, amount_minor: int) -> int:
        """Add to the cohort's budget; returns the new budget."""

    async def running(self, now: datetime) -> list[CohortRecord]:
        """Running cohorts that have not ended by ``now``."""
        ...

    async def release(self, cohort_id: int, amount_minor: int) -> None: ...
    async def reserve(self, cohort_id: int, amount_minor: int) -> bool:
        """Add to the cohort's spend if it stays within budget; False (and nothing
        changed) when it would not."""
        ...


WAITING = frozenset({"unknown_member", "no_task_stage"})
"""Outcomes that leave an event waiting for its member rather than handled."""


class Events(Protocol):
    async def claim(
        self,
        ids: Sequence[int] | None,
        limit: int,
        received_before: datetime | None = None,
        *,
        least: int | None = None,
    ) -> list[tuple[int, IncomingEvent]]:
        """Up to ``limit`` unapplied events (row id, event), oldest first: the pending
        ones (received before ``received_before``, if given), or with ``ids`` those of
        them still pending or waiting; held until the transaction ends (another process
        skips them).

        With ``least``, the end of the queue is shared: where fewer than twice ``limit``
        pending events are left that no applier has claimed, half of them are taken (at
        least ``least``), so that appliers side by side finish together instead of one
        finishing a full batch after the others are done. (PostgreSQL; a single writer
        takes ``limit``.)"""
        ...

    async def oldest_pending(self) -> datetime | None:
        """When the first pending event (in the order claims take them) was received;
        None when nothing is pending. One row read, however long the queue."""
        ...

    async def expire_waiting(self, received_before: datetime, at: datetime) -> int: ...

    async def mark_handled(
        self, ids: Sequence[tuple[int, int | None, int | None, str]], at: datetime
    ) -> None:
        """(event row id, user id, cohort id, outcome) for each applied event; an
        outcome in :data:`WAITING` leaves it waiting."""
        ...

    async def store(
        self, source: str, events: Sequence[IncomingEvent], at: datetime
    ) -> dict[str, int]:
        """Insert events as pending, ignoring (source, id) duplicates, also within the
        batch; returns event id -> row id for the rows that were new."""
        ...

    async def hold_members(self, user_ids: Sequence[int]) -> set[int]:
        """Take these members for applying their events until the transaction ends,
        without waiting; the ones taken. The others' events are being applied by another
        transaction right now: this one leaves them for later."""
        ...

    async def tally(self) -> dict[tuple[str, str | None], int]: ...

    async def waiting_ready(self, limit: int) -> list[int]:
        """Waiting events whose member is now known and in a running task group."""
        ...


class Ledger(Protocol):
    async def balance(self, user_id: int) -> dict[str, int]: ...
    async def credit(self, entry: LedgerCredit, at: datetime) -> bool:
        """Write an entry once per idempotency key; False if the key was used."""
        ...

    async def credit_many(self, entries: Sequence[LedgerCredit], at: datetime) -> int:
        """:meth:`credit` for many entries; how many were written."""
        ...

    async def credited(self, keys: Sequence[str]) -> set[str]:
        """Which of these idempotency keys have an entry already."""
        ...


class Members(Protocol):
    async def advance(self, cohort_id: int, user_id: int, stage: Stage, at: datetime) -> bool:
        """Move forward to ``stage`` (stamping its time) if not already there or beyond."""
        ...

    async def advance_each(self, stage: Stage, moves: Sequence[tuple[int, int, datetime]]) -> int:
        """:meth:`advance` for many members, each at their own time (cohort, user, at)."""
        ...

    async def current_cohort(self, user_id: int) -> int | None:
        """The cohort in whose task stage the member is (latest admitted)."""
        ...

    async def current_cohorts(self, user_ids: Sequence[int]) -> dict[int, int]:
        """``current_cohort`` for many members (absent: none)."""
        ...


class Payouts(Protocol):
    """Task rewards on their way out: owed ones waiting for budget, credited ones waiting
    for their ``reward.granted`` event to be delivered."""

    async def owing(self, cohort_ids: Sequence[int]) -> set[int]:
        """Which of these cohorts have a reward owed."""
        ...

    async def owe_many(self, rewards: Sequence[tuple[RewardDue, bool]], at: datetime) -> None:
        """Record rewards the budget cannot cover (reward, whether to tell the leader),
        once per key, in the order given."""
        ...

    async def queue_many(self, rewards: Sequence[tuple[RewardDue, str]], at: datetime) -> None:
        """Queue credited rewards' events (reward, body) for delivery, once per key."""
        ...

    async def owed(self, cohort_id: int) -> list[PayoutRecord]:
        """The cohort's owed rewards, oldest first, locked until the transaction ends."""
        ...

    async def grant_owed(self, payout: PayoutRecord, body: str, at: datetime) -> None:
        """An owed reward credited now: its event queued, the member to be told."""
        ...

    async def claim_due(
        self, now: datetime, owner: str, lease_until: datetime, limit: int
    ) -> list[PayoutRecord]:
        """Pending payouts due by ``now`` and in nobody's hands, leased to ``owner``."""
        ...

    async def delivered(self, payout_ids: Sequence[int], owner: str, at: datetime) -> int:
        """Mark payouts still leased to ``owner`` delivered; how many were."""
        ...

    async def retry_later(self, payout_id: int, owner: str, at: datetime, error: str) -> bool: ...
    async def park(self, payout_id: int, owner: str, at: datetime, error: str) -> bool: ...
    async def owed_totals(self, cohort_id: int) -> tuple[int, int]:
        """How many of the cohort's rewards are owed, and their sum in minor units."""
        ...

    async def take_notices(self, limit: int) -> list[PayoutRecord]:
        """Payouts whose member (and maybe leader) is still to be told, marked told."""
        ...

    async def get(self, payout_id: int) -> PayoutRecord | None: ...
    async def listing(self, statuses: Sequence[PayoutStatus], limit: int) -> list[PayoutRecord]: ...
    async def count(self, statuses: Sequence[PayoutStatus]) -> int: ...
    async def retry_parked(self, payout_ids: Sequence[int] | None, at: datetime) -> list[int]: ...


class Reminders(Protocol):
    async def candidates(self, cohort_id: int, day: date, limit: int) -> list[ReminderCandidate]:
        """Up to ``limit`` members of the cohort's task stage who are still there, can be
        reached, and have had no reminder on ``day``."""
        ...

    async def claim_many(
        self, claims: Sequence[tuple[int, str]], day: date, cohort_id: int, at: datetime
    ) -> set[int]:
        """Each member's one reminder of ``day`` ((user id, segment) pairs); the user ids
        claimed now (the others had theirs already)."""
        ...

    async def delivered(self, user_ids: Sequence[int], day: date, delivered: bool) -> None: ...


class Tasks(Protocol):
    async def add_unique_many(self, rows: Sequence[tuple[int, int, str]]) -> None:
        """Remember (progress id, leaf, value) triples as counted."""
        ...

    async def for_member(self, cohort_id: int, user_id: int) -> dict[str, TaskProgressRecord]:
        """A member's progress rows by task id (read only)."""
        ...

    async def progress_many(
        self, keys: Sequence[tuple[int, int, str]], at: datetime
    ) -> dict[tuple[int, int, str], TaskProgressRecord]:
        """Progress rows for (cohort, user, task) triples, created where missing and
        locked against concurrent batches."""
        ...

    async def save_many(
        self, rows: Sequence[tuple[int, Mapping[int, int], datetime | None]], at: datetime
    ) -> None:
        """(id, progress, completed_at); a None completion keeps what is stored."""
        ...

    async def rewarded_many(self, rows: Sequence[tuple[int, str]]) -> None:
        """The reward status of finished tasks' progress rows: (id, status)."""
        ...

    async def unique_values_many(
        self, progress_ids: Sequence[int], values: Sequence[str]
    ) -> dict[tuple[int, int], set[str]]:
        """Which of ``values`` each (progress id, leaf) has already counted."""
        ...


class Users(Protocol):
    async def by_telegram(self, telegram_id: int) -> MemberRef | None: ...
    async def ref(self, user_id: int) -> MemberRef | None: ...
    async def ref_code(self, user_id: int) -> str: ...
    async def ref_codes(self, user_ids: Sequence[int]) -> dict[int, tuple[str, int | None]]:
        """Each user's ref code and Telegram id."""
        ...

    async def resolve_many(
        self, refs: Sequence[str], telegram_ids: Sequence[int]
    ) -> tuple[dict[str, MemberRef], dict[int, MemberRef]]:
        """Members of a batch by ref code and by Telegram id."""
        ...

    async def set_role_at_least(self, user_id: int, role: Role) -> None: ...


class _KnowsUsers(Protocol):
    async def by_telegram(self, telegram_id: int) -> MemberRef | None: ...


class _KnowsTaskStage(Protocol):
    async def current_cohort(self, user_id: int) -> int | None: ...


class _KnowsCohorts(Protocol):
    async def get(self, cohort_id: int) -> CohortRecord | None: ...


class FindsTaskGroup(Protocol):
    """What finding a member's task group takes (every ladder unit of work has it)."""

    @property
    def cohorts(self) -> _KnowsCohorts: ...
    @property
    def members(self) -> _KnowsTaskStage: ...
    @property
    def users(self) -> _KnowsUsers: ...


class LadderTx(Protocol):
    """One unit of work as the ladder use cases see it."""

    @property
    def cohorts(self) -> Cohorts: ...
    @property
    def events(self) -> Events: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def members(self) -> Members: ...
    @property
    def payouts(self) -> Payouts: ...
    @property
    def reminders(self) -> Reminders: ...
    @property
    def tasks(self) -> Tasks: ...
    @property
    def users(self) -> Users: ...
    @property
    def ops_actions(self) -> ActionLog: ...

    def savepoint(self) -> AbstractAsyncContextManager[Savepoint]:
        """A part of the transaction that can be rolled back alone (its writes and the
        row locks it took), or kept with the rest."""
        ...

    async def commit(self) -> None: ...


class Savepoint(Protocol):
    async def rollback(self) -> None:
        """Undo what was written since the savepoint; the transaction goes on."""
        ...


# ---------------------------------------------------------------- proofs (screenshots)


class Proofs(Protocol):
    async def add(
        self, cohort_id: int, user_id: int, task_id: str, file_id: str, at: datetime
    ) -> int | None:
        """Store a pending proof; None (nothing stored) when the member already has one
        pending for the task."""
        ...

    async def get(self, proof_id: int) -> ProofRecord | None: ...

    async def decide(
        self,
        proof_id: int,
        state: ProofState,
        reason: str | None,
        decided_by: int | None,
        at: datetime,
    ) -> bool:
        """Decide a pending proof; False (nothing changed) when it was decided already."""
        ...


class ProofUsers(Protocol):
    async def by_telegram(self, telegram_id: int) -> MemberRef | None: ...
    async def name(self, user_id: int) -> str | None: ...
    async def ref(self, user_id: int) -> MemberRef | None: ...
    async def ref_code(self, user_id: int) -> str: ...


class ProofsTx(Protocol):
    """One unit of work as the proof use cases see it."""

    @property
    def cohorts(self) -> Cohorts: ...
    @property
    def members(self) -> Members: ...
    @property
    def proofs(self) -> Proofs: ...
    @property
    def tasks(self) -> Tasks: ...
    @property
    def users(self) -> ProofUsers: ...

    async def commit(self) -> None: ...


# ---------------------------------------------------------------- tracked links


class TrackedLinks(Protocol):
    async def by_code(self, code: str) -> TrackedLinkRecord | None: ...
    async def ensure(
        self, cohort_id: int, user_id: int, task_ids: Sequence[str], at: datetime
    ) -> dict[str, str]:
        """The member's link codes by task id for ``task_ids``, made where missing."""
        ...

    async def lock_fans_and_store(
        self,
        locks: Sequence[FanLockRequest],
        source: str,
        events: Sequence[EventIfHolder],
        at: datetime,
    ) -> int:
        """Lock each (cohort, visitor) of ``locks`` not locked yet (first come wins),
        then store as :meth:`Events.store` does each event whose holder, if it names
        one, holds its visitor's lock afterwards; how many events were new. One
        statement where the database allows (it fits
        :meth:`~funnels.kernel.uow.UnitOfWork.one_statement`)."""
        ...

    async def secret(self, name: str, candidate: str, at: datetime) -> str:
        """The installation's secret ``name``; ``candidate`` is stored if none is."""
        ...


class LinksTx(Protocol):
    """One unit of work as the tracked-link use cases see it."""

    @property
    def cohorts(self) -> Cohorts: ...
    @property
    def members(self) -> Members: ...
    @property
    def tasks(self) -> Tasks: ...
    @property
    def tracked_links(self) -> TrackedLinks: ...
    @property
    def users(self) -> Users: ...

    async def commit(self) -> None: ...
