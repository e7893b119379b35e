"""What members do in the groups: join, leave, chat, grab envelopes, reply "1", get admitted.

Each use case is one transaction. A tap on an envelope is written durably before it is
answered, and a second tap by the same member (also a re-delivered update) reads back
the first claim instead of taking another share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from funnels.cohorts import CloseEnvelope, Deps
from funnels.goals import LeafProgress, describe_progress
from funnels.groups import Actor
from funnels.ports import (
    AdmissionNotice,
    CohortRecord,
    LedgerCredit,
    MemberRef,
    ShareClaim,
    Transaction,
    UpdateBatch,
)
from funnels.stages import Stage

JoinOutcome = Literal["joined", "rejoined", "member", "full", "no_cohort"]


class RecordJoin:
    """Members entered the warm-up group, each attributed to whoever invited them.

    Takes a batch, so a burst of ``chat_member`` updates (or a simulated crowd) is one
    transaction; capacity is enforced in arrival order.
    """

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, chat_id: int, members: Sequence[tuple[int, int | None]]
    ) -> dict[int, JoinOutcome]:
        async with self.deps.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(chat_id)
            if cohort is None or cohort.warmup_chat_id != chat_id:
                return {user_id: "no_cohort" for user_id, _ in members}
            outcome = await tx.members.join(
                cohort.id, members, cohort.capacity, self.deps.clock.now()
            )
            await tx.commit()
        return outcome  # type: ignore[return-value]


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
            await tx.members.advance_many(cohort.id, list(counts), Stage.ENGAGED, now)
            await tx.commit()


class ClaimShares:
    """Taps on an envelope's Grab button, a batch at a time: every claim is written (with
    its ledger entry) in one transaction before any tap is answered. Under a storm the bot
    groups the taps that arrive together, so the database sees one write per batch."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.close = CloseEnvelope(deps)

    async def __call__(
        self, envelope_id: int, user_ids: Sequence[int], *, close: bool = True
    ) -> dict[int, ShareClaim]:
        """``close=False``: the caller closes the envelope after the last share itself
        (the bot answers the taps first; the summary edit may wait for a send slot)."""
        now = self.deps.clock.now()
        async with self.deps.store.transaction() as tx:
            claims = await tx.envelopes.claim_many(envelope_id, user_ids, now)
            won = {u: c for u, c in claims.items() if c.outcome == "claimed"}
            if not won:
                return claims
            await tx.ledger.credit_many(
                [
                    LedgerCredit(
                        f"envelope:{envelope_id}:{user_id}",
                        user_id,
                        claim.cohort_id,
                        "envelope",
                        claim.step_key or "",
                        claim.amount_minor,
                        claim.currency or "",
                    )
                    for user_id, claim in won.items()
                ],
                now,
            )
            # Grabbing is taking part: the member is engaged.
            quiet = [u for u, c in won.items() if c.stage is not None and c.stage < Stage.ENGAGED]
            cohort_id = next(iter(won.values())).cohort_id
            if quiet and cohort_id is not None:
                await tx.members.advance_many(cohort_id, quiet, Stage.ENGAGED, now)
            await tx.commit()
        if close and any(c.last_share for c in won.values()):
            await self.close(envelope_id)
        return claims


class ClaimShare:
    """One tap on an envelope's Grab button."""

    def __init__(self, deps: Deps) -> None:
        self.claim = ClaimShares(deps)

    async def __call__(self, envelope_id: int, user_id: int, *, close: bool = True) -> ShareClaim:
        return (await self.claim(envelope_id, [user_id], close=close))[user_id]


ReplyOutcome = Literal["recorded", "already", "not_answer", "closed", "not_member", "no_cohort"]


