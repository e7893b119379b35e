"""What the ops slice asks of storage (deciding on steps in doubt, reading reports): for
each repository, only the methods its use cases call, and the units of work that carry
them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple, Protocol

from funnels.kernel.records import (
    CohortRecord,
    StepRunRecord,
)
from funnels.kernel.stages import Stage


class Cohorts(Protocol):
    async def by_code(self, code: str) -> CohortRecord | None: ...


class Steps(Protocol):
    async def attention(self, cohort_id: int) -> list[StepRunRecord]:
        """Runs whose outcome is unknown, that failed, or that are held waiting for a
        decision on one of those: what ops should look at."""
        ...

    async def get(self, cohort_id: int, key: str) -> StepRunRecord | None: ...
    async def release_held(self, run_id: int, due_at: datetime) -> bool:
        """A held run becomes pending, due at ``due_at``; False if it was not held."""
        ...

    async def retry(self, cohort_id: int, key: str, at: datetime, by: str | None = None) -> bool:
        """An unknown, failed or skipped run becomes due at ``at`` (``by``: who asked,
        kept in its outcome); False otherwise."""
        ...

    async def skip(self, cohort_id: int, key: str, at: datetime, reason: str) -> bool:
        """An unknown or failed run is marked skipped with ``reason``; False otherwise."""
        ...

    async def talk_parts(self, cohort_id: int, source: str) -> list[StepRunRecord]:
        """Every part of the talk ``source``, in order."""
        ...


class OpsTx(Protocol):
    """One unit of work as the ops use cases see it."""

    @property
    def cohorts(self) -> Cohorts: ...
    @property
    def steps(self) -> Steps: ...

    async def commit(self) -> None: ...


class Budget(NamedTuple):
    total_minor: int
    currency: str | None
    """The first currency by name among the cohorts; None when there are none."""


class EnvelopeTotals(NamedTuple):
    opened: int
    planned_minor: int
    claimed_minor: int
    claims: int


class RewardTotals(NamedTuple):
    paid: int
    paid_minor: int


class Reports(Protocol):
    """Figures over a set of cohorts, one grouped query each: none loads members or
    events one by one."""

    async def stage_counts(self, cohort_ids: Sequence[int]) -> dict[Stage, int]:
        """Members at each stage, the furthest each has reached (stages nobody is at
        are left out)."""
        ...

    async def members_left(self, cohort_ids: Sequence[int]) -> int: ...
    async def budget(self, cohort_ids: Sequence[int]) -> Budget: ...
    async def envelopes(self, cohort_ids: Sequence[int]) -> EnvelopeTotals: ...
    async def rewards(self, cohort_ids: Sequence[int]) -> RewardTotals:
        """Reward ledger entries (task rewards; envelope grabs are not rewards)."""
        ...

    async def payouts(self, cohort_ids: Sequence[int]) -> dict[str, tuple[int, int]]:
        """Task rewards by way out (``owed``, ``pending``, ``delivered``, ``parked``):
        how many, and their sum in minor units."""
        ...

    async def tasks_completed(self, cohort_ids: Sequence[int]) -> dict[str, int]:
        """Completions by task id (tasks nobody completed are left out)."""
        ...

    async def step_status(self, cohort_ids: Sequence[int]) -> dict[str, int]:
        """Step runs by status."""
        ...

    async def step_starts(self, cohort_ids: Sequence[int]) -> list[tuple[datetime, datetime]]:
        """(due at, started at) of every step run that has started."""
        ...


class ReportsTx(Protocol):
    """A unit of work as the report readers see it: reads only, never a commit."""

    @property
    def reports(self) -> Reports: ...
