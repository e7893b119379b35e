"""What the ops slice asks of storage (deciding on steps in doubt, reading reports): for
each repository, only the methods its use cases call, and the units of work that carry
them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple, Protocol
from zoneinfo import ZoneInfo

from funnels.kernel.actions import ActionLog
from funnels.kernel.records import (
    AdmissionMode,
    ApiKeyRecord,
    CohortRecord,
    CohortStatus,
    OpsActionRecord,
    StepRunRecord,
)
from funnels.kernel.rollups import FunnelCounts, StageTimes
from funnels.kernel.stages import Stage


class Cohorts(Protocol):
    async def by_code(self, code: str) -> CohortRecord | None: ...
    async def get(self, cohort_id: int) -> CohortRecord | None: ...
    async def set_status(
        self, cohort_id: int, status: CohortStatus, reason: str | None, at: datetime
    ) -> None: ...


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


class OpsActions(ActionLog, Protocol):
    async def for_cohort(self, cohort_id: int) -> list[OpsActionRecord]:
        """Oldest first."""
        ...


class OpsTx(Protocol):
    """One unit of work as the ops use cases see it."""

    @property
    def cohorts(self) -> Cohorts: ...
    @property
    def steps(self) -> Steps: ...
    @property
    def ops_actions(self) -> OpsActions: ...

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


@dataclass(frozen=True, slots=True)
class CohortFilter:
    """Which cohorts a list shows; ``None`` leaves a field out of the choice."""

    code: str | None = None
    region: str | None = None
    """Region code."""
    leader_telegram_id: int | None = None
    status: str | None = None
    start_from: date | None = None
    start_to: date | None = None
    """Inclusive, on the cohort's start date."""

    def admits(self, cohort: CohortFigures) -> bool:
        """Whether ``cohort`` is one of the choice (as ``storage.ops.chosen`` says in SQL)."""
        return (
            (self.code is None or cohort.code == self.code)
            and (self.region is None or cohort.region == self.region)
            and (
                self.leader_telegram_id is None
                or cohort.leader_telegram_id == self.leader_telegram_id
            )
            and (self.status is None or cohort.status == self.status)
            and (self.start_from is None or cohort.start_date >= self.start_from)
            and (self.start_to is None or cohort.start_date <= self.start_to)
        )


@dataclass(frozen=True, slots=True)
class CohortSummary:
    """A cohort as the API lists it: who runs it where, its script, dates and budget."""

    id: int
    code: str
    status: str
    status_reason: str | None
    region: str | None
    leader_telegram_id: int | None
    leader_name: str | None
    script_id: str
    script_version: int
    locale: str
    timezone: str
    capacity: int
    start_date: date
    ends_at: datetime
    currency: str
    budget_minor: int
    spent_minor: int
    parent_cohort_id: int | None
    generation: int
    created_at: datetime
    finished_at: datetime | None
    admission: AdmissionMode = "requests"
    """How responders get into the task group (chosen at ``/launch``)."""


@dataclass(frozen=True, slots=True)
class EnvelopeLine:
    """A red envelope of a cohort: what it held and how fast the group emptied it."""

    step_key: str
    opened_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    currency: str
    total_minor: int
    shares: int
    claimed: int
    claimed_minor: int
    last_claim_at: datetime | None


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

    async def cohort_page(
        self, choice: CohortFilter, before_id: int | None, limit: int
    ) -> list[CohortSummary]:
        """Up to ``limit`` cohorts of ``choice``, newest first (by id), those with ids
        below ``before_id`` when it is given."""
        ...

    async def cohort_summary(self, cohort_id: int) -> CohortSummary | None: ...
    async def task_counts(self, cohort_id: int) -> dict[str, tuple[int, int]]:
        """By task id: (members with progress on it, members who completed it)."""
        ...

    async def task_payouts(self, cohort_id: int) -> dict[tuple[str, str], tuple[int, int]]:
        """Task rewards by (task id, way out: ``owed``, ``pending``, ``delivered``,
        ``parked``): how many, and their sum in minor units."""
        ...

    async def envelope_lines(self, cohort_id: int) -> list[EnvelopeLine]:
        """The cohort's red envelopes that opened, by opening time."""
        ...


class StepTimeline(Protocol):
    async def timeline(self, cohort_id: int) -> list[StepRunRecord]:
        """Every step run of the cohort, by due time."""
        ...


class ReportsTx(Protocol):
    """A unit of work as the report readers see it: reads only, never a commit."""

    @property
    def cohorts(self) -> Cohorts: ...
    @property
    def reports(self) -> Reports: ...
    @property
    def steps(self) -> StepTimeline: ...


