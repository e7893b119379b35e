"""Into the task group: responders admitted, anyone else declined and told why; the
batched "come on over" message (with a join-request link, or for a cohort with personal
links a button into the private chat: see :mod:`funnels.warmup.personal`)."""

from __future__ import annotations

from typing import Literal

from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.messaging import AdmissionNotice, AdmissionsOpen, DeliveryError
from funnels.kernel.records import CohortRecord
from funnels.kernel.stages import Stage
from funnels.warmup.ports import WarmupTx

START_PREFIX = "join-"
"""``/start join-<cohort code>``: the deep link of the "come on over" button."""


def start_payload(cohort: CohortRecord) -> str:
    """The ``/start`` payload that asks for a personal link into ``cohort``'s task group."""
    return f"{START_PREFIX}{cohort.code}"


def code_of_payload(payload: str | None) -> str | None:
    """The cohort code of a ``/start`` payload made by :func:`start_payload`, else None."""
    if payload is None or not payload.startswith(START_PREFIX):
        return None
    code = payload.removeprefix(START_PREFIX)
    return code if code and code.isalnum() and code.isascii() and len(code) <= 16 else None


AdmitOutcome = Literal["admitted", "already", "not_replied", "no_cohort"]


class AdmitMember:
    """A responder entered the task group; anyone who did not reply "1" is refused."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, cohort_id: int, user_id: int) -> AdmitOutcome:
        async with self.deps.uow(WarmupTx).transaction() as tx:
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


JoinRequestOutcome = Literal["approved", "already", "not_replied", "closed", "no_cohort", "gone"]


class DecideJoinRequest:
    """Someone asks to join a task group: responders are let in (and admitted), anyone
    else is declined and told why, privately (Telegram allows that message for a few
    minutes after the request)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, chat_id: int, member: Actor) -> JoinRequestOutcome:
        now = self.deps.clock.now()
        async with self.deps.uow(WarmupTx).transaction() as tx:
            cohort = await tx.cohorts.by_chat(chat_id)
            user = await tx.users.ensure_user(member.telegram_id, member.name, member.language, now)
            await tx.commit()
            if cohort is None or cohort.task_chat_id != chat_id:
                return "no_cohort"
            stage = await tx.members.stage(cohort.id, user.user_id)
        locale = user.language or cohort.locale
        messenger = self.deps.messenger
        if stage is not None and stage >= Stage.REPLIED:
            if not await messenger.answer_join_request(chat_id, member.telegram_id, approve=True):
                return "gone"
            outcome = await AdmitMember(self.deps)(cohort.id, user.user_id)
            if outcome == "admitted":
                await messenger.notify(user, AdmissionNotice("approved", cohort.code, locale))
                return "approved"
            return "already"
        refusal: Literal["not_replied", "closed"] = (
            "closed" if cohort.pitch_closed_at is not None else "not_replied"
        )
        if await messenger.answer_join_request(chat_id, member.telegram_id, approve=False):
            # Told once: a request handled again (after a crash) is no longer there to
            # decline, and the member is not written to twice.
            await messenger.notify(user, AdmissionNotice(refusal, cohort.code, locale))
        return refusal


class AnnounceResponders:
    """During the pitch window, one batched "come on over" message per cohort at most
    every few minutes (``Deps.admissions_every``), never a reply per "1"."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self) -> None:
        now = self.deps.clock.now()
        # One transaction however many pitches are due: the cohorts found stay this
        # transaction's until it has stamped them, so another ticking process passes
        # them by, and after the commit finds them announced.
        async with self.deps.uow(WarmupTx).transaction() as tx:
            cohorts = await tx.cohorts.pitches_to_announce(now - self.deps.admissions_every)
            if not cohorts:
                return
            ids = [c.id for c in cohorts]
            counts = await tx.members.responders(ids)
            links = await tx.links.newest(ids, "admission")
            await tx.cohorts.note_admissions(ids, now)
            await tx.commit()
        for cohort in cohorts:
            new, total = counts.get(cohort.id, (0, 0))
            if cohort.warmup_chat_id is None or new == 0:  # the query finds neither
                continue
            if cohort.admission == "personal":
                # A button into the bot's private chat, where each responder gets a link
                # of their own (funnels.warmup.personal); none until the group is bound.
                payload = start_payload(cohort) if cohort.task_chat_id is not None else None
                message = AdmissionsOpen(new, total, cohort.locale, start_payload=payload)
            else:
                link = links.get(cohort.id)
                message = AdmissionsOpen(new, total, cohort.locale, link.link if link else None)
            try:
                await self.deps.messenger.send(cohort.warmup_chat_id, message)
            except DeliveryError:
                continue  # a missed nudge is harmless; the next batch counts these too
