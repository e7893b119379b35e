"""A script as its group sees it (``funnels.scripts.preview``): runs by local day with
what they say, the arm a cohort gets, and the restraint figures per day."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from funnels.kernel.records import PlanKind
from funnels.scripts.loader import load_script_text
from funnels.scripts.preview import TEXT_LIMIT, script_days
from funnels.scripts.variants import cohort_arm
from tests.support.funnel_kit import script_text

SGT = ZoneInfo("Asia/Singapore")
START = date(2026, 3, 2)
STEPS = "  steps:\n"
NIGHT_POST = """\
    - id: d1_late
      at: {day: 1, time: "23:30"}
      post: {text: "A late word."}
"""
STORY = '        variants: [{id: story, weight: 1, text: "Reply 1 and start tomorrow."}]\n'
PITCH_TEXT = '        text: "Reply 1 to join the task group."\n'


def test_runs_by_local_day_with_what_the_group_sees() -> None:
    script = load_script_text(script_text(), "mini.yaml").script
    days = script_days(script, START, SGT)
    assert [(d.date, d.stage, d.day) for d in days] == [
        (date(2026, 3, 2), "warmup", 1),
        (date(2026, 3, 3), "warmup", 2),
        (date(2026, 3, 4), "tasks", 1),
        (date(2026, 3, 5), "tasks", 2),
    ]
    first = days[0]
    assert [(m.run.key, m.run.local_at.strftime("%H:%M")) for m in first.moments] == [
        ("d1_welcome", "09:00"),
        ("d1_talk", "10:00"),
        ("d1_talk.p1", "10:02"),
        ("d1_envelope", "12:00"),
        ("d1_envelope.close", "12:10"),
    ]
    welcome, talk, _, envelope, close = first.moments
    assert (welcome.text, welcome.pin, welcome.posts) == ("Welcome to the group.", True, True)
    assert talk.pin and talk.text == "Part one of the talk."
    assert (envelope.amount, envelope.shares, envelope.text) == ("1.00", 3, "Grab it")
    assert (close.posts, close.text) == (False, None)
    # Four messages (a post, two talk parts, an envelope) from three steps.
    assert (first.messages, first.steps, first.quiet, first.crowded) == (4, 3, 0, False)
    pitch_day = days[1]
    assert [m.run.kind for m in pitch_day.moments] == [PlanKind.PITCH, PlanKind.PITCH_CLOSE]
    assert pitch_day.messages == 1
    # Two tasks unlock on task day 1: the task group gets one message that day.
    unlocks = days[2].moments
    assert [(m.text, m.posts) for m in unlocks] == [
        ("Invite three fans", True),
        ("Two distinct visitors", False),
    ]
    assert days[2].messages == 1 and days[3].messages == 1


def test_posts_in_quiet_hours_are_flagged_and_many_steps_crowd_a_day() -> None:
    text = script_text().replace(STEPS, STEPS + NIGHT_POST, 1)
    script = load_script_text(text, "mini.yaml").script
    first = script_days(script, START, SGT)[0]
    late = first.moments[-1]
    assert (late.run.key, late.quiet, late.posts) == ("d1_late", True, True)
    assert (first.messages, first.quiet) == (5, 1)
    crowded = "".join(
        f'    - id: d1_extra{i}\n      at: {{day: 1, time: "1{i}:30"}}\n'
        f'      post: {{text: "Extra {i}."}}\n'
        for i in range(4)
    )
    busy = load_script_text(script_text().replace(STEPS, STEPS + crowded, 1), "x.yaml").script
    day = script_days(busy, START, SGT)[0]
    assert (day.steps, day.crowded) == (7, True)


def test_a_cohort_sees_the_wording_of_its_arm() -> None:
    text = script_text().replace(PITCH_TEXT, PITCH_TEXT + STORY)
    script = load_script_text(text, "ab.yaml").script
    pitch = script.step("d2_pitch").pitch
    assert pitch is not None
    for code in ("AB0", "AB1", "AB2", "AB3"):
        seen = script_days(script, START, SGT, code)[1].moments[0]
        arm = cohort_arm(pitch, code, "d2_pitch")
        assert (seen.arms, seen.arm, seen.text) == (("a", "story"), arm.id, arm.text)
    library = script_days(script, START, SGT)[1].moments[0]
    assert (library.arm, library.text) == (None, "Reply 1 to join the task group.")


def test_a_long_message_is_cut_to_its_beginning() -> None:
    long = "word " * 200
    text = script_text().replace("Welcome to the group.", long.strip())
    welcome = script_days(load_script_text(text, "x.yaml").script, START, SGT)[0].moments[0]
    assert welcome.text is not None and len(welcome.text) == TEXT_LIMIT
    assert welcome.text.endswith("…")
