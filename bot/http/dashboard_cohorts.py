"""The dashboard's cohort pages: the list (by region and status, a page at a time) and
one cohort's timeline (its steps with the ops actions among them, in time order), its
tasks and its red envelopes; its funnel and its script are tabs in modules of their
own. Each page reads through the stats API's own use cases (:mod:`funnels.ops.cohorts`,
:mod:`funnels.ops.actions`), so the page and the API never disagree on a figure.

A new tab of the cohort page is a route (here, or in its own module) that renders a
template extending ``cohort_base.html`` through :class:`CohortPages`, with ``tab=`` its
name, plus an entry in :data:`TABS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from bot.http.web.door import Door
from bot.http.web.render import PREFIX, Chart, Viewer
from bot.http.web.texts import Wording
from funnels.kernel.records import OpsActionRecord
from funnels.ops.actions import CohortActions
from funnels.ops.cohorts import (
    PAYOUT_STATES,
    CohortDetails,
    CohortEnvelopes,
    CohortSteps,
    CohortTasks,
    EnvelopeFigures,
    ListCohorts,
    StepLine,
    TaskFigures,
)
from funnels.ops.ports import CohortFilter, CohortSummary

PAGE_SIZE = 25
STATUSES = ("running", "paused", "finished", "cancelled")
MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Tab:
    label: str
    suffix: str
    """After ``/dashboard/cohorts/{id}``."""
    name: str


TABS: list[Tab] = [
    Tab("tab.funnel", "", "funnel"),
    Tab("tab.timeline", "/timeline", "timeline"),
    Tab("tab.tasks", "/tasks", "tasks"),
    Tab("tab.envelopes", "/envelopes", "envelopes"),
    Tab("tab.script", "/script", "script"),
]
"""The funnel is the cohort's first page (``dashboard_funnel``), its script the last
(``dashboard_scripts``)."""


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """A line of the cohort's timeline: a step run (at its due time) or something ops
    did (at the time they did it)."""

    at: datetime
    step: StepLine | None = None
    action: OpsActionRecord | None = None


def timeline(steps: Sequence[StepLine], actions: Sequence[OpsActionRecord]) -> list[TimelineRow]:
    """Steps and actions in one time order; a step before an action at the same time
    (the action answered what the step did)."""
    rows = [TimelineRow(s.due_at, step=s) for s in steps]
    rows += [TimelineRow(a.at, action=a) for a in actions]
    return sorted(rows, key=lambda row: row.at)  # stable: steps keep their order


def outcome_text(outcome: Mapping[str, object] | None, limit: int = 120) -> str:
    """A step's outcome as one short line: ``message_ids: 811, 812`` (lateness has a
    column of its own)."""
    if not outcome:
        return ""
    parts = []
    for name, value in outcome.items():
        if name == "late_seconds":
            continue
        if isinstance(value, list | tuple):
            value = ", ".join(str(v) for v in value)
        parts.append(f"{name}: {value}")
    text = "; ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


API_KEY_AUTHOR = "api key "
CLI_AUTHOR = " via the command line"
"""How :class:`~funnels.kernel.actor.OpsAuthor` names an API key and a command-line
login (``bot/http/ops.py``, ``bot/cli/common.py``); read back to say it in the reader's
language. Anything else is shown as it was written."""


def author_text(words: Wording, action: OpsActionRecord) -> str:
    """Who did an ops action, in the reader's language: an API key by its name, a
    command-line login by the login."""
    by = action.by
    if action.api_key_id is not None and by.startswith(API_KEY_AUTHOR):
        return words("timeline.by_key", name=by.removeprefix(API_KEY_AUTHOR))
    if by.endswith(CLI_AUTHOR):
        return words("timeline.by_cli", login=by.removesuffix(CLI_AUTHOR))
    return by


def task_chart(tasks: Sequence[TaskFigures], title: str) -> Chart:
    return Chart(
        id="chart-task-completion",
        title=title,
        labels=[t.title or t.task_id for t in tasks],
        series=[
            {
                "label": title,
                "data": [round(t.completion_rate or 0.0, 4) for t in tasks],
            }
        ],
        scale="percent",
        horizontal=True,
    )


def envelope_charts(envelopes: Sequence[EnvelopeFigures], titles: tuple[str, str]) -> list[Chart]:
    labels = [f.line.step_key for f in envelopes]
    grab, empty = titles
    return [
        Chart(
            id="chart-envelope-grab-rate",
            title=grab,
            labels=labels,
            series=[{"label": grab, "data": [round(f.grab_rate, 4) for f in envelopes]}],
            scale="percent",
        ),
        Chart(
            id="chart-envelope-time-to-empty",
            title=empty,
            labels=labels,
            series=[{"label": empty, "data": [f.emptied_in_seconds for f in envelopes]}],
            scale="seconds",
        ),
    ]


def cohort_number(text: str) -> int | None:
    """A cohort id from an address, or None for anything that cannot be one."""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def _before(text: str | None) -> int | None:
    return cohort_number(text) if text else None


class CohortPages:
    """What every tab of a cohort's page shares: the viewer and the cohort of the
    address (or the way to the login, or a 404), and the page with its tabs. A tab in
    another module (the funnel, the script) uses it too."""

    def __init__(self, door: Door) -> None:
        self.door = door
        self._details = CohortDetails(door.deps)

    async def find(
        self, request: Request, cohort_id: str
    ) -> tuple[Viewer, CohortSummary] | Response:
        seen = await self.door.viewer(request)
        if isinstance(seen, Response):
            return seen
        found = await self._details(n) if (n := cohort_number(cohort_id)) else None
        if found is None:
            return self.door.pages.render("error.html", seen, status=404, reason="no_cohort")
        return seen, found

    def render(
        self, viewer: Viewer, template: str, cohort: CohortSummary, tab: str, **context: Any
    ) -> Response:
        base = f"{PREFIX}/cohorts/{cohort.id}"
        return self.door.pages.render(
            template,
            viewer,
            page="cohorts",
            cohort=cohort,
            tabs=[(t, base + t.suffix) for t in TABS],
            tab=tab,
            **context,
        )


def routes(door: Door) -> APIRouter:
    deps = door.deps
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    list_cohorts, pages = ListCohorts(deps), CohortPages(door)
    steps, actions = CohortSteps(deps), CohortActions(deps)
    tasks, envelopes = CohortTasks(deps), CohortEnvelopes(deps)

    @router.get("")
    async def cohorts(
        request: Request,
        region: str | None = None,
        status: str | None = None,
        before: str | None = None,
    ) -> Response:
        seen = await door.viewer(request)
        if isinstance(seen, Response):
            return seen
        region = (region or "").strip().upper()[:32] or None
        status = status if status in STATUSES else None
        choice = CohortFilter(region=region, status=status)
        page = await list_cohorts(choice, _before(before), PAGE_SIZE)
        more = {"region": region or "", "status": status or "", "before": page.next_before_id}
        return door.pages.render(
            "cohorts.html",
            seen,
            page="cohorts",
            cohorts=page.items,
            region=region or "",
            chosen_status=status or "",
            statuses=STATUSES,
            paged=before is not None,
            next_query=more if page.next_before_id else None,
        )

    @router.get("/cohorts/{cohort_id}/timeline")
    async def cohort_timeline(request: Request, cohort_id: str) -> Response:
        found = await pages.find(request, cohort_id)
        if isinstance(found, Response):
            return found
        seen, cohort = found
        lines = await steps(cohort.id) or []
        done = await actions(cohort.id) or []
        return pages.render(
            seen,
            "cohort_timeline.html",
            cohort,
            "timeline",
            rows=timeline(lines, done),
            outcome_text=outcome_text,
            by=lambda action: author_text(seen.words, action),
        )

    @router.get("/cohorts/{cohort_id}/tasks")
    async def cohort_tasks(request: Request, cohort_id: str) -> Response:
        found = await pages.find(request, cohort_id)
        if isinstance(found, Response):
            return found
        seen, cohort = found
        ladder = await tasks(cohort.id) or []
        totals = {
            way: tuple(sum(t.payouts[way][i] for t in ladder) for i in (0, 1))
            for way in PAYOUT_STATES
        }
        chart = task_chart(ladder, seen.words("tasks.chart_completion"))
        return pages.render(
            seen,
            "cohort_tasks.html",
            cohort,
            "tasks",
            tasks=ladder,
            ways=PAYOUT_STATES,
            totals=totals,
            charts=[chart] if ladder else [],
        )

    @router.get("/cohorts/{cohort_id}/envelopes")
    async def cohort_envelopes(request: Request, cohort_id: str) -> Response:
        found = await pages.find(request, cohort_id)
        if isinstance(found, Response):
            return found
        seen, cohort = found
        opened = await envelopes(cohort.id) or []
        titles = (seen.words("envelopes.chart_grab_rate"), seen.words("envelopes.chart_empty"))
        return pages.render(
            seen,
            "cohort_envelopes.html",
            cohort,
            "envelopes",
            envelopes=opened,
            charts=envelope_charts(opened, titles) if opened else [],
        )

    return router
