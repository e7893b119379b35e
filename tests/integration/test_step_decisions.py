"""Retrying and skipping a step in doubt (funnels/steps.py) over real SQLite and
PostgreSQL: the talk held behind it goes on in order and at its pace; every refusal."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from funnels.kernel.actor import Actor
from funnels.kernel.messaging import DeliveryError, ScriptPost
from funnels.kernel.refusals import Refused
from funnels.ops.steps import DecideStepInGroup, RetryStep, SkipStep, StepsNeedingAttention
from tests.support.funnel_kit import WARMUP_CHAT, Kit, warmup_at

PART_ONE = ScriptPost("Corner shops\n— Ana\n\nPart one of the talk.", None, "en")
PART_TWO = ScriptPost("Part two of the talk.", None, "en")
LEADER = Actor(500, "Lena")
START_AT = warmup_at(1, "08:00")


async def refusal(call: Awaitable[object]) -> Refused:
    with pytest.raises(Refused) as caught:
        await call
    return caught.value


# ---------------------------------------------------------------- retry


async def test_a_retried_talk_part_is_sent_again_and_the_talk_goes_on_at_its_pace(
    kit: Kit,
) -> None:
    cohort = await kit.talk_in_doubt()
    kit.clock.set(warmup_at(1, "10:40"))  # the leader decides 40 minutes later

    decided = await RetryStep(kit.deps)(cohort.code.lower(), "d1_talk", by="Lena")

    assert (decided.cohort.id, decided.key, decided.resumed) == (
        cohort.id,
        "d1_talk",
        ["d1_talk.p1"],
    )
    first = await kit.step(cohort.id, "d1_talk")
    second = await kit.step(cohort.id, "d1_talk.p1")
    assert (first.status, first.due_at) == ("pending", warmup_at(1, "10:40"))
    assert (second.status, second.due_at, second.error) == (
        "pending",
        warmup_at(1, "10:42"),  # two minutes after the first part, as written
        None,
    )

    await kit.tick()
    assert [s.message for s in kit.messenger.sent] == [PART_ONE]
    assert (await kit.tick(warmup_at(1, "10:41"))).claimed == 0
    await kit.tick(warmup_at(1, "10:42"))

    assert [s.message for s in kit.messenger.sent] == [PART_ONE, PART_TWO]
    assert kit.messenger.unpinned == [(WARMUP_CHAT, kit.messenger.sent[0].message_id)]
    assert kit.messenger.slow_mode == {WARMUP_CHAT: 0}
    first = await kit.step(cohort.id, "d1_talk")
    assert (first.status, first.attempts) == ("done", 2)
    assert first.outcome is not None and first.outcome["retried_by"] == "Lena"
    assert (await kit.step(cohort.id, "d1_talk.p1")).status == "done"


async def test_a_retried_part_in_doubt_again_holds_the_rest_again(kit: Kit) -> None:
    cohort = await kit.talk_in_doubt()
    await RetryStep(kit.deps)(cohort.code, "d1_talk", by="ops")
    kit.messenger.fail_next.append(DeliveryError("timed out", definite=False))

    await kit.tick()

    assert (await kit.step(cohort.id, "d1_talk")).status == "unknown"
    assert (await kit.step(cohort.id, "d1_talk.p1")).status == "held"
    assert kit.messenger.sent == []


async def test_a_failed_step_can_be_retried_and_a_skipped_one_too(kit: Kit) -> None:
    cohort = await kit.start()
    kit.messenger.fail_next.append(DeliveryError("Bad Request: message is too long", definite=True))
    await kit.tick(warmup_at(1, "09:00"))
    assert (await kit.step(cohort.id, "d1_welcome")).status == "failed"

    decided = await RetryStep(kit.deps)(cohort.code, "d1_welcome", by="ops")
    await kit.tick()

    assert decided.resumed == []
    assert (await kit.step(cohort.id, "d1_welcome")).status == "done"

    await kit.tick(warmup_at(1, "13:00"))  # the envelope, found past its grace: skipped
    assert (await kit.step(cohort.id, "d1_envelope")).status == "skipped"
    await RetryStep(kit.deps)(cohort.code, "d1_envelope", by="ops")
    await kit.tick()
    assert (await kit.step(cohort.id, "d1_envelope")).status == "done"


# ---------------------------------------------------------------- skip


async def test_a_skipped_talk_part_lets_the_talk_go_on_at_once(kit: Kit) -> None:
    cohort = await kit.talk_in_doubt()
    kit.clock.set(warmup_at(1, "11:00"))

    decided = await SkipStep(kit.deps)(cohort.code, "d1_talk", by="Lena (Telegram 500)")

    assert decided.resumed == ["d1_talk.p1"]
    skipped = await kit.step(cohort.id, "d1_talk")
    assert (skipped.status, skipped.error) == ("skipped", "skipped by Lena (Telegram 500)")
    second = await kit.step(cohort.id, "d1_talk.p1")
    assert (second.status, second.due_at) == ("pending", warmup_at(1, "11:00"))

    report = await kit.tick()

    assert report.done == 1
    assert [s.message for s in kit.messenger.sent] == [PART_TWO]
    assert kit.messenger.slow_mode == {WARMUP_CHAT: 0}  # the talk's end lifts slow mode
    assert (await kit.step(cohort.id, "d1_talk.p1")).status == "done"
    assert (await kit.step(cohort.id, "d1_talk")).status == "skipped"  # never re-sent


async def test_skipping_a_talks_last_part_lifts_its_slow_mode(kit: Kit) -> None:
    cohort = await kit.talk_in_doubt()
    await RetryStep(kit.deps)(cohort.code, "d1_talk", by="Lena")
    await kit.tick()  # the first part again; then the second…
    kit.messenger.fail_next.append(DeliveryError("timed out", definite=False))
    await kit.tick(warmup_at(1, "10:30"))
    assert (await kit.step(cohort.id, "d1_talk.p1")).status == "unknown"  # …in doubt
    kit.messenger.slow_mode.clear()

    decided = await SkipStep(kit.deps)(cohort.code, "d1_talk.p1", by="Lena")

    assert decided.resumed == []
    assert kit.messenger.slow_mode == {WARMUP_CHAT: 0}  # nothing else would lift it


async def test_a_skipped_post_is_left_behind(kit: Kit) -> None:
    cohort = await kit.start()
    kit.messenger.fail_next.append(DeliveryError("timed out", definite=False))
    await kit.tick(warmup_at(1, "09:00"))

    decided = await SkipStep(kit.deps)(cohort.code, "d1_welcome", by="ops")

    assert decided.resumed == []
    assert (await kit.step(cohort.id, "d1_welcome")).status == "skipped"
    await kit.tick(warmup_at(1, "09:05"))
    assert kit.messenger.sent == []
    async with kit.store.transaction() as tx:
        assert await tx.steps.attention(cohort.id) == []


# ---------------------------------------------------------------- refusals


async def test_unknown_cohorts_and_steps_are_refused(kit: Kit) -> None:
    cohort = await kit.talk_in_doubt()
    for use in (RetryStep(kit.deps), SkipStep(kit.deps)):
        for code in ("NOPE", "", "C1\x00", "C" * 200):
            refused = await refusal(use(code, "d1_talk", by="ops"))
            assert refused.code == "no_cohort", code
        for key in ("d9_nothing", "", "d1 talk", "d1_talk\x00", "k" * 500):
            refused = await refusal(use(cohort.code, key, by="ops"))
            assert (refused.code, refused.params["code"]) == ("no_step", cohort.code), key
    assert (await kit.step(cohort.id, "d1_talk")).status == "unknown"


async def test_steps_in_the_wrong_state_are_refused_with_their_state(kit: Kit) -> None:
    cohort = await kit.talk_in_doubt()
    retry, skip = RetryStep(kit.deps), SkipStep(kit.deps)

    for use, key, code, status in (
        (retry, "d1_welcome", "cannot_retry", "done"),
        (retry, "d1_envelope", "cannot_retry", "pending"),
        (skip, "d1_welcome", "cannot_skip", "done"),
        (skip, "d1_envelope", "cannot_skip", "pending"),
    ):
        refused = await refusal(use(cohort.code, key, by="ops"))
        assert (refused.code, refused.params) == (code, {"step": key, "status": status})
    for use in (retry, skip):
        refused = await refusal(use(cohort.code, "d1_talk.p1", by="ops"))
        assert (refused.code, refused.params) == (
            "step_waiting",
            {"step": "d1_talk.p1", "on": "d1_talk"},
        )

    await skip(cohort.code, "d1_talk", by="ops")
    refused = await refusal(skip(cohort.code, "d1_talk", by="ops"))
    assert (refused.code, refused.params["status"]) == ("cannot_skip", "skipped")
    statuses = await kit.statuses(cohort.id)
    assert (statuses["d1_welcome"], statuses["d1_envelope"]) == ("done", "pending")


async def test_two_retries_at_once_retry_once(kit: Kit) -> None:
    cohort = await kit.talk_in_doubt()

    results = await asyncio.gather(
        RetryStep(kit.deps)(cohort.code, "d1_talk", by="Lena"),
        RetryStep(kit.deps)(cohort.code, "d1_talk", by="ops"),
        return_exceptions=True,
    )

    refused = [r for r in results if isinstance(r, Refused)]
    assert len(refused) == 1 and refused[0].params["status"] == "pending"
    await kit.run_until(warmup_at(1, "10:30"))
    assert [s.message for s in kit.messenger.sent] == [PART_ONE, PART_TWO]


# ---------------------------------------------------------------- reading and the group


async def test_steps_needing_attention_are_unknown_failed_and_held(kit: Kit) -> None:
    cohort = await kit.talk_in_doubt()

    found, steps = await StepsNeedingAttention(kit.deps)(cohort.code)

    assert found.id == cohort.id
    assert [(s.key, s.status, s.error) for s in steps] == [
        ("d1_talk", "unknown", "timed out"),
        ("d1_talk.p1", "held", "waiting for a decision on d1_talk"),
    ]
    assert (await refusal(StepsNeedingAttention(kit.deps)("NOPE"))).code == "no_cohort"


async def test_in_the_group_who_asks_is_checked_before_what_they_asked(kit: Kit) -> None:
    cohort = await kit.talk_in_doubt(code="LEAD", leader=LEADER)
    decide = DecideStepInGroup(kit.deps)
    stranger = Actor(777, "Sam")
    for key in (None, "d1_talk", "d9_nothing"):
        refused = await refusal(
            decide(chat_id=WARMUP_CHAT, actor=stranger, is_admin=False, action="skip", key=key)
        )
        assert refused.code == "leader_only"
    refused = await refusal(
        decide(chat_id=WARMUP_CHAT - 5, actor=LEADER, is_admin=False, action="retry", key="x")
    )
    assert refused.code == "none"
    refused = await refusal(
        decide(chat_id=WARMUP_CHAT, actor=LEADER, is_admin=False, action="retry", key=None)
    )
    assert (refused.code, refused.params) == ("step_usage", {"command": "retry"})
    assert (await kit.step(cohort.id, "d1_talk")).status == "unknown"

    decided = await decide(
        chat_id=WARMUP_CHAT, actor=LEADER, is_admin=False, action="skip", key="d1_talk"
    )

    assert decided.resumed == ["d1_talk.p1"]
    skipped = await kit.step(cohort.id, "d1_talk")
    assert skipped.error == "skipped by Lena (Telegram 500)"
    # Decided before the part's own time: it keeps its time.
    assert (await kit.step(cohort.id, "d1_talk.p1")).due_at == warmup_at(1, "10:02")


async def test_an_admin_decides_in_any_cohort(kit: Kit) -> None:
    cohort = await kit.talk_in_doubt(code="LEAD", leader=LEADER)
    admin = Actor(900, "Ada")

    decided = await DecideStepInGroup(kit.deps)(
        chat_id=WARMUP_CHAT, actor=admin, is_admin=True, action="retry", key="d1_talk"
    )

    assert decided.key == "d1_talk"
    first = await kit.step(cohort.id, "d1_talk")
    assert first.status == "pending"
    assert first.outcome == {"retried_by": "Ada (Telegram 900)"}
