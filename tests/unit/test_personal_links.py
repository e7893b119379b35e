"""Unit tests for the decisions behind personal admission links (no I/O): who may ask,
whether an ask hands out the stored link, makes one or waits on another's claim, what a
join by a personal link does, and the /start payload of the "come on over" button."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from funnels.kernel.records import CohortRecord, PersonalLinkRecord
from funnels.kernel.stages import Stage
from funnels.warmup.admissions import code_of_payload, start_payload
from funnels.warmup.personal import (
    CLAIM_LEASE,
    LINK_LIFETIME,
    RENEW_BEFORE,
    Give,
    Make,
    decide_join,
    next_move,
    refusal_for,
)

NOW = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


def a_cohort(**changes: object) -> CohortRecord:
    cohort = CohortRecord(
        id=7,
        code="KQ7X2M",
        script_id="seven-plus-twentyone",
        script_version=1,
        script_hash="h",
        script_body="",
        locale="en",
        timezone="Asia/Singapore",
        capacity=500,
        currency="USD",
        budget_minor=100_000,
        spent_minor=0,
        start_date=date(2026, 3, 2),
        ends_at=NOW + timedelta(days=20),
        status="running",
        warmup_chat_id=-1001,
        task_chat_id=-1002,
        pitch_opened_at=NOW - timedelta(hours=1),
        pitch_closed_at=None,
        region_id=None,
        leader_id=1,
        parent_cohort_id=None,
        admission="personal",
    )
    return replace(cohort, **changes)  # type: ignore[arg-type]


def a_link(**changes: object) -> PersonalLinkRecord:
    record = PersonalLinkRecord(
        cohort_id=7,
        user_id=5,
        attempt=1,
        claimed_at=None,
        link="https://t.me/+abc",
        expires_at=NOW + timedelta(hours=20),
    )
    return replace(record, **changes)  # type: ignore[arg-type]


# ------------------------------------------------------------ who may ask


def test_a_responder_may_ask_and_so_may_anyone_further_on() -> None:
    for stage in (Stage.REPLIED, Stage.ADMITTED, Stage.TASKED, Stage.SOLD):
        assert refusal_for(a_cohort(), stage, NOW) is None


@pytest.mark.parametrize("stage", [None, Stage.JOINED, Stage.ENGAGED])
def test_someone_who_did_not_answer_is_refused(stage: Stage | None) -> None:
    assert refusal_for(a_cohort(), stage, NOW) == "not_replied"
    closed = a_cohort(pitch_closed_at=NOW - timedelta(minutes=1))
    assert refusal_for(closed, stage, NOW) == "closed"


def test_refusals_in_the_order_a_member_can_act_on_them() -> None:
    assert refusal_for(a_cohort(admission="requests"), Stage.REPLIED, NOW) == "by_request"
    assert refusal_for(a_cohort(status="finished"), Stage.REPLIED, NOW) == "ended"
    assert refusal_for(a_cohort(status="cancelled"), Stage.REPLIED, NOW) == "ended"
    assert refusal_for(a_cohort(ends_at=NOW), Stage.REPLIED, NOW) == "ended"
    assert refusal_for(a_cohort(task_chat_id=None), Stage.REPLIED, NOW) == "no_task_group"
    # A paused cohort still lets its responders in.
    assert refusal_for(a_cohort(status="paused"), Stage.REPLIED, NOW) is None


# ------------------------------------------------------------ what an ask does


def test_the_first_ask_makes_a_link_that_expires_a_day_later() -> None:
    assert next_move(None, a_cohort(), NOW) == Make(None, NOW + LINK_LIFETIME)


def test_never_valid_past_the_cohorts_end() -> None:
    ending = a_cohort(ends_at=NOW + timedelta(hours=3))
    assert next_move(None, ending, NOW) == Make(None, NOW + timedelta(hours=3))


def test_asking_again_gives_the_same_unused_link() -> None:
    stored = a_link()
    assert next_move(stored, a_cohort(), NOW) == Give("https://t.me/+abc", stored.expires_at)


def test_a_link_about_to_expire_is_replaced() -> None:
    soon = a_link(expires_at=NOW + RENEW_BEFORE, attempt=3)
    assert next_move(soon, a_cohort(), NOW) == Make(
        3, NOW + LINK_LIFETIME, replaces="https://t.me/+abc"
    )
    gone = a_link(expires_at=NOW - timedelta(hours=1))
    move = next_move(gone, a_cohort(), NOW)
    assert isinstance(move, Make) and move.replaces == "https://t.me/+abc"


def test_a_fresh_claim_makes_others_wait() -> None:
    claimed = a_link(link=None, claimed_at=NOW - CLAIM_LEASE + timedelta(seconds=1))
    assert next_move(claimed, a_cohort(), NOW) is None


def test_a_stale_claim_is_taken_over() -> None:
    abandoned = a_link(link=None, attempt=2, claimed_at=NOW - CLAIM_LEASE)
    assert next_move(abandoned, a_cohort(), NOW) == Make(2, NOW + LINK_LIFETIME, stale=True)


def test_after_a_used_or_released_link_a_new_one_is_made() -> None:
    spent = a_link(link=None, claimed_at=None, attempt=4)
    assert next_move(spent, a_cohort(), NOW) == Make(4, NOW + LINK_LIFETIME)


# ------------------------------------------------------------ a join by a personal link


@pytest.mark.parametrize("stage", [Stage.REPLIED, Stage.ADMITTED, Stage.SHOPKEEPER])
def test_a_responder_is_admitted_whoever_the_link_was_for(stage: Stage) -> None:
    assert decide_join(stage) == "admit"


@pytest.mark.parametrize("stage", [None, Stage.JOINED, Stage.ENGAGED])
def test_anyone_else_is_taken_out(stage: Stage | None) -> None:
    assert decide_join(stage) == "remove"


# ------------------------------------------------------------ the button's payload


def test_start_payload_round_trip() -> None:
    cohort = a_cohort()
    payload = start_payload(cohort)
    assert payload == "join-KQ7X2M"
    assert code_of_payload(payload) == "KQ7X2M"


@pytest.mark.parametrize(
    "payload", [None, "", "join-", "join", "ref-ABC", "join-AB CD", "join-../x", "join-" + "A" * 17]
)
def test_other_payloads_are_not_joins(payload: str | None) -> None:
    assert code_of_payload(payload) is None
