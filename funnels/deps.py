"""What every use case is given: the store, the messenger, the clock and the parsed
scripts; built once by the composition root (``bot/composition.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from funnels.kernel.clock import Clock
from funnels.kernel.codes import new_code
from funnels.kernel.messaging import Messenger
from funnels.kernel.records import CohortRecord
from funnels.kernel.uow import UnitOfWork
from funnels.scripts.loader import load_script_text
from funnels.scripts.model import Script, Task
from funnels.scripts.planner import local_instant, task_stage_start
from funnels.scripts.replies import ReplyMatcher

TxT = TypeVar("TxT")


class ScriptCache:
    """Parsed scripts by content hash: a cohort keeps the exact script it started with."""

    def __init__(self) -> None:
        self._scripts: dict[str, Script] = {}
        self._matchers: dict[str, ReplyMatcher] = {}
        self._unlocks: dict[int, dict[str, datetime]] = {}
        self._by_event: dict[str, dict[str, list[Task]]] = {}

    def get(self, cohort: CohortRecord) -> Script:
        return self.by_hash(cohort.script_hash, lambda: cohort.script_body, f"cohort {cohort.id}")

    def known(self, script_hash: str) -> bool:
        return script_hash in self._scripts

    def by_hash(self, script_hash: str, body: Callable[[], str], where: str) -> Script:
        """The script of this hash, parsed from ``body()`` the first time it is asked for."""
        script = self._scripts.get(script_hash)
        if script is None:
            script = load_script_text(body(), where).script
            self._scripts[script_hash] = script
        return script

    def matcher(self, cohort: CohortRecord) -> ReplyMatcher:
        matcher = self._matchers.get(cohort.script_hash)
        if matcher is None:
            pitch = self.get(cohort).pitch_step()
            matcher = ReplyMatcher(pitch.pitch.reply.match if pitch and pitch.pitch else ["1"])
            self._matchers[cohort.script_hash] = matcher
        return matcher

    def reply_window(self, cohort: CohortRecord) -> timedelta:
        pitch = self.get(cohort).pitch_step()
        return pitch.pitch.reply.window if pitch and pitch.pitch else timedelta(0)

    def unlock_times(self, cohort: CohortRecord) -> dict[str, datetime]:
        """When each task of the cohort's ladder unlocks (UTC); computed once per cohort."""
        times = self._unlocks.get(cohort.id)
        if times is None:
            script = self.get(cohort)
            tz = ZoneInfo(cohort.timezone)
            first = task_stage_start(script, cohort.start_date)
            times = {
                t.id: local_instant(first, t.unlock.day, t.unlock.time, tz)
                for t in script.tasks.ladder
            }
            self._unlocks[cohort.id] = times
        return times

    def tasks_for_event(self, cohort: CohortRecord, event_type: str) -> list[Task]:
        """The ladder's tasks whose goal counts ``event_type``, in ladder order."""
        by_event = self._by_event.get(cohort.script_hash)
        if by_event is None:
            by_event = {}
            for task in self.get(cohort).tasks.ladder:
                for name in task.goal.events():
                    by_event.setdefault(name, []).append(task)
            self._by_event[cohort.script_hash] = by_event
        return by_event.get(event_type, [])


@dataclass
class Deps:
    """What every use case needs; built once by the composition root."""

    store: UnitOfWork[Any]
    """Storage's unit of work; a use case takes it in the role it needs (:meth:`uow`)."""
    messenger: Messenger
    clock: Clock
    scripts: ScriptCache = field(default_factory=ScriptCache)
    admissions_every: timedelta = timedelta(minutes=5)
    cohort_codes: Callable[[], str] = new_code
    """Makes a new cohort's code; a simulation draws them from its seed, so the A/B arms
    its cohorts draw (keyed by code) come out the same run after run."""

    def uow(self, role: Callable[..., TxT]) -> UnitOfWork[TxT]:
        """The unit of work in the role a use case plays: ``role`` is a Protocol of its
        slice's ports (typed as a callable, the way mypy takes a Protocol class as an
        argument). Nothing is checked at run time: storage's transaction is checked
        statically to play every role (``storage/uow.py``)."""
        return cast(UnitOfWork[TxT], self.store)