class RecordReply:
    """A group message during the pitch window: is it the answer ("1"), and is it new?"""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, chat_id: int, user_id: int, text: str, *, cohort: CohortRecord | None = None
    ) -> ReplyOutcome:
        """``cohort``: the group's cohort as the caller knows it (a cache may be behind on
        the pitch; the window is checked in the database either way). With it, a first
        "1" inside the window costs a single statement; anything else is told apart by
        reading the cohort and the member afresh."""
        now = self.deps.clock.now()
        scripts = self.deps.scripts
        if (
            cohort is not None
            and cohort.warmup_chat_id == chat_id
            and scripts.matcher(cohort)(text)
        ):
            opened_since = now - scripts.reply_window(cohort)
            async with self.deps.store.transaction() as tx:
                if await tx.members.record_reply(cohort.id, user_id, now, opened_since):
                    await tx.commit()
                    return "recorded"
        async with self.deps.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(chat_id)
            if cohort is None or cohort.warmup_chat_id != chat_id:
                return "no_cohort"
            if not scripts.matcher(cohort)(text):
                return "not_answer"
            window = scripts.reply_window(cohort)
            if (
                cohort.pitch_opened_at is None
                or cohort.pitch_closed_at is not None
                or now > cohort.pitch_opened_at + window
            ):
                # The window is measured from when the pitch was actually posted, so a
                # late tick neither shortens nor stretches it.
                return "closed"
            stage = await tx.members.stage(cohort.id, user_id)
            if stage is None:
                return "not_member"
            # Answering is taking part: the member is engaged too, if not yet.
            recorded = await tx.members.record_reply(cohort.id, user_id, now, now - window)
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


@dataclass(frozen=True, slots=True)
class Joined:
    outcome: JoinOutcome | AdmitOutcome
    cohort_id: int | None
    user_id: int
    inviter_id: int | None
    language: str | None = None
    """The member's locale as stored (their /lang choice, else their app's)."""


class MemberJoined:
    """A ``chat_member`` join, in the warm-up group (attributed to the link's owner, or
    whoever added the member, or else the leader: every member has an inviter) or in the
    task group (admission, for responders)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self,
        chat_id: int,
        member: Actor,
        *,
        invite_link: str | None = None,
        added_by: Actor | None = None,
    ) -> Joined:
        now = self.deps.clock.now()
        async with self.deps.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(chat_id)
            user = await tx.members.ensure_user(
                member.telegram_id, member.name, member.language, now
            )
            if cohort is None or cohort.task_chat_id == chat_id:
                await tx.commit()  # the user row; admission is a unit of work of its own
                cohort_id = cohort.id if cohort is not None else None
            else:
                return await self._join_warmup(tx, cohort, user, member, invite_link, added_by, now)
        if cohort_id is None:
            return Joined("no_cohort", None, user.user_id, None, user.language)
        # After the unit of work above has ended: on SQLite one runs at a time, and
        # one opened inside another would wait for it forever.
        admitted = await AdmitMember(self.deps)(cohort_id, user.user_id)
        return Joined(admitted, cohort_id, user.user_id, None, user.language)

    async def _join_warmup(
        self,
        tx: Transaction,
        cohort: CohortRecord,
        user: MemberRef,
        member: Actor,
        invite_link: str | None,
        added_by: Actor | None,
        now: datetime,
    ) -> Joined:
        inviter = cohort.leader_id
        link = await tx.links.get(invite_link) if invite_link else None
        if link is not None and link.cohort_id == cohort.id and link.owner_id is not None:
            inviter = link.owner_id
        elif added_by is not None and added_by.telegram_id != member.telegram_id:
            adder = await tx.members.ensure_user(
                added_by.telegram_id, added_by.name, added_by.language, now
            )
            inviter = adder.user_id
        if inviter == user.user_id:
            inviter = None  # the leader joining their own group invited nobody
        outcome = await tx.members.join(cohort.id, [(user.user_id, inviter)], cohort.capacity, now)
        await tx.commit()
        return Joined(outcome[user.user_id], cohort.id, user.user_id, inviter, user.language)  # type: ignore[arg-type]


JoinRequestOutcome = Literal["approved", "already", "not_replied", "closed", "no_cohort", "gone"]


class DecideJoinRequest:
    """Someone asks to join a task group: responders are let in (and admitted), anyone
    else is declined and told why, privately (Telegram allows that message for a few
    minutes after the request)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, chat_id: int, member: Actor) -> JoinRequestOutcome:
        now = self.deps.clock.now()
        async with self.deps.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(chat_id)
            user = await tx.members.ensure_user(
                member.telegram_id, member.name, member.language, now
            )
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


