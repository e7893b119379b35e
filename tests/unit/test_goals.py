"""Unit tests for funnels.ladder.goals: contributions, targets, status and progress lines."""

from __future__ import annotations

from typing import Any

import pytest

from funnels.ladder.goals import (
    Contribution,
    GoalStatus,
    LeafProgress,
    contributions,
    describe_progress,
    evaluate,
    target,
)
from funnels.scripts.model import Goal, Script


def goal_of(spec: dict[str, Any]) -> Goal:
    """Build the goal through a whole Script, the way it reaches the engine."""
    script = Script.model_validate(
        {
            "id": "line",
            "version": 1,
            "locale": "en",
            "title": "Line",
            "budget": {"currency": "CNY", "total": "800.00"},
            "warmup": {
                "days": 7,
                "steps": [
                    {"id": "d1_welcome", "at": {"day": 1, "time": "09:00"}, "post": {"text": "hi"}},
                ],
            },
            "tasks": {
                "days": 21,
                "ladder": [
                    {
                        "id": "task_one",
                        "title": "T",
                        "how": "Do it",
                        "unlock": {"day": 1},
                        "goal": spec,
                    },
                ],
            },
        }
    )
    return script.task("task_one").goal


# --- count leaves -----------------------------------------------------------------------


def test_count_leaf_contributes_one_per_matching_event() -> None:
    goal = goal_of({"event": "fan.locked", "count": 10})
    assert contributions(goal, "fan.locked", {"fan": 7}) == [Contribution(0, 1, None)]
    assert contributions(goal, "link.clicked", {}) == []


def test_count_leaf_status() -> None:
    goal = goal_of({"event": "fan.locked", "count": 10})
    assert target(goal, "CNY") == 10
    assert evaluate(goal, {}, "CNY") == GoalStatus(done=False, ratio=0.0)
    assert evaluate(goal, {0: 4}, "CNY") == GoalStatus(done=False, ratio=0.4)
    assert evaluate(goal, {0: 10}, "CNY") == GoalStatus(done=True, ratio=1.0)
    assert evaluate(goal, {0: 25}, "CNY") == GoalStatus(done=True, ratio=1.0)


def test_count_defaults_to_one() -> None:
    goal = goal_of({"event": "order.paid"})
    assert target(goal, "CNY") == 1
    assert not evaluate(goal, {}, "CNY").done
    assert evaluate(goal, {0: 1}, "CNY").done


def test_where_filter_needs_every_key_equal() -> None:
    goal = goal_of({"event": "order.paid", "where": {"channel": "shop", "first": True}})
    assert contributions(goal, "order.paid", {"channel": "shop", "first": True, "x": 1}) == [
        Contribution(0, 1, None)
    ]
    assert contributions(goal, "order.paid", {"channel": "app", "first": True}) == []
    assert contributions(goal, "order.paid", {"channel": "shop"}) == []


def test_where_does_not_confuse_bool_and_int() -> None:
    flag = goal_of({"event": "order.paid", "where": {"first": True}})
    assert contributions(flag, "order.paid", {"first": 1}) == []
    number = goal_of({"event": "order.paid", "where": {"items": 1}})
    assert contributions(number, "order.paid", {"items": True}) == []
    assert contributions(number, "order.paid", {"items": 1}) == [Contribution(0, 1, None)]
    assert contributions(number, "order.paid", {"items": "1"}) == []


# --- unique leaves ----------------------------------------------------------------------


def test_unique_leaf_keys_on_the_field_value() -> None:
    goal = goal_of({"event": "link.clicked", "unique": "visitor", "count": 100})
    assert contributions(goal, "link.clicked", {"visitor": "abc"}) == [Contribution(0, 1, "abc")]
    assert contributions(goal, "link.clicked", {"visitor": 42}) == [Contribution(0, 1, "42")]
    assert contributions(goal, "link.clicked", {"other": "abc"}) == []
    assert contributions(goal, "link.clicked", {"visitor": None}) == []
    assert target(goal, "CNY") == 100
    assert evaluate(goal, {0: 50}, "CNY") == GoalStatus(done=False, ratio=0.5)
    assert evaluate(goal, {0: 100}, "CNY").done


# --- sum leaves -------------------------------------------------------------------------


def test_sum_leaf_adds_the_integer_field() -> None:
    goal = goal_of({"event": "order.paid", "sum": "amount", "at_least": "100.00"})
    assert contributions(goal, "order.paid", {"amount": 2599}) == [Contribution(0, 2599, None)]
    assert target(goal, "CNY") == 10_000
    assert target(goal, "JPY") == 100
    assert evaluate(goal, {0: 2599}, "CNY") == GoalStatus(done=False, ratio=0.2599)
    assert evaluate(goal, {0: 10_000}, "CNY").done


@pytest.mark.parametrize(
    "data", [{}, {"amount": "2599"}, {"amount": 25.99}, {"amount": True}, {"amount": None}]
)
def test_sum_leaf_ignores_missing_or_non_integer_fields(data: dict[str, object]) -> None:
    goal = goal_of({"event": "order.paid", "sum": "amount", "at_least": "100.00"})
    assert contributions(goal, "order.paid", data) == []


def test_negative_progress_shows_an_empty_bar() -> None:
    goal = goal_of({"event": "order.paid", "sum": "amount", "at_least": "10.00"})
    assert evaluate(goal, {0: -500}, "CNY") == GoalStatus(done=False, ratio=0.0)


