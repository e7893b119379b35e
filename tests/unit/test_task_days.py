"""The ladder in Telegram, its pure parts: which tasks the day's message lists and which
run sends it, the one-line how, task states, and the script checks of proof tasks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from funnels.cohorts.executors import announced_on_day, first_line
from funnels.kernel.records import TaskProgressRecord
from funnels.ladder.progress import task_state
from funnels.scripts.loader import Problem, load_script_text
from tests.support.scripts import edit, line_of, only_error, problems_of

PROOF_TASK = """\
    - id: share_story
      title: Share your story
      how: Post it, then send me a screenshot.
      unlock: {day: 1}
      goal: {event: proof.approved, where: {task: share_story}, count: 1}
      proof: true
    - id: first_order
"""

DAY_ONE = """\
    - id: later_task
      title: Later the same day
      how: |-

        Do the later thing.
        More detail here.
      unlock: {day: 1, time: "15:00"}
      goal: {event: fan.locked, count: 1}
    - id: quiet_task
      title: Not announced
      how: Nothing to see.
      unlock: {day: 1, time: "08:00"}
      goal: {event: fan.locked, count: 2}
      announce: false
    - id: same_time
      title: Same time as the first
      how: Share again.
      unlock: {day: 1}
      goal: {event: fan.locked, count: 3}
    - id: first_order
"""


def with_tasks(block: str) -> str:
    return edit("    - id: first_order\n", block)


def test_the_days_message_lists_announced_tasks_in_unlock_order() -> None:
    script = load_script_text(with_tasks(DAY_ONE)).script
    day = announced_on_day(script, 1)
    # 09:00 (ladder order for the same time), then 15:00; the silent task left out.
    assert [t.id for t in day] == ["invite_fans", "same_time", "later_task"]
    assert [t.id for t in announced_on_day(script, 18)] == ["first_order"]
    assert announced_on_day(script, 2) == []


def test_a_day_with_only_silent_tasks_has_nothing_to_announce() -> None:
    reward = '      reward: {amount: "5.00"}\n'
    silent = load_script_text(edit(reward, reward + "      announce: false\n")).script
    assert announced_on_day(silent, 1) == []


def test_the_one_line_how_is_the_first_line_with_words_cut_short() -> None:
    assert first_line("\n\n  Do the later thing.  \nMore detail.") == "Do the later thing."
    assert first_line("x" * 300) == "x" * 197 + "..."
    assert first_line("   ") == ""


def test_task_states() -> None:
    now = datetime(2026, 3, 4, 12, tzinfo=UTC)
    row = TaskProgressRecord(1, 1, 1, "t", {}, None)
    done = TaskProgressRecord(1, 1, 1, "t", {0: 1}, now)
    assert task_state(None, now, now) == "open"
    assert task_state(row, now + timedelta(seconds=1), now) == "locked"
    assert task_state(done, now + timedelta(days=1), now) == "done"


def test_a_proof_task_that_counts_its_own_approvals_is_valid() -> None:
    loaded = load_script_text(with_tasks(PROOF_TASK))
    assert loaded.script.task("share_story").proof
    assert loaded.warnings == []  # proof.approved is an event the bot itself records


def test_a_proof_task_must_count_its_approved_screenshots() -> None:
    text = with_tasks(
        PROOF_TASK.replace(
            "{event: proof.approved, where: {task: share_story}, count: 1}",
            "{event: fan.locked, count: 1}",
        )
    )
    problem = only_error(text)
    assert problem.line == line_of(text, "goal: {event: fan.locked, count: 1}")
    assert "proof task's goal must count its approved screenshots" in problem.message
    assert "where: {task: share_story}" in problem.message


def test_approved_proofs_must_name_a_proof_task() -> None:
    # No task named: every proof of every task would count.
    text = with_tasks(PROOF_TASK.replace("where: {task: share_story}, ", ""))
    messages = [p.message for p in _errors(text)]
    assert any(
        "name it with where: {task: ID} (proof tasks here: share_story)" in m for m in messages
    )
    # A task that takes no screenshots: nobody could send one for it.
    text = edit(
        "goal: {event: fan.locked, count: 10}",
        "goal: {event: proof.approved, where: {task: invite_fans}, count: 1}",
        with_tasks(PROOF_TASK),
    )
    problem = only_error(text)
    assert "counts the approved screenshots of one proof task" in problem.message
    assert problem.line == line_of(text, "where: {task: invite_fans}")


def _errors(text: str) -> list[Problem]:
    return [p for p in problems_of(text) if p.severity == "error"]
