"""What the warmup slice asks of storage (joins, chatter, envelopes, replies and
admissions): for each repository, only the methods its use cases call, and the unit
of work that carries them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Protocol

from funnels.kernel.records import (
    Arrival,
    CohortRecord,
    EnvelopeRecord,
    InviteLinkRecord,
    LedgerCredit,
    MemberRef,
    PersonalLinkRecord,
    Seat,
    ShareClaim,
)
from funnels.kernel.stages import Stage


class Cohorts(Protocol):
    async def warming_up_in(self, chat_id: int) -> CohortRecord | None:
        """The cohort whose warm-up group ``chat_id`` is (not its task group)."""
        ...

    async def by_chat(self, chat_id: int) -> CohortRecord | None: ...
    async def by_code(self, code: str) -> CohortRecord | None: ...
    async def get(self, cohort_id: int) -> CohortRecord | None: ...
    async def pitches_to_announce(self, noted_before: datetime) -> list[CohortRecord]:
        """Running cohorts with a warm-up group whose pitch window is open, whose
        responders were last announced before ``noted_before`` (or never), and who have
        a responder since. One query however many pitches are open: most ticks find
        none. Where the database has row locks, the cohorts found are held until the
        transaction ends, and those another transaction holds are passed by: of several
        ticking processes, one announces each cohort."""
        ...

    async def note_admissions(self, cohort_ids: Sequence[int], at: datetime) -> None:
        """Stamp the cohorts' batched admissions message at ``at``."""
        ...

    async def release(self, cohort_id: int, amount_minor: int) -> None: ...
    async def reserve(self, cohort_id: int, amount_minor: int) -> bool:
        """Add to the cohort's spend if it stays within budget; False (and nothing
        changed) when it would not."""
        ...


class Envelopes(Protocol):
    async def by_step(self, cohort_id: int, step_key: str) -> EnvelopeRecord | None: ...
    async def claim_many(
        self, envelope_id: int, user_ids: Sequence[int], at: datetime
    ) -> dict[int, ShareClaim]:
        """Claims for a batch of taps in tap order (shares go to the first comers)."""
        ...

    async def close(self, envelope_id: int, at: datetime) -> EnvelopeRecord | None:
        """Mark closed; returns the record only to the one caller that closed it."""
        ...

    async def full_and_open(self, limit: int) -> list[int]:
        """Envelopes whose every share is claimed but that are not closed yet (the
        process died between the last tap and its close), oldest first."""
        ...

    async def luckiest(self, envelope_id: int) -> tuple[int, int] | None:
        """(user id, amount) of the largest claimed share."""
        ...

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

    async def reopen(
        self, envelope_id: int, opened_at: datetime, expires_at: datetime
    ) -> EnvelopeRecord | None:
        """An envelope never posted and still open, its time to grab counted anew; None
        once it has a message or is closed."""
        ...

    async def set_message(self, envelope_id: int, chat_id: int, message_id: int) -> None: ...


class Ledger(Protocol):
    async def credit_many(self, entries: Sequence[LedgerCredit], at: datetime) -> int:
        """``credit`` for many entries; returns how many were new."""
        ...


class Links(Protocol):
    async def find(
        self, cohort_id: int, kind: str, owner_id: int | None = None
    ) -> InviteLinkRecord | None:
        """The newest link of ``kind`` in the cohort (for ``owner_id`` when given)."""
        ...

    async def newest(self, cohort_ids: Sequence[int], kind: str) -> dict[int, InviteLinkRecord]:
        """The newest link of ``kind`` of each cohort that has one."""
        ...

    async def get(self, link: str) -> InviteLinkRecord | None: ...
    async def add(self, record: InviteLinkRecord, at: datetime) -> None: ...


