"""Proof tasks and how-tos over SQLite and PostgreSQL: a screenshot is stored only for an
open proof task, goes to the leader, and counts once when approved; a rejection tells
the member why and lets them send another; only the leader or an admin decides, once."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from sqlalchemy import select

from funnels.kernel.actor import Actor
from funnels.kernel.messaging import Photo, ProofDecided, ProofForReview, RewardNotice
from funnels.kernel.records import CohortRecord, MemberRef
from funnels.kernel.refusals import Refused
from funnels.ladder.progress import TaskHowTo
from funnels.ladder.proofs import DecideProof, ProofChoice, ProofSent, SubmitProof
from funnels.scripts.loader import load_script_text
from storage.models import Proof
from tests.support.funnel_kit import (
    TASK_CHAT,
    Kit,
    events_t,
    ledger_t,
    progress_t,
    script_text,
    task_at,
)

proofs_t = Proof.__table__

PROOF_TASKS = """\
    - id: share_story
      title: Share your story
      how: Post it in your own words, then send me a screenshot.
      unlock: {day: 1, time: "09:00"}
      goal: {event: proof.approved, where: {task: share_story}, count: 1}
      reward: {amount: "0.30"}
      proof: true
    - id: second_post
      title: A second post
      how: Post again and send a screenshot.
      unlock: {day: 2, time: "09:00"}
      goal: {event: proof.approved, where: {task: second_post}, count: 1}
      proof: true
