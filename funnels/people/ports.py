"""What the people slice asks of storage (users, leaders, regions and invite links):
for each repository, only the methods its use cases call, and the unit of work that
carries them."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from funnels.kernel.records import (
    CohortRecord,
    InviteLinkRecord,
    MemberRef,
    RegionRecord,
)
from funnels.kernel.stages import Role


class Cohorts(Protocol):
    async def get(self, cohort_id: int) -> CohortRecord | None: ...


class Links(Protocol):
    async def add(self, record: InviteLinkRecord, at: datetime) -> None: ...
    async def find(
        self, cohort_id: int, kind: str, owner_id: int | None = None
    ) -> InviteLinkRecord | None:
        """The newest link of ``kind`` in the cohort (for ``owner_id`` when given)."""
        ...


class Members(Protocol):
    async def latest_cohort(self, user_id: int) -> int | None:
        """The running cohort the user joined last (warm-up or task stage)."""
        ...


class Regions(Protocol):
    async def add(
        self, code: str, name: str, timezone: str, weekly_target: int, at: datetime
    ) -> RegionRecord:
        """Raises AlreadyExists when the code is taken."""
        ...

    async def all(self) -> list[RegionRecord]: ...
    async def by_code(self, code: str) -> RegionRecord | None: ...


class Users(Protocol):
    async def by_telegram(self, telegram_id: int) -> MemberRef | None: ...
    async def ensure_user(
        self, telegram_id: int, name: str, language: str | None, at: datetime
    ) -> MemberRef: ...
    async def grant(self, user_id: int, role: Role, region_id: int | None) -> None:
        """Raise the user's role to at least ``role`` and set their region."""
        ...

    async def role(self, user_id: int) -> Role | None:
        """The user's role; None for no such user."""
        ...

    async def demote(self, user_id: int, role: Role) -> None:
        """Set the user's role to ``role`` (lower than it is) and clear their region."""
        ...

    async def earned(self, user_id: int) -> Role:
        """The highest role the ladder gave the user in any cohort (member at least)."""
        ...

    async def set_locale(self, user_id: int, locale: str) -> None: ...
    async def set_reachable(self, telegram_id: int, reachable: bool, at: datetime) -> None: ...


class PeopleTx(Protocol):
    """One unit of work as the people use cases see it."""

    @property
    def cohorts(self) -> Cohorts: ...
    @property
    def links(self) -> Links: ...
    @property
    def members(self) -> Members: ...
    @property
    def regions(self) -> Regions: ...
    @property
    def users(self) -> Users: ...

    async def commit(self) -> None: ...


class KnowsUsers(Protocol):
    """Any unit of work that can find or make a user: what ``user_id_of`` needs, and so
    what the other slices' units of work offer when they call it."""

    @property
    def users(self) -> _MakesUsers: ...


class _MakesUsers(Protocol):
    async def ensure_user(
        self, telegram_id: int, name: str, language: str | None, at: datetime
    ) -> MemberRef: ...
