"""What the ops slice asks of storage (deciding on steps in doubt): for each
repository, only the methods its use cases call, and the unit of work that carries
them."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from funnels.kernel.records import (
    CohortRecord,
    StepRunRecord,
)


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
