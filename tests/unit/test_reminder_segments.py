"""Which reminder a member gets: the progress segment, from open tasks and last activity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from funnels.ladder.reminders import INACTIVE_AFTER, segment_of
from funnels.scripts.model import Task

NOW = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)


def task(task_id: str) -> Task:
    return Task.model_validate(
        {
            "id": task_id,
            "title": task_id,
            "how": "Do it.",
            "unlock": {"day": 1},
            "goal": {"event": "fan.locked", "count": 1},
        }
    )


def test_segments() -> None:
    recent = NOW - timedelta(hours=3)
    idle = NOW - INACTIVE_AFTER
    assert segment_of([], recent, NOW) == "ahead"
    assert segment_of([task("a")], recent, NOW) == "on_track"
    assert segment_of([task("a"), task("b")], recent, NOW) == "behind"
    assert segment_of([task("a")], idle, NOW) == "inactive"
    assert segment_of([task("a")], idle + timedelta(seconds=1), NOW) == "on_track"
    assert segment_of([], idle, NOW) == "ahead"  # nothing open: nothing to nudge about
