"""The KPI arithmetic (``funnels.ops.kpis``, ``funnels.ops.lines``): conversions, cost
per sale, ISO weeks, leaders and their graduates' lines, the tree of lines, and red
flags."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from funnels.kernel.stages import Stage
from funnels.ops.kpis import (
    FunnelFigures,
    cost_per,
    iso_week,
    leader_lines,
    red_flags,
    stage_lines,
    week_days,
)
from funnels.ops.lines import line_tree
from funnels.ops.ports import CohortFigures, RegionLine


def cohort(
    id: int,
    *,
    leader: int | None = 1,
    parent: int | None = None,
    generation: int = 1,
    region: str | None = "SEA",
    joined: int = 100,
    replied: int = 30,
    sold: int = 10,
    spent: int = 1000,
    budget: int = 5000,
    currency: str = "USD",
    status: str = "running",
    pitched: bool = True,
) -> CohortFigures:
    stages = dict.fromkeys(Stage, 0)
    stages.update({Stage.JOINED: joined, Stage.ENGAGED: joined, Stage.REPLIED: replied})
    stages.update({Stage.ADMITTED: replied, Stage.TASKED: sold, Stage.SOLD: sold})
    return CohortFigures(
        id=id,
        code=f"C{id}",
        status=status,
        region=region,
        leader_telegram_id=leader,
        leader_name=f"Leader {leader}",
        parent_cohort_id=parent,
        generation=generation,
        start_date=date(2026, 11, 16),
        capacity=500,
        currency=currency,
        budget_minor=budget,
        spent_minor=spent,
        pitch_opened_at=datetime(2026, 11, 22, tzinfo=UTC) if pitched else None,
        script_hash="h1",
        stages=stages,
    )


def test_conversions_from_the_stage_before_and_from_joined() -> None:
    lines = stage_lines({Stage.JOINED: 200, Stage.ENGAGED: 150, Stage.REPLIED: 60})
    assert (lines[0].from_previous, lines[0].from_joined) == (None, 1.0)
    assert (lines[1].from_previous, lines[1].from_joined) == (0.75, 0.75)
    assert (lines[2].from_previous, lines[2].from_joined) == (0.4, 0.3)
    assert (lines[3].members, lines[3].from_previous) == (0, 0.0)
    assert lines[4].from_previous is None  # over a stage nobody reached
    empty = stage_lines({})
    assert all(line.from_joined is None for line in empty)


def test_cost_per_sale_rounds_half_up_and_needs_a_sale() -> None:
    assert cost_per(1000, 3) == 333
    assert cost_per(1001, 2) == 501  # 500.5
    assert cost_per(1000, 0) is None


def test_money_is_summed_only_in_one_currency() -> None:
    one = FunnelFigures.of([cohort(1, spent=900, sold=3), cohort(2, spent=300, sold=1)])
    assert (one.currency, one.spent_minor, one.cost_per_sold_minor) == ("USD", 1200, 300)
    assert one.reply_rate == 0.3
    mixed = FunnelFigures.of([cohort(1), cohort(2, currency="CNY")])
    assert (mixed.currency, mixed.spent_minor, mixed.cost_per_sold_minor) == (None, None, None)
    assert FunnelFigures.of([]).cohorts == 0


def test_iso_weeks() -> None:
    assert iso_week(date(2026, 11, 22)) == "2026-W47"
    assert week_days("2026-W47") == (date(2026, 11, 16), date(2026, 11, 22))
    assert week_days("2026-W53") == (date(2026, 12, 28), date(2027, 1, 3))
    for bad in ("2026-W54", "2025-W53", "2026-W00", "2026W47", "week"):
        with pytest.raises(ValueError, match="ISO week"):
            week_days(bad)


def test_leaders_count_their_own_cohorts_and_their_graduates_lines_by_generation() -> None:
    cohorts = [
        cohort(1, leader=1, sold=20),
        cohort(2, leader=1, sold=5),
        cohort(3, leader=7, parent=1, generation=2, joined=80, sold=8),
        cohort(4, leader=8, parent=3, generation=3, joined=60, sold=6),
        cohort(5, leader=9, parent=2, generation=2, joined=50, sold=2),
        cohort(6, leader=2, region="LATAM", sold=1),
    ]
    lines = {line.telegram_id: line for line in leader_lines(cohorts, None)}
    first = lines[1]
    assert (first.cohorts, first.joined, first.sold, first.conversion) == (2, 200, 25, 0.125)
    assert [(g.generation, g.cohorts, g.joined, g.sold) for g in first.lines] == [
        (2, 2, 130, 10),
        (3, 1, 60, 6),
    ]
    assert [(g.generation, g.cohorts) for g in lines[7].lines] == [(3, 1)]
    assert lines[8].lines == [] and lines[2].lines == []
    assert leader_lines(cohorts, None)[0].telegram_id == 1  # the most sold first
    assert {line.telegram_id for line in leader_lines(cohorts, "LATAM")} == {2}


def test_red_flags_say_what_is_wrong_and_where() -> None:
    active = [
        cohort(1, joined=200, replied=15),  # 7.5% replied: flagged
        cohort(2, joined=200, replied=15, pitched=False),  # pitch not open yet
        cohort(3, joined=0, replied=0),  # no base
        cohort(4, spent=4600, budget=5000),  # 92% spent
        cohort(5, spent=4600, budget=5000, status="paused"),  # paused: not flagged
    ]
    finished = [cohort(9, status="finished", region="LATAM")]
    regions = [RegionLine("SEA", "South-East Asia", 1), RegionLine("LATAM", "Latin America", 2)]
    flags = red_flags(active, finished, {4: 2}, {9: (3, 1500)}, regions, active[:1], "2026-W47")
    got = {(f.kind, f.cohort_id, f.region): f for f in flags}
    assert set(got) == {
        ("low_reply", 1, "SEA"),
        ("budget_low", 4, "SEA"),
        ("unknown_steps", 4, "SEA"),
        ("payouts_parked", 9, "LATAM"),
        ("region_behind", None, "LATAM"),
    }
    assert got[("low_reply", 1, "SEA")].figure == 0.075
    assert "15 of 200" in got[("low_reply", 1, "SEA")].detail
    assert got[("budget_low", 4, "SEA")].figure == 0.92
    assert got[("payouts_parked", 9, "LATAM")].cohort_code == "C9"
    assert "0 of 2" in got[("region_behind", None, "LATAM")].detail


def test_the_tree_of_lines_nests_each_line_under_the_cohort_it_grew_out_of() -> None:
    cohorts = [
        cohort(1, leader=1, joined=100, sold=10),
        cohort(2, leader=2, joined=50, sold=1),
        cohort(3, leader=7, parent=1, generation=2, joined=80, sold=8),
        cohort(4, leader=8, parent=3, generation=3, joined=60, sold=6),
        cohort(5, leader=9, parent=1, generation=2, joined=40, sold=2),
        cohort(6, leader=5, parent=99, generation=2, joined=30, sold=3),  # parent not chosen
    ]
    tree = line_tree(cohorts)
    assert [root.cohort.id for root in tree.roots] == [1, 2, 6]
    first = tree.roots[0]
    assert [c.cohort.id for c in first.children] == [3, 5]
    assert [c.cohort.id for c in first.children[0].children] == [4]
    assert [n.cohort.id for n in first.walk()] == [1, 3, 4, 5]
    assert (first.joined, first.sold, first.shopkeepers) == (100, 10, 0)
    whole = first.line()
    assert (whole.generation, whole.cohorts, whole.joined, whole.sold) == (1, 4, 280, 26)
    assert [(g.generation, g.cohorts, g.joined, g.sold) for g in tree.generations] == [
        (1, 2, 150, 11),
        (2, 3, 150, 13),
        (3, 1, 60, 6),
    ]
    assert tree.grown == 3
    assert line_tree([]).roots == [] and line_tree([]).generations == []


def test_a_loop_of_lines_is_still_shown_once() -> None:
    looped = [cohort(1, parent=2), cohort(2, parent=1, generation=2)]
    tree = line_tree(looped)
    assert [n.cohort.id for root in tree.roots for n in root.walk()] == [1, 2]


def test_a_flag_carries_the_figures_its_sentence_needs() -> None:
    active = [cohort(1, joined=200, replied=15), cohort(4, spent=4600, budget=5000)]
    regions = [RegionLine("SEA", "South-East Asia", 3)]
    flags = red_flags(active, [], {}, {4: (2, 700)}, regions, active, "2026-W47")
    got = {f.kind: f for f in flags}
    assert (got["low_reply"].part, got["low_reply"].whole) == (15, 200)
    assert (got["budget_low"].part, got["budget_low"].whole) == (4600, 5000)
    assert got["budget_low"].currency == "USD"
    assert (got["payouts_parked"].part, got["payouts_parked"].currency) == (700, "USD")
    assert (got["region_behind"].part, got["region_behind"].whole) == (2, 3)
