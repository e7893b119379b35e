"""What members do in the groups: join, leave, chat, grab envelopes, reply "1", get admitted.

Each use case is one transaction. A tap on an envelope is written durably before it is
answered, and a second tap by the same member (also a re-delivered update) reads back
the first claim instead of taking another share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from funnels.cohorts import CloseEnvelope, Deps
from funnels.ports import MemberRef, ShareClaim
from funnels.stages import Stage


@dataclass(frozen=True, slots=True)
class JoinResult:
    outcome: Literal["joined", "rejoined", "full", "no_cohort"]
    member: MemberRef | None = None


class RecordJoin:
    """A member entered the warm-up group (attributed to whoever invited them)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, chat_id: int, member: MemberRef, inviter_id: int | None = None
    ) -> JoinResult:
        now = self.deps.clock.now()
        async with self.deps.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(chat_id)
            if cohort is None or cohort.warmup_chat_id != chat_id:
                return JoinResult("no_cohort")
            if await tx.members.stage(cohort.id, member.user_id) is None:
                if await tx.members.count(cohort.id) >= cohort.capacity:
                    return JoinResult("full", member)
            new = await tx.members.join(cohort.id, member.user_id, inviter_id, now)
            await tx.commit()
        return JoinResult("joined" if new else "rejoined", member)


class RecordLeave:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, chat_id: int, user_id: int) -> None:
        async with self.deps.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(chat_id)
            if cohort is not None and cohort.warmup_chat_id == chat_id:
                await tx.members.leave(cohort.id, user_id, self.deps.clock.now())
                await tx.commit()


class RecordActivity:
    """Message counts per member per local day, never the text; chatting during the
    warm-up makes a member ``engaged``."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, chat_id: int, counts: Mapping[int, int]) -> None:
        now = self.deps.clock.now()
        async with self.deps.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(chat_id)
            if cohort is None or cohort.warmup_chat_id != chat_id:
                return
            day = now.astimezone(ZoneInfo(cohort.timezone)).date()
            await tx.members.add_activity(cohort.id, counts, day)
            for user_id in counts:
                await tx.members.advance(cohort.id, user_id, Stage.ENGAGED, now)
            await tx.commit()


class ClaimShare:
    """A tap on an envelope's Grab button."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.close = CloseEnvelope(deps)

    async def __call__(self, envelope_id: int, user_id: int) -> ShareClaim:
        now = self.deps.clock.now()
        async with self.deps.store.transaction() as tx:
            envelope = await tx.envelopes.get(envelope_id)
            if envelope is None:
                return ShareClaim("closed")
            if await tx.members.stage(envelope.cohort_id, user_id) is None:
                return ShareClaim("not_member")
            claim = await tx.envelopes.claim(envelope_id, user_id, now)
            if claim.outcome == "claimed":
                await tx.ledger.credit(
                    f"envelope:{envelope_id}:{user_id}", user_id, envelope.cohort_id,
                    "envelope", envelope.step_key, claim.amount_minor, envelope.currency, now,
                )
                await tx.members.advance(envelope.cohort_id, user_id, Stage.ENGAGED, now)
            await tx.commit()
        if claim.last_share:
            await self.close(envelope_id)
        return claim


ReplyOutcome = Literal["recorded", "already", "not_answer", "closed", "not_member", "no_cohort"]


class RecordReply:
    """A group message during the pitch window: is it the answer ("1"), and is it new?"""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, chat_id: int, user_id: int, text: str) -> ReplyOutcome:
        async with self.deps.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(chat_id)
            if cohort is None or cohort.warmup_chat_id != chat_id:
                return "no_cohort"
            if not self.deps.scripts.matcher(cohort)(text):
                return "not_answer"
            if cohort.pitch_opened_at is None or cohort.pitch_closed_at is not None:
                return "closed"
            stage = await tx.members.stage(cohort.id, user_id)
            if stage is None:
                return "not_member"
            now = self.deps.clock.now()
            await tx.members.advance(cohort.id, user_id, Stage.ENGAGED, now)
            recorded = await tx.members.advance(cohort.id, user_id, Stage.REPLIED, now)
            await tx.commit()
        return "recorded" if recorded else "already"


AdmitOutcome = Literal["admitted", "already", "not_replied", "no_cohort"]


class AdmitMember:
    """A responder entered the task group; anyone who did not reply "1" is refused."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, cohort_id: int, user_id: int) -> AdmitOutcome:
        async with self.deps.store.transaction() as tx:
            cohort = await tx.cohorts.get(cohort_id)
            if cohort is None:
                return "no_cohort"
            stage = await tx.members.stage(cohort_id, user_id)
            if stage is None or stage < Stage.REPLIED:
                return "not_replied"
            admitted = await tx.members.advance(
                cohort_id, user_id, Stage.ADMITTED, self.deps.clock.now()
            )
            await tx.commit()
        return "admitted" if admitted else "already"


def stamp(at: datetime) -> str:
    return at.isoformat(timespec="seconds")
