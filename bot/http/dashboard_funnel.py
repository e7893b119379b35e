"""The cohort's first tab: its funnel (members per stage, with the conversion from the
stage before and from ``joined``), its reply rate, what it spent and what each member
who sold cost, and its days (members entering each stage, messages and writers). Read
through :class:`funnels.ops.kpis.CohortFunnelReport`, the use case of
``GET /api/v1/cohorts/{id}/funnel`` and ``/days``."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request
from fastapi.responses import Response

from bot.http.dashboard_cohorts import CohortPages
from bot.http.web.door import Door
from bot.http.web.render import PREFIX, Chart
from bot.http.web.texts import Wording
from funnels.kernel.stages import Stage
from funnels.ops.kpis import CohortFunnelReport, DayLine, FunnelFigures


def funnel_chart(funnel: FunnelFigures, words: Wording) -> Chart:
    title = words("funnel.chart_members")
    return Chart(
        id="chart-funnel",
        title=title,
        labels=[words(f"stage.{line.stage.label}") for line in funnel.stages],
        series=[{"label": words("funnel.members"), "data": [s.members for s in funnel.stages]}],
        horizontal=True,
    )


def day_charts(days: Sequence[DayLine], words: Wording) -> list[Chart]:
    """Members entering each stage per day (the stages anyone entered), and the group's
    messages and writers per day."""
    labels = [words("funnel.day_label", day=d.number) for d in days]
    stages = [s for s in Stage if any(d.entered.get(s, 0) for d in days)]
    return [
        Chart(
            id="chart-days-stages",
            title=words("funnel.chart_entered"),
            labels=labels,
            series=[
                {"label": words(f"stage.{s.label}"), "data": [d.entered.get(s, 0) for d in days]}
                for s in stages
            ],
        ),
        Chart(
            id="chart-days-activity",
            title=words("funnel.chart_activity"),
            labels=labels,
            series=[
                {"label": words("funnel.messages"), "data": [d.messages for d in days]},
                {"label": words("funnel.writers"), "data": [d.writers for d in days]},
            ],
            kind="line",
        ),
    ]


def routes(door: Door) -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    pages, report = CohortPages(door), CohortFunnelReport(door.deps)

    @router.get("/cohorts/{cohort_id}")
    async def cohort_funnel(request: Request, cohort_id: str) -> Response:
        found = await pages.find(request, cohort_id)
        if isinstance(found, Response):
            return found
        seen, cohort = found
        figures = await report(cohort.id)
        if figures is None:  # gone between the two reads
            return door.pages.render("error.html", seen, status=404, reason="no_cohort")
        funnel, days = figures.funnel, figures.days
        charts = [funnel_chart(funnel, seen.words)]
        if days:
            charts += day_charts(days, seen.words)
        return pages.render(
            seen,
            "cohort_funnel.html",
            cohort,
            "funnel",
            funnel=funnel,
            days=days,
            stages=list(Stage),
            charts=charts,
        )

    return router
