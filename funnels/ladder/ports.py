"""What the ladder slice asks of storage (platform events, task progress, rewards): for
each repository, only the methods its use cases call, and the unit of work that
carries them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Protocol

from funnels.kernel.records import (
    CohortRecord,
    IncomingEvent,
    LedgerCredit,
    MemberRef,
    ReminderCandidate,
    TaskProgressRecord,
)
from funnels.kernel.stages import Role, Stage


class Cohorts(Protocol):
    async def get(self, cohort_id: int) -> CohortRecord | None: ...
    async def running(self, now: datetime) -> list[CohortRecord]:
        """Running cohorts that have not ended by ``now``."""
        ...

    async def release(self, cohort_id: int, amount_minor: int) -> None: ...
    async def reserve(self, cohort_id: int, amount_minor: int) -> bool:
        """Add to the cohort's spend if it stays within budget; False (and nothing
        changed) when it would not."""
        ...


class Events(Protocol):
    async def mark_handled(
        self, ids: Sequence[tuple[int, int | None, int | None, str]], at: datetime
    ) -> None:
        """(event row id, user id, cohort id, outcome) for each handled event."""
        ...

    async def store(
        self, source: str, events: Sequence[IncomingEvent], at: datetime
    ) -> dict[str, int]:
        """Insert events, ignoring (source, id) duplicates, also within the batch;
        returns event id -> row id for the rows that were new."""
        ...


class Ledger(Protocol):
    async def balance(self, user_id: int) -> dict[str, int]: ...
    async def credit(self, entry: LedgerCredit, at: datetime) -> bool:
        """Write an entry once per idempotency key; False if the key was used."""
        ...


class Members(Protocol):
    async def advance(self, cohort_id: int, user_id: int, stage: Stage, at: datetime) -> bool:
        """Move forward to ``stage`` (stamping its time) if not already there or beyond."""
        ...

    async def current_cohort(self, user_id: int) -> int | None:
        """The cohort in whose task stage the member is (latest admitted)."""
        ...

    async def current_cohorts(self, user_ids: Sequence[int]) -> dict[int, int]:
        """``current_cohort`` for many members (absent: none)."""
        ...


class Reminders(Protocol):
    async def candidates(self, cohort_id: int, day: date, limit: int) -> list[ReminderCandidate]:
        """Up to ``limit`` members of the cohort's task stage who are still there, can be
        reached, and have had no reminder on ``day``."""
        ...

    async def claim(
        self, user_id: int, day: date, cohort_id: int, segment: str, at: datetime
    ) -> bool:
        """The member's one reminder of ``day``; False if it was claimed already."""
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
        self,
        rows: Sequence[tuple[int, Mapping[int, int], datetime | None, str | None]],
        at: datetime,
    ) -> None:
        """(id, progress, completed_at, reward status); None keeps what is stored."""
        ...

    async def unique_values_many(
        self, progress_ids: Sequence[int], values: Sequence[str]
    ) -> dict[tuple[int, int], set[str]]:
        """Which of ``values`` each (progress id, leaf) has already counted."""
        ...


class Users(Protocol):
    async def by_telegram(self, telegram_id: int) -> MemberRef | None: ...
    async def resolve_many(
        self, refs: Sequence[str], telegram_ids: Sequence[int]
    ) -> tuple[dict[str, MemberRef], dict[int, MemberRef]]:
        """Members of a batch by ref code and by Telegram id."""
        ...

    async def set_role_at_least(self, user_id: int, role: Role) -> None: ...


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
    def reminders(self) -> Reminders: ...
    @property
    def tasks(self) -> Tasks: ...
    @property
    def users(self) -> Users: ...

    async def commit(self) -> None: ...