def test_zero_target_is_met_at_once() -> None:
    goal = goal_of({"event": "order.paid", "sum": "amount", "at_least": "0"})
    assert target(goal, "CNY") == 0
    assert evaluate(goal, {}, "CNY") == GoalStatus(done=True, ratio=1.0)


# --- branches ---------------------------------------------------------------------------


ALL_GOAL = {
    "all": [
        {"event": "fan.locked", "count": 10},
        {"event": "order.paid", "sum": "amount", "at_least": "50.00"},
    ]
}


def test_all_needs_every_child_and_averages_the_bar() -> None:
    goal = goal_of(ALL_GOAL)
    assert evaluate(goal, {0: 10}, "CNY") == GoalStatus(done=False, ratio=0.5)
    assert evaluate(goal, {0: 5, 1: 2500}, "CNY") == GoalStatus(done=False, ratio=0.5)
    assert evaluate(goal, {0: 10, 1: 5000}, "CNY") == GoalStatus(done=True, ratio=1.0)


def test_any_needs_one_child_and_shows_the_best_bar() -> None:
    goal = goal_of(
        {
            "any": [
                {"event": "order.paid", "count": 1},
                {"event": "fan.locked", "count": 20},
            ]
        }
    )
    assert evaluate(goal, {1: 5}, "CNY") == GoalStatus(done=False, ratio=0.25)
    assert evaluate(goal, {0: 1}, "CNY") == GoalStatus(done=True, ratio=1.0)
    assert evaluate(goal, {1: 20}, "CNY").done


def test_one_event_may_feed_several_leaves() -> None:
    goal = goal_of(
        {
            "all": [
                {"event": "order.paid", "count": 3},
                {"event": "order.paid", "sum": "amount", "at_least": "50.00"},
                {"event": "order.paid", "unique": "buyer", "count": 2},
                {"event": "fan.locked"},
            ]
        }
    )
    assert contributions(goal, "order.paid", {"amount": 1200, "buyer": "u1"}) == [
        Contribution(0, 1, None),
        Contribution(1, 1200, None),
        Contribution(2, 1, "u1"),
    ]
    assert contributions(goal, "fan.locked", {}) == [Contribution(3, 1, None)]


NESTED = {
    "all": [
        {"event": "fan.locked", "count": 10},  # leaf 0
        {
            "any": [
                {"event": "order.paid", "count": 1},  # leaf 1
                {
                    "all": [
                        {"event": "link.clicked", "unique": "visitor", "count": 100},  # leaf 2
                        {"event": "post.shared", "where": {"channel": "moments"}},  # leaf 3
                    ]
                },
            ]
        },
    ]
}


def test_nested_leaves_are_indexed_depth_first() -> None:
    goal = goal_of(NESTED)
    assert [leaf.event for leaf in goal.leaves()] == [
        "fan.locked",
        "order.paid",
        "link.clicked",
        "post.shared",
    ]
    assert contributions(goal, "post.shared", {"channel": "moments"}) == [Contribution(3, 1, None)]
    assert contributions(goal, "link.clicked", {"visitor": "v9"}) == [Contribution(2, 1, "v9")]


def test_nested_all_any_all() -> None:
    goal = goal_of(NESTED)
    # Neither branch of the any: met, fans half way.
    status = evaluate(goal, {0: 5, 2: 50}, "CNY")
    assert not status.done
    # any = max(order 0, inner all mean(0.5, 0)) = 0.25; outer all = mean(0.5, 0.25).
    assert status.ratio == pytest.approx(0.375)
    # The inner all: completes the any:, but fans are still short.
    status = evaluate(goal, {0: 5, 2: 100, 3: 1}, "CNY")
    assert not status.done
    assert status.ratio == pytest.approx(0.75)
    # Fans done and an order instead of the inner all:.
    assert evaluate(goal, {0: 10, 1: 1}, "CNY") == GoalStatus(done=True, ratio=1.0)
    assert evaluate(goal, {0: 10, 2: 100, 3: 1}, "CNY").done
    assert not evaluate(goal, {0: 10, 2: 100}, "CNY").done


def test_target_refuses_a_branch() -> None:
    with pytest.raises(ValueError, match="all:/any:"):
        target(goal_of(ALL_GOAL), "CNY")


# --- progress lines ---------------------------------------------------------------------


def test_describe_progress_lists_every_leaf_with_value_and_target() -> None:
    goal = goal_of(NESTED)
    assert describe_progress(goal, {0: 4, 2: 120}, "CNY") == [
        LeafProgress("fan.locked", "fan.locked", "count", 4, 10),
        LeafProgress("order.paid", "order.paid", "count", 0, 1),
        LeafProgress("link.clicked", "link.clicked", "unique", 120, 100),
        LeafProgress("post.shared [channel=moments]", "post.shared", "count", 0, 1),
    ]


def test_describe_progress_of_a_sum_is_money_in_minor_units_of_the_currency() -> None:
    goal = goal_of({"event": "order.paid", "sum": "amount", "at_least": "12.50"})
    assert describe_progress(goal, {0: 700}, "CNY") == [
        LeafProgress("order.paid", "order.paid", "sum", 700, 1250, "CNY")
    ]
    yen = {"event": "order.paid", "sum": "amount", "at_least": "500"}
    [jpy] = describe_progress(goal_of(yen), {}, "JPY")
    assert (jpy.target, jpy.currency) == (500, "JPY")  # no minor unit in yen