class PersonalLinks(Protocol):
    """Each responder's one-time link into the task group, and the claim it is made under."""

    async def get(self, cohort_id: int, user_id: int) -> PersonalLinkRecord | None: ...
    async def claim(
        self,
        cohort_id: int,
        user_id: int,
        previous: int | None,
        at: datetime,
        expires_at: datetime,
    ) -> int | None:
        """Take the claim to make a new link: the first one (``previous`` None) or the
        one after attempt ``previous``, which must still be the row's. The new attempt's
        number, or None when another caller took it first (nothing changed)."""
        ...

    async def fill(self, cohort_id: int, user_id: int, attempt: int, link: str) -> bool:
        """Store the link made under ``attempt``; False (nothing changed) when the claim
        is no longer that attempt's."""
        ...

    async def release(self, cohort_id: int, user_id: int, attempt: int) -> None:
        """Give up ``attempt``'s claim (Telegram made no link): the next ask tries again."""
        ...

    async def use(self, cohort_id: int, user_id: int, link: str) -> bool:
        """The member's current link was used: clear it. True to the one caller that did."""
        ...


class Members(Protocol):
    async def among(self, cohort_id: int, user_ids: Sequence[int]) -> set[int]:
        """Which of these users are members of the cohort (left or not)."""
        ...

    async def add_activity(self, cohort_id: int, counts: Mapping[int, int], day: date) -> None: ...
    async def advance(self, cohort_id: int, user_id: int, stage: Stage, at: datetime) -> bool:
        """Move forward to ``stage`` (stamping its time) if not already there or beyond."""
        ...

    async def advance_many(
        self, cohort_id: int, user_ids: Sequence[int], stage: Stage, at: datetime
    ) -> int:
        """``advance`` for many members at once; returns how many moved."""
        ...

    async def join(
        self,
        cohort_id: int,
        arrivals: Sequence[Arrival],
        capacity: int,
        at: datetime,
    ) -> dict[int, Seat]:
        """Record entries into the warm-up group, in arrival order (capacity is taken
        first come, first served); the seat each user got."""
        ...

    async def latest_cohort(self, user_id: int) -> int | None:
        """The cohort the user joined last, if any."""
        ...

    async def leave(self, cohort_id: int, user_id: int, at: datetime) -> None: ...
    async def record_reply(
        self, cohort_id: int, user_id: int, at: datetime, opened_since: datetime
    ) -> bool:
        """A member's first "1": stamp ``replied_at`` (and ``engaged_at`` if unset) and
        move to at least REPLIED, in one statement, provided the cohort's pitch window is
        open (posted at or after ``opened_since`` and not closed). False when nothing
        changed: not a member, replied before, or the window is not open."""
        ...

    async def responders(self, cohort_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """For each cohort with a responder: (replied since its admissions stamp, or all
        when it has none yet; replied in all)."""
        ...

    async def stage(self, cohort_id: int, user_id: int) -> Stage | None: ...


class Updates(Protocol):
    async def mark_handled(self, bot_id: int, update_ids: Sequence[int], at: datetime) -> None: ...


class Users(Protocol):
    async def ensure_user(
        self, telegram_id: int, name: str, language: str | None, at: datetime
    ) -> MemberRef: ...
    async def name(self, user_id: int) -> str | None: ...
    async def ref(self, user_id: int) -> MemberRef | None: ...
    async def resolve_many(
        self, refs: Sequence[str], telegram_ids: Sequence[int]
    ) -> tuple[dict[str, MemberRef], dict[int, MemberRef]]:
        """Members of a batch by ref code and by Telegram id."""
        ...


class WarmupTx(Protocol):
    """One unit of work as the warmup use cases see it."""

    @property
    def cohorts(self) -> Cohorts: ...
    @property
    def envelopes(self) -> Envelopes: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def links(self) -> Links: ...
    @property
    def members(self) -> Members: ...
    @property
    def personal_links(self) -> PersonalLinks: ...
    @property
    def updates(self) -> Updates: ...
    @property
    def users(self) -> Users: ...

    async def commit(self) -> None: ...
