"""Unit tests for funnels.scripts.planner: keys, days, cumulative talk parts, closes, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, strategies as st

from funnels.scripts.model import Script
from funnels.scripts.planner import PlannedStep, local_instant, plan, task_stage_start

SHANGHAI = ZoneInfo("Asia/Shanghai")
MADRID = ZoneInfo("Europe/Madrid")
NEW_YORK = ZoneInfo("America/New_York")


def make_script(
    steps: list[dict[str, Any]], ladder: list[dict[str, Any]] | None = None, warmup_days: int = 7
) -> Script:
    if ladder is None:
        ladder = [
            {
                "id": "invite_fans",
                "title": "Invite",
                "how": "Invite 10 fans",
                "unlock": {"day": 1},
                "goal": {"event": "fan.locked", "count": 10},
            }
        ]
    return Script.model_validate(
        {
            "id": "seven_plus_twentyone",
            "version": 1,
            "locale": "en",
            "title": "Test line",
            "budget": {"currency": "CNY", "total": "800.00"},
            "warmup": {"days": warmup_days, "steps": steps},
            "tasks": {"days": 21, "ladder": ladder},
        }
    )


def post(step_id: str, day: int, at: str) -> dict[str, Any]:
    return {"id": step_id, "at": {"day": day, "time": at}, "post": {"text": "hello"}}


def by_key(planned: list[PlannedStep]) -> dict[str, PlannedStep]:
    return {p.key: p for p in planned}


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_post_in_default_zone_is_converted_to_utc() -> None:
    script = make_script([post("d1_welcome", 1, "09:00"), post("d3_story", 3, "20:30")])
    planned = by_key(plan(script, date(2026, 5, 1), SHANGHAI))

    welcome = planned["d1_welcome"]
    assert welcome.kind == "post"
    assert welcome.stage == "warmup"
    assert welcome.source == "d1_welcome"
    assert welcome.day == 1
    assert welcome.part is None
    assert welcome.due_at == utc(2026, 5, 1, 1, 0)
    assert welcome.due_at.tzinfo is UTC
    assert welcome.local_at == datetime(2026, 5, 1, 9, 0, tzinfo=SHANGHAI)
    assert welcome.local_at.tzinfo is SHANGHAI
    # Day 3 is start + 2 days.
    assert planned["d3_story"].due_at == utc(2026, 5, 3, 12, 30)
    assert planned["d3_story"].day == 3


def test_talk_parts_accumulate_their_pauses() -> None:
    talk = {
        "id": "d2_talk",
        "at": {"day": 2, "time": "20:00"},
        "talk": {
            "speaker": "Ana",
            "title": "Retail",
            "parts": [
                {"text": "one"},
                {"after": "2m", "text": "two"},
                {"after": "90s", "text": "three"},
            ],
        },
    }
    planned = plan(make_script([talk]), date(2026, 5, 1), SHANGHAI)
    parts = [p for p in planned if p.kind == "talk_part"]

    assert [p.key for p in parts] == ["d2_talk", "d2_talk.p1", "d2_talk.p2"]
    assert [p.part for p in parts] == [0, 1, 2]
    assert {p.source for p in parts} == {"d2_talk"}
    start = utc(2026, 5, 2, 12, 0)
    assert [p.due_at for p in parts] == [
        start,
        start + timedelta(minutes=2),
        start + timedelta(minutes=3, seconds=30),
    ]
    assert all(p.day == 2 and p.stage == "warmup" for p in parts)


def test_first_talk_part_may_wait_too() -> None:
    talk = {
        "id": "d2_talk",
        "at": {"day": 2, "time": "20:00"},
        "talk": {
            "speaker": "Ana",
            "title": "Retail",
            "parts": [
                {"after": "5m", "text": "one"},
                {"after": "1m", "text": "two"},
            ],
        },
    }
    parts = by_key(plan(make_script([talk]), date(2026, 5, 1), SHANGHAI))
    assert parts["d2_talk"].due_at == utc(2026, 5, 2, 12, 5)
    assert parts["d2_talk.p1"].due_at == utc(2026, 5, 2, 12, 6)


def test_envelope_and_pitch_get_a_close_run() -> None:
    steps = [
        {
            "id": "d1_envelope",
            "at": {"day": 1, "time": "12:00"},
            "red_envelope": {"total": "20.00", "shares": 30, "expires_in": "10m"},
        },
        {
            "id": "d7_pitch",
            "at": {"day": 7, "time": "20:00"},
            "pitch": {"text": "Reply 1", "reply": {"match": ["1"], "window": "24h"}},
        },
    ]
    planned = by_key(plan(make_script(steps), date(2026, 5, 1), SHANGHAI))

    envelope, envelope_close = planned["d1_envelope"], planned["d1_envelope.close"]
    assert envelope.kind == "red_envelope"
    assert envelope.due_at == utc(2026, 5, 1, 4, 0)
    assert envelope_close.kind == "envelope_close"
    assert envelope_close.source == "d1_envelope"
    assert envelope_close.due_at == utc(2026, 5, 1, 4, 10)

    pitch, pitch_close = planned["d7_pitch"], planned["d7_pitch.close"]
    assert pitch.kind == "pitch"
    assert pitch.due_at == utc(2026, 5, 7, 12, 0)
    assert pitch_close.kind == "pitch_close"
    assert pitch_close.due_at == utc(2026, 5, 8, 12, 0)
    assert pitch_close.stage == "warmup"
    assert pitch_close.day == 7


def test_task_unlocks_are_days_of_the_task_stage() -> None:
    ladder = [
        {
            "id": "invite_fans",
            "title": "Invite",
            "how": "Invite",
            "unlock": {"day": 1},
            "goal": {"event": "fan.locked", "count": 10},
        },
        {
            "id": "share_deal",
            "title": "Share",
            "how": "Share",
            "unlock": {"day": 8, "time": "20:00"},
            "goal": {"event": "link.clicked", "unique": "visitor", "count": 100},
        },
    ]
    script = make_script([post("d1_welcome", 1, "09:00")], ladder, warmup_days=7)
    start = date(2026, 5, 1)
    assert task_stage_start(script, start) == date(2026, 5, 8)

    planned = by_key(plan(script, start, SHANGHAI))
    invite = planned["task.invite_fans"]
    assert invite.kind == "task_unlock"
    assert invite.stage == "tasks"
    assert invite.source == "invite_fans"
    assert invite.day == 1
    assert invite.due_at == utc(2026, 5, 8, 1, 0)  # default unlock time 09:00 local
    assert planned["task.share_deal"].due_at == utc(2026, 5, 15, 12, 0)
    assert planned["task.share_deal"].day == 8


def test_task_stage_follows_the_warmup_length() -> None:
    script = make_script([post("d1_welcome", 1, "09:00")], warmup_days=3)
    assert task_stage_start(script, date(2026, 12, 30)) == date(2027, 1, 2)
    unlock = by_key(plan(script, date(2026, 12, 30), SHANGHAI))["task.invite_fans"]
    assert unlock.local_at.date() == date(2027, 1, 2)


def test_plan_is_sorted_by_due_time_then_key() -> None:
    steps = [
        post("d2_late", 2, "21:00"),
        post("d1_zeta", 1, "09:00"),
        post("d1_alpha", 1, "09:00"),
    ]
    planned = plan(make_script(steps), date(2026, 5, 1), SHANGHAI)
    keys = [p.key for p in planned]
    assert keys == ["d1_alpha", "d1_zeta", "d2_late", "task.invite_fans"]
    assert planned == sorted(planned, key=lambda p: (p.due_at, p.key))


def test_keys_are_unique_and_stable_across_calls() -> None:
    steps = [
        post("d1_welcome", 1, "09:00"),
        {
            "id": "d1_envelope",
            "at": {"day": 1, "time": "12:00"},
            "red_envelope": {"total": "20.00", "shares": 30},
        },
        {
            "id": "d2_talk",
            "at": {"day": 2, "time": "20:00"},
            "talk": {"speaker": "A", "title": "T", "parts": [{"text": "a"}, {"text": "b"}]},
        },
    ]
    script = make_script(steps)
    first = plan(script, date(2026, 5, 1), SHANGHAI)
    again = plan(script, date(2026, 5, 1), SHANGHAI)
    keys = [p.key for p in first]
    assert len(keys) == len(set(keys)) == 6
    assert first == again


def test_duplicate_step_ids_are_refused() -> None:
    # Script alone does not check id uniqueness (script_checks does); the planner must not
    # hand two runs with one key to a table that is unique on it.
    script = make_script([post("d1_welcome", 1, "09:00"), post("d1_welcome", 2, "09:00")])
    with pytest.raises(ValueError, match="d1_welcome"):
        plan(script, date(2026, 5, 1), SHANGHAI)


def test_cohort_zone_overrides_the_script_zone() -> None:
    script = make_script([post("d1_welcome", 1, "09:00")])
    assert script.timezone == "Asia/Shanghai"
    welcome = by_key(plan(script, date(2026, 5, 1), MADRID))["d1_welcome"]
    assert welcome.due_at == utc(2026, 5, 1, 7, 0)  # CEST, UTC+2
    assert welcome.local_at.tzinfo is MADRID


# --- DST -------------------------------------------------------------------------------


def test_same_wall_time_moves_in_utc_across_spring_forward() -> None:
    # New York springs forward on 2026-03-08 at 02:00.
    script = make_script([post("d1_morning", 1, "09:00"), post("d2_morning", 2, "09:00")])
    planned = by_key(plan(script, date(2026, 3, 7), NEW_YORK))
    assert planned["d1_morning"].due_at == utc(2026, 3, 7, 14, 0)  # EST
    assert planned["d2_morning"].due_at == utc(2026, 3, 8, 13, 0)  # EDT
    assert planned["d2_morning"].local_at.hour == 9


def test_window_is_elapsed_time_across_dst() -> None:
    pitch = {
        "id": "d1_pitch",
        "at": {"day": 1, "time": "20:00"},
        "pitch": {"text": "Reply 1", "reply": {"window": "24h"}},
    }
    planned = by_key(plan(make_script([pitch]), date(2026, 3, 7), NEW_YORK))
    opened, closed = planned["d1_pitch"], planned["d1_pitch.close"]
    assert closed.due_at - opened.due_at == timedelta(hours=24)
    # 24 real hours after 20:00 EST is 21:00 EDT on the wall clock.
    assert closed.local_at == datetime(2026, 3, 8, 21, 0, tzinfo=NEW_YORK)


def test_nonexistent_wall_time_is_shifted_forward_by_the_gap() -> None:
    # Madrid: 2026-03-29 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    due = local_instant(date(2026, 3, 28), 2, time(2, 30), MADRID)
    assert due == utc(2026, 3, 29, 1, 30)
    assert due.tzinfo is UTC
    assert due.astimezone(MADRID).replace(tzinfo=None) == datetime(2026, 3, 29, 3, 30)  # noqa: DTZ001 - wall time

    # New York: 2026-03-08 02:00 EST jumps to 03:00 EDT.
    due_ny = local_instant(date(2026, 3, 8), 1, time(2, 15), NEW_YORK)
    assert due_ny.astimezone(NEW_YORK).replace(tzinfo=None) == datetime(2026, 3, 8, 3, 15)  # noqa: DTZ001 - wall time


def test_steps_inside_the_gap_stay_distinct_and_ordered() -> None:
    steps = [post("d2_early", 2, "02:10"), post("d2_later", 2, "02:50")]
    planned = by_key(plan(make_script(steps), date(2026, 3, 28), MADRID))
    assert planned["d2_later"].due_at - planned["d2_early"].due_at == timedelta(minutes=40)


def test_ambiguous_wall_time_takes_the_first_occurrence() -> None:
    # Madrid: 2026-10-25 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    due = local_instant(date(2026, 10, 25), 1, time(2, 30), MADRID)
    assert due == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, not 01:30 UTC (02:30 CET)
    # A fold=1 time from a caller is still read as the first occurrence.
    assert local_instant(date(2026, 10, 25), 1, time(2, 30, fold=1), MADRID) == due

    # New York: 2026-11-01 02:00 EDT falls back to 01:00 EST.
    due_ny = local_instant(date(2026, 11, 1), 1, time(1, 30), NEW_YORK)
    assert due_ny == utc(2026, 11, 1, 5, 30)  # 01:30 EDT


def test_local_instant_rejects_day_zero() -> None:
    with pytest.raises(ValueError, match="day"):
        local_instant(date(2026, 5, 1), 0, time(9, 0), SHANGHAI)


ZONES = [
    "Europe/Madrid",
    "America/New_York",
    "Asia/Shanghai",
    "Australia/Lord_Howe",
    "America/Santiago",
]


@given(
    zone=st.sampled_from(ZONES),
    start=st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)),
    day=st.integers(min_value=1, max_value=60),
    minute_of_day=st.integers(min_value=0, max_value=24 * 60 - 1),
)
def test_local_instant_keeps_the_wall_time_or_skips_exactly_the_gap(
    zone: str, start: date, day: int, minute_of_day: int
) -> None:
    tz = ZoneInfo(zone)
    at = time(minute_of_day // 60, minute_of_day % 60)
    wall = datetime.combine(start + timedelta(days=day - 1), at)

    due = local_instant(start, day, at, tz)
    assert due.tzinfo is UTC
    back = due.astimezone(tz)
    shown = back.replace(tzinfo=None)
    if shown == wall:
        # Existing time: the first occurrence, never later than the second one.
        second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
        assert due <= second
    else:
        # Nonexistent time: moved forward by exactly the size of the jump just before it.
        before = (due - timedelta(hours=6)).astimezone(tz).utcoffset()
        after = back.utcoffset()
        assert before is not None and after is not None
        assert shown - wall == after - before
        assert timedelta(0) < shown - wall <= timedelta(hours=2)
