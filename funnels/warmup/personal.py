"""Admission by personal links (a cohort launched with ``admission=personal``): each
responder asks the bot privately and gets a one-time link into the task group
(``member_limit=1``, no join request), made for them alone.

Asking again gives the same link while it is unused and not about to expire. A join by
someone else's link (it was passed on) admits the newcomer only if they replied "1"
themselves; anyone else is taken out of the group again and told why, and the link's
owner may ask for a new one.

Crash safety: a claim (``personal_links.attempt``) is written before Telegram is asked,
and the link is stored under it before it is handed out. A process that dies in between
leaves a claim without a link: the next ask waits while it is fresh and takes it over
once it is stale (:data:`CLAIM_LEASE`). The link Telegram may have made under the
abandoned claim was never handed to anyone, and it expires on its own like any personal
link (:data:`LINK_LIFETIME`). A slow caller whose claim was taken over in the meantime
revokes the link it made instead of handing it out, so a member never holds two.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.messaging import AdmissionNotice, DeliveryError
from funnels.kernel.records import CohortRecord, InviteLinkRecord, MemberRef, PersonalLinkRecord
from funnels.kernel.refusals import Refused
from funnels.kernel.stages import Stage
from funnels.warmup.admissions import AdmitMember, AdmitOutcome
from funnels.warmup.ports import WarmupTx

log = logging.getLogger("funnelbot.admissions")

LINK_LIFETIME = timedelta(hours=24)
"""How long a personal link admits (never past the cohort's end): long enough to be
used at leisure, short enough that a link passed around soon stops working."""

RENEW_BEFORE = timedelta(minutes=10)
"""A stored link closer than this to its expiry is replaced rather than handed out."""

CLAIM_LEASE = timedelta(minutes=2)
"""How long a claim to make a link keeps others waiting: far longer than a Telegram
call with its retries, so only a claim whose process died is ever taken over."""

# ---------------------------------------------------------------- decisions (pure)


@dataclass(frozen=True, slots=True)
class Give:
    """Hand out the stored link: it is unused and not about to expire."""

    link: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Make:
    """Claim and make a new link. ``previous``: the attempt the claim follows (None for
    the first); ``stale``: it takes over a claim whose process died; ``replaces``: a
    stored link about to expire, revoked once the new one is stored."""

    previous: int | None
    expires_at: datetime
    stale: bool = False
    replaces: str | None = None


def refusal_for(cohort: CohortRecord, stage: Stage | None, now: datetime) -> str | None:
    """Why ``cohort`` gives no personal link to a member at ``stage`` now (a refusal
    code), or None when it gives one."""
    if cohort.admission != "personal":
        return "by_request"
    if cohort.status in ("finished", "cancelled") or now >= cohort.ends_at:
        return "ended"
    if stage is None or stage < Stage.REPLIED:
        return "closed" if cohort.pitch_closed_at is not None else "not_replied"
    if cohort.task_chat_id is None:
        return "no_task_group"
    return None


def next_move(
    current: PersonalLinkRecord | None, cohort: CohortRecord, now: datetime
) -> Give | Make | None:
    """What an ask does, given the member's stored link or claim: hand out the link,
    make one, or (None) wait for the claim another caller holds."""
    expires_at = min(now + LINK_LIFETIME, cohort.ends_at)
    if current is None:
        return Make(None, expires_at)
    if current.link is not None:
        if current.expires_at is not None and current.expires_at - now > RENEW_BEFORE:
            return Give(current.link, current.expires_at)
        return Make(current.attempt, expires_at, replaces=current.link)
    if current.claimed_at is not None:
        if now - current.claimed_at < CLAIM_LEASE:
            return None
        return Make(current.attempt, expires_at, stale=True)
    return Make(current.attempt, expires_at)


JoinDecision = Literal["admit", "remove"]


def decide_join(joiner_stage: Stage | None) -> JoinDecision:
    """Someone joined the task group by a personal link, theirs or passed on to them:
    a responder (or beyond) is admitted whoever's link it was; anyone else is let out."""
    return "admit" if joiner_stage is not None and joiner_stage >= Stage.REPLIED else "remove"


# ---------------------------------------------------------------- use cases


@dataclass(frozen=True, slots=True)
class PersonalLinkGiven:
    cohort_code: str
    link: str
    expires_at: datetime
    timezone: str
    """The cohort's zone, for showing when the link expires."""


class AskPersonalLink:
    """A member asks, in private, for their way into the task group (``/start
    join-CODE`` from the group's button, or ``/join``): a one-time link of their own.

    ``code`` names the cohort (None: the member's latest cohort). Refusals (``Refused``,
    nothing changed): ``no_cohort``, ``by_request`` (the cohort admits by join requests),
    ``ended``, ``not_replied``, ``closed`` (the reply window closed without their "1"),
    ``no_task_group`` (not bound yet), ``busy`` (the link is being made: ask again in a
    moment), ``failed`` (Telegram made no link)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, actor: Actor, code: str | None = None) -> PersonalLinkGiven:
        now = self.deps.clock.now()
        async with self.deps.uow(WarmupTx).transaction() as tx:
            user = await tx.users.ensure_user(actor.telegram_id, actor.name, actor.language, now)
            await tx.commit()
            cohort = await _cohort(tx, user.user_id, code)
            if cohort is None:
                raise Refused("no_cohort")
            stage = await tx.members.stage(cohort.id, user.user_id)
            refusal = refusal_for(cohort, stage, now)
            if refusal is not None:
                raise Refused(refusal, code=cohort.code)
            move = next_move(await tx.personal_links.get(cohort.id, user.user_id), cohort, now)
            if move is None:
                raise Refused("busy", code=cohort.code)
            if isinstance(move, Give):
                return PersonalLinkGiven(cohort.code, move.link, move.expires_at, cohort.timezone)
            attempt = await tx.personal_links.claim(
                cohort.id, user.user_id, move.previous, now, move.expires_at
            )
            if attempt is None:
                raise Refused("busy", code=cohort.code)  # another ask took the claim first
            await tx.commit()
        if move.stale:
            log.warning(
                "personal link of user %s in cohort %s: claim %s was abandoned; a link made "
                "under it, if any, was never handed out and expires by itself",
                user.user_id,
                cohort.code,
                move.previous,
            )
        link = await self._make(cohort, user, attempt, move.expires_at)
        if move.replaces is not None:
            await _revoke(self.deps, cohort, move.replaces)
        return PersonalLinkGiven(cohort.code, link, move.expires_at, cohort.timezone)

    async def _make(
        self, cohort: CohortRecord, user: MemberRef, attempt: int, expires_at: datetime
    ) -> str:
        assert cohort.task_chat_id is not None  # refusal_for checked it
        chat_id = cohort.task_chat_id
        try:
            link = await self.deps.messenger.create_invite_link(
                chat_id, f"{cohort.code} personal", member_limit=1, expire_at=expires_at
            )
        except DeliveryError as exc:
            log.warning("no personal link for user %s in %s: %s", user.user_id, cohort.code, exc)
            async with self.deps.uow(WarmupTx).transaction() as tx:
                await tx.personal_links.release(cohort.id, user.user_id, attempt)
                await tx.commit()
            raise Refused("failed", code=cohort.code) from None
        now = self.deps.clock.now()
        async with self.deps.uow(WarmupTx).transaction() as tx:
            stored = await tx.personal_links.fill(cohort.id, user.user_id, attempt, link)
            if stored:
                record = InviteLinkRecord(link, chat_id, cohort.id, user.user_id, "personal")
                await tx.links.add(record, now)
                await tx.commit()
        if not stored:
            # The claim was taken over while Telegram answered: this link goes unused.
            await _revoke(self.deps, cohort, link)
            raise Refused("busy", code=cohort.code)
        return link


async def _cohort(tx: WarmupTx, user_id: int, code: str | None) -> CohortRecord | None:
    if code is not None:
        cohort = await tx.cohorts.by_code(code.upper())
        if cohort is None or await tx.members.stage(cohort.id, user_id) is None:
            return None  # a code that is not theirs tells them nothing about it
        return cohort
    latest = await tx.members.latest_cohort(user_id)
    return await tx.cohorts.get(latest) if latest is not None else None


async def _revoke(deps: Deps, cohort: CohortRecord, link: str) -> None:
    if cohort.task_chat_id is None:
        return
    try:
        await deps.messenger.revoke_invite_link(cohort.task_chat_id, link)
    except DeliveryError as exc:  # it still expires by itself
        log.info("could not revoke a personal link of %s: %s", cohort.code, exc)


PersonalJoinOutcome = AdmitOutcome | Literal["removed"]


class JoinByPersonalLink:
    """Someone entered the task group by a personal link. The link is spent (cleared and
    revoked: ``member_limit`` counts members at a time, so it would admit again once they
    left). A responder is admitted, by their own link or one passed on to them; anyone
    else is taken out of the group and told why. When the link was passed on, its owner
    hears that it was used and may ask for a new one."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, cohort: CohortRecord, joiner: MemberRef, link: InviteLinkRecord
    ) -> PersonalJoinOutcome:
        owner_id = link.owner_id
        async with self.deps.uow(WarmupTx).transaction() as tx:
            stage = await tx.members.stage(cohort.id, joiner.user_id)
            spent = owner_id is not None and await tx.personal_links.use(
                cohort.id, owner_id, link.link
            )
            owner = await _member_ref(tx, owner_id) if owner_id != joiner.user_id else None
            await tx.commit()
        if spent:
            await _revoke(self.deps, cohort, link.link)
        messenger = self.deps.messenger
        if owner is not None and spent:
            log.info(
                "personal link of user %s in %s used by user %s",
                owner_id,
                cohort.code,
                joiner.user_id,
            )
            locale = owner.language or cohort.locale
            await messenger.notify(owner, AdmissionNotice("passed_on", cohort.code, locale))
        if decide_join(stage) == "admit":
            return await AdmitMember(self.deps)(cohort.id, joiner.user_id)
        assert cohort.task_chat_id is not None
        if joiner.telegram_id is not None:
            await messenger.remove_member(cohort.task_chat_id, joiner.telegram_id)
        locale = joiner.language or cohort.locale
        await messenger.notify(joiner, AdmissionNotice("not_yours", cohort.code, locale))
        return "removed"


async def _member_ref(tx: WarmupTx, user_id: int | None) -> MemberRef | None:
    if user_id is None:
        return None
    return await tx.users.ref(user_id)
