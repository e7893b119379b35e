"""Admission by personal links over SQLite and PostgreSQL: the mode chosen at launch, a
responder's one-time link (made once, handed out again while unused), refusals that
change nothing, joins by one's own link and by a link passed on, expiry, and the claim
that keeps a crash or a race from leaving a member without a link or with two."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
import pytest
from alembic import command
from sqlalchemy import select

from bot.telegram.offline import RecordingMessenger
from funnels.cohorts.launch import BindTaskGroup, LaunchCohort
from funnels.kernel.actor import Actor
from funnels.kernel.messaging import AdmissionNotice, AdmissionsOpen, DeliveryError
from funnels.kernel.records import CohortRecord, MemberRef
from funnels.kernel.refusals import Refused
from funnels.kernel.stages import Stage
from funnels.warmup.admissions import AnnounceResponders
from funnels.warmup.personal import CLAIM_LEASE, LINK_LIFETIME, AskPersonalLink
from storage.migrate import alembic_config, upgrade_async
from storage.models import InviteLink, PersonalLink
from tests.support.funnel_kit import TASK_CHAT, WARMUP_CHAT, Kit, warmup_at

ADMIN = Actor(9_000, "Ada")


async def personal_cohort(kit: Kit, *, bound: bool = True) -> CohortRecord:
    cohort = await kit.start(admission="personal")
    if bound:
        async with kit.store.transaction() as tx:
            await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
            await tx.commit()
    return await kit.cohort(cohort.id)


async def responders(kit: Kit, cohort: CohortRecord, n: int) -> list[MemberRef]:
    refs = await kit.members(n)
    for ref in refs:
        await kit.force_stage(cohort.id, ref.user_id, Stage.REPLIED)
    return refs


def personal_links_made(messenger: RecordingMessenger) -> list[str]:
    return [link for chat, link, _, limit in messenger.links if chat == TASK_CHAT and limit == 1]


async def stored(kit: Kit, cohort: CohortRecord, user_id: int) -> PersonalLink | None:
    t = PersonalLink.__table__
    rows = await kit.rows(select(t).where(t.c.cohort_id == cohort.id, t.c.user_id == user_id))
    return rows[0] if rows else None  # type: ignore[no-any-return]


async def refusal(kit: Kit, actor: Actor, code: str | None = None) -> str:
    with pytest.raises(Refused) as refused:
        await AskPersonalLink(kit.deps)(actor, code)
    return refused.value.code


# ------------------------------------------------------------ the mode, chosen at launch


async def test_launch_stores_the_mode_and_requests_is_the_default(kit: Kit) -> None:
    async def launch(chat: int, **options: object) -> CohortRecord:
        launched = await LaunchCohort(kit.deps)(
            chat_id=chat, actor=ADMIN, is_admin=True, load=lambda: kit.loaded, **options
        )
        return await kit.cohort(launched.cohort.id)

    assert (await launch(-100_501)).admission == "requests"
    assert (await launch(-100_502, admission="personal")).admission == "personal"


async def test_a_personal_task_group_has_no_shared_link_and_needs_the_right_to_remove(
    kit: Kit,
) -> None:
    cohort = await kit.start(admission="personal")
    kit.messenger.rights_missing[TASK_CHAT] = ["can_restrict_members"]
    bind = BindTaskGroup(kit.deps)
    with pytest.raises(Refused) as refused:
        await bind(chat_id=TASK_CHAT, actor=ADMIN, is_admin=True, code=cohort.code)
    assert refused.value.params == {"missing": ("can_restrict_members",)}
    assert (await kit.cohort(cohort.id)).task_chat_id is None

    kit.messenger.rights_missing.clear()
    assert await bind(chat_id=TASK_CHAT, actor=ADMIN, is_admin=True, code=cohort.code)
    assert (await kit.cohort(cohort.id)).task_chat_id == TASK_CHAT
    assert [link for link in kit.messenger.links if link[0] == TASK_CHAT] == []

    # A cohort by join requests gets its join-request link, and needs no such right.
    other = await kit.start(chat=-100_503)
    kit.messenger.rights_missing[-100_504] = ["can_restrict_members"]
    await bind(chat_id=-100_504, actor=ADMIN, is_admin=True, code=other.code)
    assert [(chat, join) for chat, _, join, _ in kit.messenger.links] == [(-100_504, True)]


async def test_the_stats_api_shows_the_mode(kit: Kit, api: httpx.AsyncClient) -> None:
    cohort = await personal_cohort(kit)
    other = await kit.start(chat=-100_505)
    assert (await api.get(f"/api/v1/cohorts/{cohort.id}")).json()["admission"] == "personal"
    listed = (await api.get("/api/v1/cohorts")).json()["items"]
    assert {c["code"]: c["admission"] for c in listed} == {
        cohort.code: "personal",
        other.code: "requests",
    }


async def test_cohorts_from_before_the_migration_admit_by_requests(kit: Kit, db_url: str) -> None:
    cohort = await personal_cohort(kit)
    [member] = await responders(kit, cohort, 1)
    await AskPersonalLink(kit.deps)(kit.actor(member))
    await kit.store.engine.dispose()
    await asyncio.to_thread(command.downgrade, alembic_config(db_url), "0010")
    await upgrade_async(db_url)
    assert (await kit.cohort(cohort.id)).admission == "requests"
    assert await kit.count(PersonalLink.__table__) == 0


# ------------------------------------------------------------ asking for a link


async def test_a_responder_gets_one_link_however_often_they_ask(kit: Kit) -> None:
    cohort = await personal_cohort(kit)
    [member] = await responders(kit, cohort, 1)
    ask = AskPersonalLink(kit.deps)

    given = await ask(kit.actor(member), cohort.code.lower())
    assert given.cohort_code == cohort.code
    assert given.expires_at == kit.clock.now() + LINK_LIFETIME
    assert personal_links_made(kit.messenger) == [given.link]
    assert kit.messenger.link_expiry[given.link] == given.expires_at
    [(_, _, join_request, _)] = kit.messenger.links
    assert join_request is False  # a member limit, never a join request

    kit.clock.set(kit.clock.now() + timedelta(hours=3))
    assert (await ask(kit.actor(member))).link == given.link  # by their latest cohort
    assert (await ask(kit.actor(member), cohort.code)).link == given.link
    assert personal_links_made(kit.messenger) == [given.link]

    t = InviteLink.__table__
    rows = await kit.rows(select(t.c.link, t.c.kind, t.c.owner_id, t.c.chat_id))
    assert [tuple(r) for r in rows] == [(given.link, "personal", member.user_id, TASK_CHAT)]


async def test_refusals_change_nothing(kit: Kit) -> None:
    cohort = await personal_cohort(kit)
    [member, responder] = await kit.members(2)
    await kit.force_stage(cohort.id, responder.user_id, Stage.REPLIED)
    [stranger] = await kit.users(1)

    assert await refusal(kit, kit.actor(member)) == "not_replied"
    assert await refusal(kit, kit.actor(stranger)) == "no_cohort"
    assert await refusal(kit, kit.actor(stranger), cohort.code) == "no_cohort"
    assert await refusal(kit, kit.actor(responder), "NOSUCH") == "no_cohort"

    unbound = await kit.start(chat=-100_601, admission="personal")
    [early] = await kit.members(1, chat=-100_601)
    await kit.force_stage(unbound.id, early.user_id, Stage.REPLIED)
    assert await refusal(kit, kit.actor(early)) == "no_task_group"

    by_request = await kit.start(chat=-100_602)
    [asker] = await kit.members(1, chat=-100_602)
    await kit.force_stage(by_request.id, asker.user_id, Stage.REPLIED)
    assert await refusal(kit, kit.actor(asker)) == "by_request"

    # After the reply window: "closed" for those who did not answer.
    await kit.run_until(warmup_at(2, "21:00"))
    assert await refusal(kit, kit.actor(member), cohort.code) == "closed"
    kit.clock.set(cohort.ends_at)
    assert await refusal(kit, kit.actor(responder), cohort.code) == "ended"

    assert kit.messenger.links == []
    assert await kit.count(PersonalLink.__table__) == 0


async def test_a_link_about_to_expire_is_replaced_and_revoked(kit: Kit) -> None:
    cohort = await personal_cohort(kit)
    [member] = await responders(kit, cohort, 1)
    ask = AskPersonalLink(kit.deps)
    first = await ask(kit.actor(member))
    kit.clock.set(first.expires_at - timedelta(minutes=5))
    second = await ask(kit.actor(member))
    assert second.link != first.link
    assert second.expires_at == kit.clock.now() + LINK_LIFETIME
    assert kit.messenger.revoked == [(TASK_CHAT, first.link)]
    assert (await ask(kit.actor(member))).link == second.link


async def test_telegram_saying_no_lets_the_next_ask_try_again(kit: Kit) -> None:
    cohort = await personal_cohort(kit)
    [member] = await responders(kit, cohort, 1)

    class Refusing(RecordingMessenger):
        async def create_invite_link(self, *args: object, **kwargs: object) -> str:
            raise DeliveryError("Bad Request: not enough rights", definite=True)

    kit.deps.messenger = Refusing()
    assert await refusal(kit, kit.actor(member)) == "failed"
    kit.deps.messenger = kit.messenger
    given = await AskPersonalLink(kit.deps)(kit.actor(member))  # at once, no waiting
    assert personal_links_made(kit.messenger) == [given.link]


# ------------------------------------------------------------ crashes and races


async def test_a_claim_abandoned_by_a_crash_is_taken_over_once_stale(kit: Kit) -> None:
    cohort = await personal_cohort(kit)
    [member] = await responders(kit, cohort, 1)

    class Dies(RecordingMessenger):
        """Telegram makes the link, and the process dies before it is stored."""

        async def create_invite_link(
            self,
            chat_id: int,
            name: str,
            *,
            join_request: bool = False,
            member_limit: int | None = None,
            expire_at: datetime | None = None,
        ) -> str:
            self.links.append((chat_id, "https://t.me/+orphan", join_request, member_limit))
            assert expire_at is not None
            self.link_expiry["https://t.me/+orphan"] = expire_at
            raise asyncio.CancelledError

    dying = Dies()
    kit.deps.messenger = dying
    with pytest.raises(asyncio.CancelledError):
        await AskPersonalLink(kit.deps)(kit.actor(member))
    kit.deps.messenger = kit.messenger
    row = await stored(kit, cohort, member.user_id)
    assert row is not None and (row.attempt, row.link) == (1, None)

    # While the claim is fresh, others wait: no second link is made.
    kit.clock.set(kit.clock.now() + CLAIM_LEASE - timedelta(seconds=1))
    assert await refusal(kit, kit.actor(member)) == "busy"
    assert kit.messenger.links == []

    # Once stale, the next ask makes the member's link; the orphan was never handed out.
    kit.clock.set(kit.clock.now() + timedelta(seconds=1))
    given = await AskPersonalLink(kit.deps)(kit.actor(member))
    [orphan] = [link for _, link, _, _ in dying.links]
    assert given.link != orphan
    row = await stored(kit, cohort, member.user_id)
    assert row is not None and (row.attempt, row.link) == (2, given.link)
    assert dying.link_expiry[orphan] <= given.expires_at  # it dies on its own
    assert (await AskPersonalLink(kit.deps)(kit.actor(member))).link == given.link


async def test_a_slow_ask_whose_claim_was_taken_over_revokes_its_link(kit: Kit) -> None:
    cohort = await personal_cohort(kit)
    [member] = await responders(kit, cohort, 1)
    taken_over: list[str] = []

    class Slow(RecordingMessenger):
        """Telegram answers the first ask only after the claim went stale and another
        ask took it over and made its own link."""

        async def create_invite_link(self, *args: object, **kwargs: object) -> str:
            link = await super().create_invite_link(*args, **kwargs)  # type: ignore[arg-type]
            if len(self.links) == 1:
                kit.clock.set(kit.clock.now() + CLAIM_LEASE)
                taken_over.append((await AskPersonalLink(kit.deps)(kit.actor(member))).link)
            return link

    slow = Slow()
    kit.deps.messenger = slow
    assert await refusal(kit, kit.actor(member)) == "busy"
    first, second = (link for _, link, _, _ in slow.links)
    assert taken_over == [second]
    assert slow.revoked == [(TASK_CHAT, first)]  # the member holds one live link
    row = await stored(kit, cohort, member.user_id)
    assert row is not None and row.link == second
    assert (await AskPersonalLink(kit.deps)(kit.actor(member))).link == second


async def test_two_asks_at_once_make_one_link(kit: Kit) -> None:
    cohort = await personal_cohort(kit)
    [member] = await responders(kit, cohort, 1)
    ask = AskPersonalLink(kit.deps)
    results = await asyncio.gather(
        ask(kit.actor(member)), ask(kit.actor(member)), return_exceptions=True
    )
    given = [r.link for r in results if not isinstance(r, BaseException)]
    busy = [r.code for r in results if isinstance(r, Refused)]
    assert len(personal_links_made(kit.messenger)) == 1
    assert len(given) >= 1 and set(given) == set(personal_links_made(kit.messenger))
    assert busy in ([], ["busy"])


# ------------------------------------------------------------ joining by a personal link


async def test_joining_by_ones_own_link_admits_once_and_spends_the_link(kit: Kit) -> None:
    cohort = await personal_cohort(kit)
    [member] = await responders(kit, cohort, 1)
    given = await AskPersonalLink(kit.deps)(kit.actor(member))

    joined = await kit.join()(TASK_CHAT, kit.actor(member), invite_link=given.link)
    assert joined.outcome == "admitted"
    assert await kit.stage(cohort.id, member.user_id) == Stage.ADMITTED
    assert kit.messenger.revoked == [(TASK_CHAT, given.link)]
    row = await stored(kit, cohort, member.user_id)
    assert row is not None and row.link is None

    # The same update again (a re-delivery): nothing more happens.
    again = await kit.join()(TASK_CHAT, kit.actor(member), invite_link=given.link)
    assert again.outcome == "already"
    assert kit.messenger.revoked == [(TASK_CHAT, given.link)]
    assert kit.messenger.removed == [] and kit.messenger.notices == []


async def test_a_link_passed_on_to_someone_who_did_not_answer(kit: Kit) -> None:
    cohort = await personal_cohort(kit)
    [owner] = await responders(kit, cohort, 1)
    [friend] = await kit.members(1)
    given = await AskPersonalLink(kit.deps)(kit.actor(owner))

    joined = await kit.join()(TASK_CHAT, kit.actor(friend), invite_link=given.link)
    assert joined.outcome == "removed"
    assert kit.messenger.removed == [(TASK_CHAT, friend.telegram_id)]
    assert kit.messenger.revoked == [(TASK_CHAT, given.link)]
    assert await kit.stage(cohort.id, friend.user_id) == Stage.JOINED
    assert await kit.stage(cohort.id, owner.user_id) == Stage.REPLIED
    told = {(ref.user_id, n.outcome) for ref, n in kit.messenger.notices}  # type: ignore[union-attr]
    assert told == {(friend.user_id, "not_yours"), (owner.user_id, "passed_on")}
    assert all(isinstance(n, AdmissionNotice) for _, n in kit.messenger.notices)

    # The owner asks again and gets a new link of their own.
    fresh = await AskPersonalLink(kit.deps)(kit.actor(owner))
    assert fresh.link != given.link
    assert personal_links_made(kit.messenger) == [given.link, fresh.link]
    assert (await kit.join()(TASK_CHAT, kit.actor(owner), invite_link=fresh.link)).outcome == (
        "admitted"
    )


async def test_a_link_passed_on_to_another_responder_admits_them(kit: Kit) -> None:
    cohort = await personal_cohort(kit)
    [owner, other] = await responders(kit, cohort, 2)
    given = await AskPersonalLink(kit.deps)(kit.actor(owner))

    joined = await kit.join()(TASK_CHAT, kit.actor(other), invite_link=given.link)
    assert joined.outcome == "admitted"
    assert await kit.stage(cohort.id, other.user_id) == Stage.ADMITTED
    assert await kit.stage(cohort.id, owner.user_id) == Stage.REPLIED
    assert kit.messenger.removed == []
    assert [(ref.user_id, n) for ref, n in kit.messenger.notices] == [
        (owner.user_id, AdmissionNotice("passed_on", cohort.code, "en"))
    ]


# ------------------------------------------------------------ the group's nudge


async def test_the_nudge_of_a_personal_cohort_leads_into_the_private_chat(kit: Kit) -> None:
    cohort = await personal_cohort(kit)
    [member] = await kit.members(1)
    await kit.run_until(warmup_at(2, "20:00"))
    assert await kit.reply()(WARMUP_CHAT, member.user_id, "1") == "recorded"
    kit.messenger.sent.clear()
    await AnnounceResponders(kit.deps)()
    [sent] = kit.messenger.sent_of(AdmissionsOpen)
    assert sent.message == AdmissionsOpen(1, 1, "en", None, f"join-{cohort.code}")
