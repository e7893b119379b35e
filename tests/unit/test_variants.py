"""A/B variants: how a script declares them, which arm an audience draws, and how the
arms are compared."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from funnels.kernel.stages import Stage
from funnels.ops.experiments import MIN_COHORTS, MIN_MEMBERS, compare, compare_reminder, went_on
from funnels.ops.ports import CohortFigures, RemindedMember
from funnels.scripts.model import Media, Pitch, Post, Reminders, ReminderText
from funnels.scripts.variants import arms, cohort_arm, draw, member_arm


def pitch(**extra: object) -> Pitch:
    return Pitch.model_validate(
        {
            "text": "Reply 1 to join.",
            "weight": 3,
            "variants": [{"id": "story", "text": "Reply 1 and start tomorrow."}],
            **extra,
        }
    )


def test_the_messages_own_text_is_arm_a_and_variants_follow() -> None:
    found = arms(pitch())
    assert [(a.id, a.weight, a.text) for a in found] == [
        ("a", 3, "Reply 1 to join."),
        ("story", 1, "Reply 1 and start tomorrow."),
    ]
    with_media = Post.model_validate(
        {
            "text": "Hi",
            "media": {"photo": "https://example.com/a.jpg"},
            "variants": [{"id": "b", "text": "Hello"}],
        }
    )
    assert arms(with_media)[1].media == Media(photo="https://example.com/a.jpg")
    assert [a.id for a in arms(Post(text="plain"))] == ["a"]


@pytest.mark.parametrize(
    ("variants", "says"),
    [
        ([{"id": "a", "text": "x"}], "not a variant id"),
        ([{"id": "B", "text": "x"}], "not a variant id"),
        ([{"id": "b", "text": "x"}, {"id": "b", "text": "y"}], "b twice"),
        ([{"id": "b", "text": "x", "weight": 0}], "greater than or equal to 1"),
        ([{"id": "b", "text": ""}], "at least 1 character"),
        ([{"id": f"v{i}", "text": "x"} for i in range(5)], "at most 4"),
        ([{"id": "b", "text": "x", "colour": "red"}], "Extra inputs"),
    ],
)
def test_bad_variants_are_refused_with_the_reason(variants: list[object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Pitch.model_validate({"text": "Reply 1", "variants": variants})


def test_the_same_audience_always_draws_the_same_arm_and_weights_hold() -> None:
    message = pitch()
    assert cohort_arm(message, "SEA-2647", "d7_pitch") == cohort_arm(
        message, "SEA-2647", "d7_pitch"
    )
    drawn = Counter(cohort_arm(message, f"C{i}", "d7_pitch").id for i in range(8000))
    assert abs(drawn["a"] / 8000 - 0.75) < 0.02  # weights 3 : 1
    # Another step draws independently of this one.
    other = Counter(
        (cohort_arm(message, f"C{i}", "d7_pitch").id, cohort_arm(message, f"C{i}", "d3_post").id)
        for i in range(8000)
    )
    assert abs(other[("story", "story")] / 8000 - 1 / 16) < 0.01
    assert draw(arms(Post(text="plain")), "anything").id == "a"


def _cohort(i: int, joined: int, replied: int) -> CohortFigures:
    stages = dict.fromkeys(Stage, 0)
    stages[Stage.JOINED], stages[Stage.REPLIED] = joined, replied
    return CohortFigures(
        id=i,
        code=f"C{i}",
        status="finished",
        region="SEA",
        leader_telegram_id=1,
        leader_name="L",
        parent_cohort_id=None,
        generation=1,
        start_date=date(2026, 1, 5),
        capacity=500,
        currency="USD",
        budget_minor=1,
        spent_minor=0,
        pitch_opened_at=None,
        script_hash="h",
        stages=stages,
    )


def _world(n: int, rate_a: float, rate_b: float, message: Pitch) -> list[CohortFigures]:
    """``n`` cohorts of 400; their reply rate depends on the arm they drew, with a
    little spread between cohorts."""
    out = []
    for i in range(n):
        arm = cohort_arm(message, f"C{i}", "d7_pitch").id
        base = rate_a if arm == "a" else rate_b
        out.append(_cohort(i, 400, round(400 * (base + (i % 3 - 1) * 0.01))))
    return out


def test_too_few_cohorts_is_said_plainly() -> None:
    message = pitch(weight=1)
    found = compare("s", "d7_pitch", "pitch", message, _world(6, 0.30, 0.40, message))
    assert found.verdict == "too_small" and found.leader is None
    assert f"fewer than {MIN_COHORTS}" in found.detail
    assert sum(a.cohorts for a in found.arms) == 6


def test_a_clear_difference_names_the_arm_and_its_interval() -> None:
    message = pitch(weight=1)
    found = compare("s", "d7_pitch", "pitch", message, _world(60, 0.30, 0.40, message))
    assert (found.verdict, found.leader) == ("better", "story")
    a, story = found.arms
    assert a.members == 400 * a.cohorts and story.members == 400 * story.cohorts
    assert a.rate is not None and story.rate is not None
    assert abs(a.rate - 0.30) < 0.01 and abs(story.rate - 0.40) < 0.01
    assert a.low is not None and a.high is not None and a.low < a.rate < a.high
    assert "converts better than a" in found.detail
    worse = compare("s", "d7_pitch", "pitch", message, _world(60, 0.40, 0.30, message))
    assert (worse.verdict, worse.leader) == ("worse", "story")


def test_equal_arms_over_many_cohorts_show_no_difference() -> None:
    message = pitch(weight=1)
    found = compare("s", "d7_pitch", "pitch", message, _world(60, 0.35, 0.35, message))
    assert found.verdict == "no_difference" and found.leader is None


# --------------------------------------------------------------------------- reminders


def reminder(**extra: object) -> ReminderText:
    return ReminderText.model_validate(
        {
            "text": "Today: {title}. /tasks shows how.",
            "variants": [{"id": "short", "text": "{title} is waiting ({count} open)."}],
            **extra,
        }
    )


def test_a_reminders_wording_names_only_what_it_can_fill_in() -> None:
    fine = Reminders.model_validate(
        {"ahead": {"text": "All done so far. The next task opens {when}. {{braces}}"}}
    )
    assert fine.ahead is not None and fine.on_track is None
    assert [a.text for a in arms(reminder())] == [
        "Today: {title}. /tasks shows how.",
        "{title} is waiting ({count} open).",
    ]


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"text": "Hi {name}"}, "{name} is not one of {title}, {count}, {when}"),
        ({"text": "Hi {0}"}, "{0} is not one of"),
        ({"text": "Hi {title.upper}"}, "is not one of"),
        ({"text": "Hi {title:>9}"}, "write {title} alone"),
        ({"text": "Hi {title!r}"}, "write {title} alone"),
        ({"text": "Hi { there"}, "unbalanced braces"),
        ({"text": ""}, "at least 1 character"),
        ({"text": "x" * 1025}, "at most 1024"),
        ({"text": "x", "variants": [{"id": "b", "text": "{nope}"}]}, "{nope} is not one of"),
        ({"text": "x", "variants": [{"id": "b", "text": "y", "media": {}}]}, "Extra inputs"),
        ({"text": "x", "variants": [{"id": "b", "text": "y"}, {"id": "b", "text": "z"}]}, "twice"),
        ({"text": "x", "colour": "red"}, "Extra inputs"),
    ],
)
def test_bad_reminder_wording_is_refused_with_the_reason(given: object, says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        Reminders.model_validate({"behind": given})
    with pytest.raises(ValidationError, match="Extra inputs"):
        Reminders.model_validate({"sleepy": {"text": "x"}})


def test_each_member_keeps_their_arm_and_weights_hold_across_members() -> None:
    message = reminder(weight=3)
    drawn = [member_arm(message, "SEA-0001", "on_track", user).id for user in range(4000)]
    again = [member_arm(message, "SEA-0001", "on_track", user).id for user in range(4000)]
    assert drawn == again
    share = Counter(drawn)["a"] / len(drawn)
    assert 0.72 < share < 0.78  # weight 3 against 1
    # Another kind of reminder is drawn on its own.
    behind = [member_arm(message, "SEA-0001", "behind", user).id for user in range(4000)]
    assert behind != drawn


def _reminded(user: int, went_on: bool, cohort: int = 1) -> RemindedMember:
    first = datetime(2026, 3, 10, 10, tzinfo=UTC)
    stages: dict[Stage, datetime | None] = dict.fromkeys(Stage)
    stages[Stage.JOINED] = first - timedelta(days=8)
    stages[Stage.REPLIED] = stages[Stage.ADMITTED] = first - timedelta(days=2)
    if went_on:
        stages[Stage.TASKED] = first + timedelta(hours=5)
    return RemindedMember(cohort, user, "on_track", first, stages)


def test_going_on_is_reaching_a_stage_beyond_the_one_at_the_first_reminder() -> None:
    assert went_on(_reminded(1, True))
    assert not went_on(_reminded(1, False))
    earlier = _reminded(1, False)
    earlier.stages[Stage.TASKED] = earlier.first_at - timedelta(hours=1)  # before it
    assert not went_on(earlier)
    skipped = _reminded(1, False)
    skipped.stages[Stage.SOLD] = skipped.first_at + timedelta(days=1)  # a stage skipped
    assert went_on(skipped)


def _members_world(n: int, rate_a: float, rate_b: float, message: ReminderText) -> list[Any]:
    out = []
    for user in range(n):
        arm = member_arm(message, "C1", "on_track", user).id
        rate = rate_a if arm == "a" else rate_b
        out.append(_reminded(user, (user * 7919 % 1000) / 1000 < rate))
    return out


def test_reminder_arms_are_compared_member_by_member() -> None:
    message = reminder()
    few = compare_reminder(
        "s", "on_track", message, _members_world(40, 0.3, 0.6, message), {1: "C1"}
    )
    assert (few.kind, few.step_key, few.stage, few.verdict) == (
        "reminder",
        "reminder.on_track",
        "next",
        "too_small",
    )
    assert "too few members to tell" in few.detail and str(MIN_MEMBERS) in few.detail
    clear = compare_reminder(
        "s", "on_track", message, _members_world(4000, 0.30, 0.40, message), {1: "C1"}
    )
    assert (clear.verdict, clear.leader) == ("better", "short")
    a, short = clear.arms
    assert a.members + short.members == 4000 and a.cohorts == short.cohorts == 1
    assert a.rate is not None and abs(a.rate - 0.30) < 0.03
    assert a.low is not None and a.high is not None and a.low < a.rate < a.high
    same = compare_reminder(
        "s", "on_track", message, _members_world(4000, 0.35, 0.35, message), {1: "C1"}
    )
    assert same.verdict == "no_difference"