"""
NOON = task_at(1, "12:00")
LEADER = Actor(800, "Lena")
STRANGER = Actor(801, "Sam")


async def proof_cohort(kit: Kit, at: datetime = NOON) -> tuple[CohortRecord, MemberRef, MemberRef]:
    """A cohort led by LEADER with the two proof tasks, one member admitted; the clock at
    ``at`` (task day 1, noon)."""
    loaded = load_script_text(script_text(budget="2.00") + PROOF_TASKS, "proofs.yaml")
    async with kit.store.transaction() as tx:
        leader = await tx.users.ensure_user(LEADER.telegram_id, LEADER.name, "en", kit.clock.now())
        await tx.users.ensure_user(STRANGER.telegram_id, STRANGER.name, "en", kit.clock.now())
        await tx.commit()
    cohort = await kit.start(loaded=loaded, leader=leader)
    async with kit.store.transaction() as tx:
        await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
        await tx.commit()
    [member] = await kit.admitted(cohort, 1)
    kit.clock.set(at)
    return cohort, leader, member


async def stored(kit: Kit) -> list[tuple[str, str, str | None, int | None]]:
    rows = await kit.rows(
        select(
            proofs_t.c.task_id, proofs_t.c.state, proofs_t.c.reason, proofs_t.c.decided_by
        ).order_by(proofs_t.c.id)
    )
    return [(r.task_id, r.state, r.reason, r.decided_by) for r in rows]


async def test_a_screenshot_goes_to_the_leader_and_its_approval_counts_once(kit: Kit) -> None:
    cohort, leader, member = await proof_cohort(kit)
    sent = await SubmitProof(kit.deps)(kit.actor(member), "photo-1")
    assert isinstance(sent, ProofSent) and sent.reached_leader
    assert sent.task_title == "Share your story"
    [(to, review)] = kit.messenger.notices
    assert to.user_id == leader.user_id
    assert review == ProofForReview(
        sent.proof_id,
        f"Member {member.telegram_id}",
        "Share your story",
        cohort.code,
        Photo("photo-1"),
        "en",
    )
    assert await stored(kit) == [("share_story", "pending", None, None)]

    decision = await DecideProof(kit.deps)(
        LEADER, sent.proof_id, approve=True, reason=None, is_admin=False
    )
    assert decision.proof.state == "approved" and decision.member_told
    assert await stored(kit) == [("share_story", "approved", None, leader.user_id)]
    told = [m for r, m in kit.messenger.notices if r.user_id == member.user_id]
    assert ProofDecided("Share your story", True, None, "en") in told
    assert any(isinstance(m, RewardNotice) and m.amount_minor == 30 for m in told)
    [row] = await kit.rows(
        select(progress_t.c.completed_at).where(progress_t.c.task_id == "share_story")
    )
    assert row.completed_at is not None

    # A second decision, either way, is refused and counts nothing again.
    for approve, reason in ((True, None), (False, "unreadable")):
        with pytest.raises(Refused) as refused:
            await DecideProof(kit.deps)(
                LEADER, sent.proof_id, approve=approve, reason=reason, is_admin=False
            )
        assert (refused.value.code, refused.value.params) == (
            "proof_decided",
            {"state": "approved"},
        )
    assert await stored(kit) == [("share_story", "approved", None, leader.user_id)]
    assert await kit.count(events_t, events_t.c.source == "proofs") == 1
    assert await kit.count(ledger_t) == 1
    # The task is done: another screenshot has no task to go to, and is not kept.
    with pytest.raises(Refused) as refused:
        await SubmitProof(kit.deps)(kit.actor(member), "photo-2")
    assert refused.value.code == "proof_no_task"
    assert len(await stored(kit)) == 1


async def test_a_rejected_screenshot_tells_why_and_a_new_one_may_follow(kit: Kit) -> None:
    _cohort, _leader, member = await proof_cohort(kit)
    first = await SubmitProof(kit.deps)(kit.actor(member), "photo-1")
    assert isinstance(first, ProofSent)
    # While it waits, a second one for the same task is refused and not stored.
    with pytest.raises(Refused) as refused:
        await SubmitProof(kit.deps)(kit.actor(member), "photo-1b")
    assert (refused.value.code, refused.value.params) == (
        "proof_pending",
        {"title": "Share your story"},
    )

    await DecideProof(kit.deps)(
        LEADER, first.proof_id, approve=False, reason="not_public", is_admin=False
    )
    told = [m for r, m in kit.messenger.notices if r.user_id == member.user_id]
    assert told == [ProofDecided("Share your story", False, "not_public", "en")]
    assert await kit.count(events_t) == 0

    again = await SubmitProof(kit.deps)(kit.actor(member), "photo-2")
    assert isinstance(again, ProofSent) and again.proof_id != first.proof_id
    await DecideProof(kit.deps)(LEADER, again.proof_id, approve=True, reason=None, is_admin=False)
    assert [(t, s, r) for t, s, r, _ in await stored(kit)] == [
        ("share_story", "rejected", "not_public"),
        ("share_story", "approved", None),
    ]
    assert await kit.count(ledger_t) == 1


async def test_no_open_proof_task_means_nothing_is_stored(kit: Kit) -> None:
    cohort, _leader, member = await proof_cohort(kit, task_at(1, "08:59"))
    [outsider] = await kit.users(1)
    for who, at in ((member, task_at(1, "08:59")), (outsider, task_at(1, "12:00"))):
        kit.clock.set(at)  # before the proof task unlocks; not in a task group
        with pytest.raises(Refused) as refused:
            await SubmitProof(kit.deps)(kit.actor(who), "photo")
        assert refused.value.code == "proof_no_task"
    kit.clock.set(cohort.ends_at)  # the cohort is over
    with pytest.raises(Refused):
        await SubmitProof(kit.deps)(kit.actor(member), "photo")
    assert await stored(kit) == []
    assert kit.messenger.notices == []


async def test_with_two_proof_tasks_open_the_member_picks_one(kit: Kit) -> None:
    cohort, _leader, member = await proof_cohort(kit)
    kit.clock.set(task_at(2, "10:00"))
    choice = await SubmitProof(kit.deps)(kit.actor(member), "photo")
    assert choice == ProofChoice(cohort.id, ((3, "Share your story"), (4, "A second post")))
    assert await stored(kit) == []
    # A pick naming no open proof task (a task without proofs, another cohort, nothing).
    for pick in ((cohort.id, 0), (cohort.id + 1, 4), (cohort.id, 99)):
        with pytest.raises(Refused) as refused:
            await SubmitProof(kit.deps)(kit.actor(member), "photo", pick)
        assert refused.value.code == "button_stale"
    sent = await SubmitProof(kit.deps)(kit.actor(member), "photo", (cohort.id, 4))
    assert isinstance(sent, ProofSent) and sent.task_title == "A second post"
    assert await stored(kit) == [("second_post", "pending", None, None)]


async def test_only_the_leader_or_an_admin_decides(kit: Kit) -> None:
    _cohort, _leader, member = await proof_cohort(kit)
    sent = await SubmitProof(kit.deps)(kit.actor(member), "photo")
    assert isinstance(sent, ProofSent)
    decide = DecideProof(kit.deps)
    cases = [
        (STRANGER, sent.proof_id, False, "unreadable", False, "proof_not_yours"),
        (kit.actor(member), sent.proof_id, True, None, False, "proof_not_yours"),
        (LEADER, sent.proof_id + 1, True, None, False, "proof_unknown"),
        (LEADER, sent.proof_id, False, "because", False, "button_stale"),
    ]
    for actor, proof_id, approve, reason, admin, code in cases:
        with pytest.raises(Refused) as refused:
            await decide(actor, proof_id, approve=approve, reason=reason, is_admin=admin)
        assert refused.value.code == code
        if code != "button_stale":  # pressing Reject (before a reason) is refused alike
            with pytest.raises(Refused) as refused:
                await decide.check(actor, proof_id, is_admin=admin)
            assert refused.value.code == code
    assert await stored(kit) == [("share_story", "pending", None, None)]
    # An admin may decide any cohort's proof.
    await decide(STRANGER, sent.proof_id, approve=False, reason="other", is_admin=True)
    assert [s for _, s, _, _ in await stored(kit)] == ["rejected"]


async def test_two_decisions_at_once_leave_one(kit: Kit) -> None:
    _cohort, _leader, member = await proof_cohort(kit)
    sent = await SubmitProof(kit.deps)(kit.actor(member), "photo")
    assert isinstance(sent, ProofSent)
    decide = DecideProof(kit.deps)
    results = await asyncio.gather(
        decide(LEADER, sent.proof_id, approve=True, reason=None, is_admin=False),
        decide(STRANGER, sent.proof_id, approve=False, reason="other", is_admin=True),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, Refused)]
    assert len(refused) == 1 and refused[0].code == "proof_decided"
    [(_, state, _, _)] = await stored(kit)
    assert await kit.count(events_t) == (1 if state == "approved" else 0)


async def test_a_how_to_is_shown_for_an_open_task_only(kit: Kit) -> None:
    cohort, _leader, member = await proof_cohort(kit)
    links: list[tuple[int, int, str]] = []

    async def link_for(c: CohortRecord, m: MemberRef, task_id: str) -> str | None:
        links.append((c.id, m.user_id, task_id))
        return "https://example.test/r/abc" if task_id == "invite_fans" else None

    how_to = TaskHowTo(kit.deps, task_link=link_for)
    guide = await how_to(kit.actor(member), cohort.id, 0)
    assert (guide.task_id, guide.link, guide.proof) == (
        "invite_fans",
        "https://example.test/r/abc",
        False,
    )
    assert guide.how == "Share your link with three friends."
    proof = await how_to(kit.actor(member), cohort.id, 3)
    assert (proof.task_id, proof.link, proof.proof) == ("share_story", None, True)
    assert links == [
        (cohort.id, member.user_id, "invite_fans"),
        (cohort.id, member.user_id, "share_story"),
    ]
    assert (await TaskHowTo(kit.deps)(kit.actor(member), cohort.id, 0)).link is None

    # Locked (first_sale unlocks on day 2), out of range, another cohort: out of date.
    for cohort_id, index in ((cohort.id, 2), (cohort.id, 5), (cohort.id, -1), (cohort.id + 7, 0)):
        with pytest.raises(Refused) as refused:
            await how_to(kit.actor(member), cohort_id, index)
        assert refused.value.code == "button_stale"
    # Done since the list was sent.
    await kit.ingest()("shop", [kit.event("fan.locked", kit.clock.now(), member) for _ in range(3)])
    with pytest.raises(Refused) as refused:
        await how_to(kit.actor(member), cohort.id, 0)
    assert refused.value.code == "task_done"