class ApiKeys(Protocol):
    async def add(self, name: str, key_hash: str, prefix: str, at: datetime) -> ApiKeyRecord:
        """Raises ``AlreadyExists`` when a key that is not revoked has ``name``."""
        ...

    async def all(self) -> list[ApiKeyRecord]:
        """Every key, revoked ones too, oldest first."""
        ...

    async def by_hash(self, key_hash: str) -> ApiKeyRecord | None: ...
    async def revoke(self, name: str, at: datetime) -> ApiKeyRecord | None:
        """Revoke the key named ``name`` that is not revoked yet; None if there is none."""
        ...

    async def touch(self, key_id: int, at: datetime) -> None:
        """Note that the key was used at ``at``."""
        ...

    async def live(self) -> dict[str, ApiKeyRecord]:
        """The keys that are not revoked, by their hash."""
        ...


class KeysTx(Protocol):
    """One unit of work as the API-key use cases see it."""

    @property
    def api_keys(self) -> ApiKeys: ...

    async def commit(self) -> None: ...


@dataclass(frozen=True, slots=True)
class CohortFigures:
    """A cohort as the KPIs see it: where it runs and who leads it, what it holds and
    spent, and its members at each funnel stage or beyond (from the rollups)."""

    id: int
    code: str
    status: str
    region: str | None
    leader_telegram_id: int | None
    leader_name: str | None
    parent_cohort_id: int | None
    generation: int
    start_date: date
    capacity: int
    currency: str
    budget_minor: int
    spent_minor: int
    pitch_opened_at: datetime | None
    script_hash: str
    stages: dict[Stage, int]


@dataclass(frozen=True, slots=True)
class RegionLine:
    code: str
    name: str
    weekly_target: int


@dataclass(frozen=True, slots=True)
class RemindedMember:
    """A member who got a kind of daily reminder: when the first of them went out, and
    their stage timestamps (to tell the stage they were at then, and whether they went
    beyond it)."""

    cohort_id: int
    user_id: int
    segment: str
    first_at: datetime
    stages: dict[Stage, datetime | None]


class Kpis(Protocol):
    """Figures read from the rollups and from small per-cohort rows, never from members
    or events one by one (but for the members an A/B test of reminders compares)."""

    async def cohort_figures(
        self,
        choice: CohortFilter,
        *,
        active_only: bool = False,
        ids: Sequence[int] | None = None,
    ) -> list[CohortFigures]:
        """Every cohort of ``choice`` (``active_only``: running or paused; ``ids``: only
        those), oldest first."""
        ...

    async def figures_page(self, after_id: int, limit: int) -> list[CohortFigures]:
        """Up to ``limit`` cohorts whose id is greater than ``after_id``, by id."""
        ...

    async def funnel_days(self, cohort_id: int) -> FunnelCounts: ...
    async def activity_days(self, cohort_id: int) -> dict[date, tuple[int, int]]:
        """Local day -> (messages, members who wrote)."""
        ...

    async def regions(self) -> list[RegionLine]: ...
    async def unknown_steps(self) -> dict[int, int]:
        """Cohort id -> its step runs in ``unknown``, for running and paused cohorts."""
        ...

    async def parked_payouts(self) -> dict[int, tuple[int, int]]:
        """Cohort id -> its parked payouts: how many and their sum in minor units."""
        ...

    async def reminded(
        self, cohort_ids: Sequence[int], segments: Sequence[str]
    ) -> list[RemindedMember]:
        """Members of the cohorts reached by a reminder of one of ``segments``."""
        ...

    async def script_bodies(self, hashes: Sequence[str]) -> dict[str, str]:
        """The script text stored with cohorts, by its hash."""
        ...


class KpisTx(Protocol):
    @property
    def kpis(self) -> Kpis: ...


class BoardTx(Protocol):
    """The unit of work of the figures board (``funnels/ops/board.py``)."""

    @property
    def kpis(self) -> Kpis: ...

    @property
    def api_keys(self) -> ApiKeys: ...

    async def commit(self) -> None: ...


class Rollups(Protocol):
    """The rollups as ``funnelbot stats reconcile`` checks them against a recount."""

    async def cohort_ids(self) -> list[int]: ...
    async def zone(self, cohort_id: int) -> ZoneInfo: ...
    def member_times(self, cohort_id: int) -> AsyncIterator[StageTimes]: ...
    async def funnel(self, cohort_id: int) -> FunnelCounts: ...
    async def activity(self, cohort_id: int) -> dict[date, tuple[int, int]]: ...
    async def activity_recount(self, cohort_id: int) -> dict[date, tuple[int, int]]: ...
    async def correct(
        self,
        cohort_id: int,
        funnel: Mapping[tuple[date, Stage], int],
        activity: Mapping[date, tuple[int, int]],
    ) -> None:
        """Add these differences to the cohort's rollups."""
        ...


class RollupsTx(Protocol):
    @property
    def rollups(self) -> Rollups: ...

    async def commit(self) -> None: ...
