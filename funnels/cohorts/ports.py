"""What the cohorts slice asks of storage (launching, ticking, pausing and reporting on
cohorts): for each repository, only the methods its use cases call, and the unit of
work that carries them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from funnels.kernel.records import (
    CohortRecord,
    CohortStatus,
    EnvelopeRecord,
    MemberGroupRecord,
    MemberGroupState,
    MemberRef,
    NewCohort,
    StepRunRecord,
    StepStatus,
    TaskProgressRecord,
)
from funnels.kernel.stages import Role, Stage
from funnels.scripts.planner import PlannedStep


class Cohorts(Protocol):
    async def bind_task_chat(self, cohort_id: int, chat_id: int) -> None: ...
    async def by_chat(self, chat_id: int) -> CohortRecord | None: ...
    async def by_code(self, code: str) -> CohortRecord | None: ...
    async def close_pitch(self, cohort_id: int, at: datetime) -> None: ...
    async def create(self, cohort: NewCohort, created_at: datetime) -> CohortRecord: ...
    async def finish_due(self, now: datetime) -> list[int]:
        """Running cohorts past their end with no open step: mark finished."""
        ...

    async def get(self, cohort_id: int) -> CohortRecord | None: ...
    async def graduated_from(self, user_id: int) -> CohortRecord | None:
        """The cohort a member graduated from: the latest in which they became a
        supervisor, else the latest they joined (None: no cohort at all)."""
        ...

    async def move_chat(self, old_chat_id: int, new_chat_id: int) -> list[int]:
        """A group became a supergroup: rebind cohorts from the old chat id to the new
        one; returns the cohorts moved."""
        ...

    async def open_pitch(self, cohort_id: int, at: datetime) -> bool:
        """Open the reply window at ``at`` unless it is open already; whether it was
        opened now."""
        ...

    async def withdraw_pitch(self, cohort_id: int, at: datetime) -> None:
        """Close again the window opened at ``at``, as if it never opened (its post
        failed)."""
        ...

    async def set_status(
        self, cohort_id: int, status: CohortStatus, reason: str | None, at: datetime
    ) -> None: ...


class Envelopes(Protocol):
    async def by_step(self, cohort_id: int, step_key: str) -> EnvelopeRecord | None: ...


class Links(Protocol):
    async def move_chat(self, old_chat_id: int, new_chat_id: int) -> None: ...


class MemberGroups(Protocol):
    """Members' own groups for the group task (see :mod:`funnels.cohorts.member_groups`)."""

    async def active_in(self, chat_id: int) -> MemberGroupRecord | None:
        """The group registered in ``chat_id`` that the bot has not left."""
        ...

    async def active_of(
        self, cohort_id: int, owner_id: int, task_id: str
    ) -> MemberGroupRecord | None: ...
    async def add(
        self, chat_id: int, owner_id: int, cohort_id: int, task_id: str, at: datetime
    ) -> MemberGroupRecord: ...
    async def counted(self, group_id: int, count: int, at: datetime) -> None: ...
    async def get(self, group_id: int) -> MemberGroupRecord | None: ...
    async def mark_left(self, group_id: int, at: datetime) -> bool: ...
    async def move_chat(self, old_chat_id: int, new_chat_id: int) -> None:
        """A member's group became a supergroup: follow it to its new chat id."""
        ...

    async def move(
        self, group_id: int, expected: MemberGroupState, state: MemberGroupState
    ) -> bool:
        """``expected`` -> ``state`` for a group the bot is still in; False if it was not
        in ``expected`` (someone else moved it first)."""
        ...

    async def needing_care(self, now: datetime, count_before: datetime) -> list[MemberGroupRecord]:
        """Groups the bot is in whose cohort is over, whose talk is under way, or which
        are still counting and were last counted before ``count_before``."""
        ...


class Members(Protocol):
    async def current_cohort(self, user_id: int) -> int | None:
        """The cohort in whose task stage the member is (latest admitted)."""
        ...

    async def stage_counts(self, cohort_id: int) -> dict[Stage, int]:
        """How many members reached each stage (a member counts for every stage up to
        the furthest reached; members who left count too)."""
        ...


class Steps(Protocol):
    async def add_plan(self, cohort_id: int, steps: Sequence[PlannedStep]) -> int: ...
    async def attention(self, cohort_id: int) -> list[StepRunRecord]:
        """Runs whose outcome is unknown, that failed, or that are held waiting for a
        decision on one of those: what ops should look at."""
        ...

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

    async def finish(
        self,
        run_id: int,
        status: StepStatus,
        at: datetime,
        outcome: Mapping[str, object] | None = None,
        error: str | None = None,
    ) -> None: ...
    async def get(self, cohort_id: int, key: str) -> StepRunRecord | None: ...
    async def hold_later_parts(self, cohort_id: int, source: str, part: int, reason: str) -> int:
        """Pending parts after ``part`` of the talk ``source`` become ``held`` with
        ``reason`` as their error; returns how many."""
        ...

    async def next_due_at(self) -> datetime | None:
        """When the earliest run the tick could claim is due (it may be past: due, and
        not yet claimed); None when nothing is planned."""
        ...

    async def next_pending(self, cohort_id: int) -> StepRunRecord | None: ...
    async def postpone(self, run_id: int, due_at: datetime) -> None:
        """Back to pending with a later due time (nothing was done yet)."""
        ...

    async def release_claim(self, run_id: int) -> None:
        """Back to pending (nothing was sent); used when a cohort pauses mid-tick."""
        ...

    async def talk_parts(self, cohort_id: int, source: str) -> list[StepRunRecord]:
        """The runs of one talk's parts, in order."""
        ...


class Ledger(Protocol):
    async def untold_rewards(
        self, cohort_id: int, since: datetime, until: datetime, limit: int
    ) -> tuple[list[tuple[str, str]], int]:
        """Task rewards credited in ``[since, until)`` to members the bot cannot write
        to privately: (name, task id) of the first ``limit``, and how many in all."""
        ...


class Tasks(Protocol):
    async def for_member(self, cohort_id: int, user_id: int) -> dict[str, TaskProgressRecord]:
        """A member's progress rows by task id (read only)."""
        ...


class Users(Protocol):
    async def by_telegram(self, telegram_id: int) -> MemberRef | None: ...
    async def ensure_user(
        self, telegram_id: int, name: str, language: str | None, at: datetime
    ) -> MemberRef: ...
    async def ref(self, user_id: int) -> MemberRef | None: ...
    async def region(self, user_id: int) -> int | None: ...
    async def role(self, user_id: int) -> Role | None: ...


class CohortsTx(Protocol):
    """One unit of work as the cohorts use cases see it."""

    @property
    def cohorts(self) -> Cohorts: ...
    @property
    def envelopes(self) -> Envelopes: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def links(self) -> Links: ...
    @property
    def member_groups(self) -> MemberGroups: ...
    @property
    def members(self) -> Members: ...
    @property
    def steps(self) -> Steps: ...
    @property
    def tasks(self) -> Tasks: ...
    @property
    def users(self) -> Users: ...

    async def commit(self) -> None: ...