class ChooseLocale:
    """``/lang``: the member's choice wins over what their Telegram app says."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, member: Actor, locale: str) -> MemberRef:
        now = self.deps.clock.now()
        async with self.deps.store.transaction() as tx:
            user = await tx.members.ensure_user(
                member.telegram_id, member.name, member.language, now
            )
            await tx.members.set_locale(user.user_id, locale)
            await tx.commit()
        return MemberRef(user.user_id, user.telegram_id, locale)


class StartedBot:
    """The member pressed Start (or wrote to the bot): they can be messaged again."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, member: Actor) -> MemberRef:
        now = self.deps.clock.now()
        async with self.deps.store.transaction() as tx:
            user = await tx.members.ensure_user(
                member.telegram_id, member.name, member.language, now
            )
            await tx.members.set_reachable(member.telegram_id, True, now)
            await tx.commit()
        return user


class MarkUnreachable:
    """A private message bounced (the member blocked the bot): stop counting on DMs to
    them; the cohort goes on."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, telegram_id: int) -> None:
        async with self.deps.store.transaction() as tx:
            await tx.members.set_reachable(telegram_id, False, self.deps.clock.now())
            await tx.commit()


class Balance:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, member: Actor) -> dict[str, int]:
        async with self.deps.store.transaction() as tx:
            user = await tx.members.by_telegram(member.telegram_id)
            return await tx.ledger.balance(user.user_id) if user else {}


class RecordChatter:
    """Message counts from a group, keyed by Telegram id as the bot sees them; members
    the cohort does not know (joined before the launch, other bots) are left out.

    ``source``: the updates the counts came from, marked handled in the same unit of
    work, so that counts are neither lost nor counted twice when the process dies."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, chat_id: int, counts: Mapping[int, int], source: UpdateBatch | None = None
    ) -> int:
        now = self.deps.clock.now()
        by_user: dict[int, int] = {}
        async with self.deps.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(chat_id)
            if cohort is not None and cohort.warmup_chat_id == chat_id:
                _, known = await tx.members.resolve_many([], list(counts))
                by_user = {known[tg].user_id: n for tg, n in counts.items() if tg in known}
                day = now.astimezone(ZoneInfo(cohort.timezone)).date()
                await tx.members.add_activity(cohort.id, by_user, day)
                await tx.members.advance_many(cohort.id, list(by_user), Stage.ENGAGED, now)
            if source is not None:
                await tx.updates.mark_handled(source.bot_id, source.update_ids, now)
            await tx.commit()
        return len(by_user)


@dataclass(frozen=True, slots=True)
class TaskLine:
    task_id: str
    title: str
    state: Literal["done", "open", "locked"]
    unlocks_at: datetime
    progress: list[LeafProgress]
    """Per goal leaf: counts, or money in minor units of the cohort's currency."""


@dataclass(frozen=True, slots=True)
class TaskLadder:
    cohort_code: str
    timezone: str
    currency: str
    lines: list[TaskLine]


class MyTasks:
    """``/tasks``: the member's ladder in their current task group."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, member: Actor) -> TaskLadder | None:
        async with self.deps.store.transaction() as tx:
            user = await tx.members.by_telegram(member.telegram_id)
            cohort_id = await tx.members.current_cohort(user.user_id) if user else None
            cohort = await tx.cohorts.get(cohort_id) if cohort_id else None
            if user is None or cohort is None:
                return None
            progress = await tx.tasks.for_member(cohort.id, user.user_id)
        script = self.deps.scripts.get(cohort)
        unlocks = self.deps.scripts.unlock_times(cohort)
        now = self.deps.clock.now()
        lines = []
        for task in script.tasks.ladder:
            row = progress.get(task.id)
            state: Literal["done", "open", "locked"] = (
                "done"
                if row is not None and row.completed_at is not None
                else "open"
                if unlocks[task.id] <= now
                else "locked"
            )
            lines.append(
                TaskLine(
                    task.id,
                    task.title,
                    state,
                    unlocks[task.id],
                    describe_progress(task.goal, row.progress if row else {}, cohort.currency),
                )
            )
        return TaskLadder(cohort.code, cohort.timezone, cohort.currency, lines)
