"""The rollups' one rule (``funnels.kernel.rollups``): per-day counts kept by moves, one
member at a time and in any order, always equal a recount from the timestamps."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st

from funnels.kernel.rollups import entry_days, funnel_moves, recount, stage_totals
from funnels.kernel.stages import Stage

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_member_enters_a_skipped_stage_with_the_next_one() -> None:
    sold = T0 + timedelta(days=9)
    days = entry_days(
        {Stage.JOINED: T0, Stage.REPLIED: T0 + timedelta(days=6), Stage.SOLD: sold}, SHANGHAI
    )
    assert days[Stage.ENGAGED] == days[Stage.REPLIED] == date(2026, 3, 7)
    assert days[Stage.ADMITTED] == days[Stage.TASKED] == days[Stage.SOLD] == date(2026, 3, 10)
    assert Stage.SHOPKEEPER not in days


def test_days_are_the_cohorts_local_days() -> None:
    late_evening_utc = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)  # 04:00 on the 2nd in Shanghai
    assert entry_days({Stage.JOINED: late_evening_utc}, SHANGHAI)[Stage.JOINED] == date(2026, 3, 2)
    assert entry_days({Stage.JOINED: late_evening_utc}, ZoneInfo("America/Lima"))[
        Stage.JOINED
    ] == date(2026, 3, 1)


def test_a_late_event_moves_the_member_to_an_earlier_day() -> None:
    before = {Stage.JOINED: T0, Stage.TASKED: T0 + timedelta(days=10)}
    after = {**before, Stage.SOLD: T0 + timedelta(days=8)}  # paid before the task showed
    moves = funnel_moves(before, after, SHANGHAI)
    assert moves == Counter(
        {
            (date(2026, 3, 11), Stage.TASKED): -1,
            (date(2026, 3, 11), Stage.ADMITTED): -1,
            (date(2026, 3, 11), Stage.REPLIED): -1,
            (date(2026, 3, 11), Stage.ENGAGED): -1,
            (date(2026, 3, 9), Stage.TASKED): 1,
            (date(2026, 3, 9), Stage.ADMITTED): 1,
            (date(2026, 3, 9), Stage.REPLIED): 1,
            (date(2026, 3, 9), Stage.ENGAGED): 1,
            (date(2026, 3, 9), Stage.SOLD): 1,
        }
    )


def test_totals_are_members_at_a_stage_or_beyond() -> None:
    members = [
        {Stage.JOINED: T0},
        {Stage.JOINED: T0, Stage.REPLIED: T0 + timedelta(days=6)},
        {Stage.JOINED: T0, Stage.SOLD: T0 + timedelta(days=12)},
    ]
    totals = stage_totals(recount(members, SHANGHAI))
    assert totals[Stage.JOINED] == 3
    assert totals[Stage.ENGAGED] == totals[Stage.REPLIED] == 2
    assert totals[Stage.SOLD] == 1 and totals[Stage.SHOPKEEPER] == 0


# A member's life: stamps set one at a time (a stamp, once set, never changes), at
# times that need not grow (events arrive late).
stamps = st.lists(
    st.tuples(st.sampled_from(list(Stage)), st.integers(min_value=0, max_value=40 * 24)),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(stamps, min_size=1, max_size=6))
def test_moves_in_any_order_add_up_to_the_recount(lives: list[list[tuple[Stage, int]]]) -> None:
    kept: Counter[tuple[date, Stage]] = Counter()
    finals = []
    for life in lives:
        times: dict[Stage, datetime | None] = {}
        for stage, hours in life:
            if times.get(stage) is not None:
                continue  # set once, like the member's row
            after = {**times, stage: T0 + timedelta(hours=hours)}
            kept.update(funnel_moves(times, after, SHANGHAI))
            times = after
        finals.append(times)
    assert +kept == +recount(finals, SHANGHAI)
    assert all(n >= 0 for n in kept.values())
