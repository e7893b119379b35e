"""The dashboard's pages across cohorts: regions in an ISO week against their weekly
launch target, leaders and the lines their graduates grew, the tree of self-cycled
lines, and the red flags. Each reads through the use case of its KPI route
(:mod:`funnels.ops.kpis`, :mod:`funnels.ops.lines`), so a page and the API agree."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from bot.http.web.door import Door
from bot.http.web.render import PREFIX, Chart
from bot.http.web.texts import Wording
from funnels.ops.kpis import (
    LOW_REPLY_RATE,
    Flag,
    LeaderKpis,
    RegionKpis,
    RegionWeek,
    iso_week,
    week_days,
)
from funnels.ops.lines import LineTree

FLAG_KINDS = ("low_reply", "region_behind", "unknown_steps", "budget_low", "payouts_parked")
"""Every kind of :class:`~funnels.ops.kpis.Flag`, each with ``flag.KIND`` and
``flag.KIND.says`` texts."""


def region_code(text: str | None) -> str | None:
    return (text or "").strip().upper()[:32] or None


def chosen_week(text: str | None, this_week: str) -> str:
    """The ISO week asked for, or this week for none or anything that is not one."""
    if text:
        try:
            week_days(text)
        except ValueError:
            return this_week
        return text
    return this_week


def next_weeks(week: str) -> tuple[str, str]:
    """The weeks before and after ``week``."""
    monday, _ = week_days(week)
    return iso_week(monday - timedelta(days=7)), iso_week(monday + timedelta(days=7))


def launch_chart(regions: Sequence[RegionWeek], words: Wording) -> Chart:
    return Chart(
        id="chart-region-launches",
        title=words("regions.chart"),
        labels=[r.region for r in regions],
        series=[
            {"label": words("regions.launched"), "data": [r.launched for r in regions]},
            {"label": words("regions.target"), "data": [r.weekly_target for r in regions]},
        ],
    )


def flag_says(words: Wording, flag: Flag, week: str) -> str:
    """A flag as a sentence in the reader's language, from its figures (its ``detail``
    is English, for logs and tools)."""
    kind = flag.kind
    if kind == "low_reply":
        return words(
            "flag.low_reply.says",
            replied=words.number(flag.part or 0),
            joined=words.number(flag.whole or 0),
            rate=words.percent(flag.figure),
            limit=words.percent(LOW_REPLY_RATE),
        )
    if kind == "budget_low" and flag.currency:
        return words(
            "flag.budget_low.says",
            share=words.percent(flag.figure),
            spent=words.money(flag.part, flag.currency),
            budget=words.money(flag.whole, flag.currency),
        )
    if kind == "unknown_steps":
        return words("flag.unknown_steps.says", count=int(flag.figure))
    if kind == "payouts_parked":
        amount = words.money(flag.part, flag.currency) if flag.currency else "–"
        return words("flag.payouts_parked.says", count=int(flag.figure), amount=amount)
    if kind == "region_behind":
        return words(
            "flag.region_behind.says",
            launched=words.number(int(flag.figure)),
            target=words.number(flag.whole or 0),
            week=week,
        )
    return flag.detail  # a kind this page does not know yet: as the use case wrote it


def routes(door: Door) -> APIRouter:
    deps = door.deps
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    regions, leaders, lines = RegionKpis(deps), LeaderKpis(deps), LineTree(deps)

    @router.get("/regions")
    async def region_page(request: Request, week: str | None = None) -> Response:
        seen = await door.viewer(request)
        if isinstance(seen, Response):
            return seen
        this_week = iso_week(deps.clock.now().date())
        week = chosen_week(week, this_week)
        found = await regions(week)
        before, after = next_weeks(week)
        monday, sunday = week_days(week)
        return door.pages.render(
            "regions.html",
            seen,
            page="regions",
            week=week,
            monday=monday,
            sunday=sunday,
            this_week=this_week,
            before=before,
            after=after,
            regions=found,
            charts=[launch_chart(found, seen.words)] if found else [],
        )

    @router.get("/leaders")
    async def leader_page(request: Request, region: str | None = None) -> Response:
        seen = await door.viewer(request)
        if isinstance(seen, Response):
            return seen
        code = region_code(region)
        found = await leaders(code)
        deepest = max((g.generation for line in found for g in line.lines), default=1)
        return door.pages.render(
            "leaders.html",
            seen,
            page="leaders",
            leaders=found,
            region=code or "",
            generations=list(range(2, deepest + 1)),
        )

    @router.get("/lines")
    async def line_page(request: Request, region: str | None = None) -> Response:
        seen = await door.viewer(request)
        if isinstance(seen, Response):
            return seen
        code = region_code(region)
        tree = await lines(code)
        return door.pages.render("lines.html", seen, page="lines", tree=tree, region=code or "")

    @router.get("/flags")
    async def flag_page(request: Request) -> Response:
        seen = await door.viewer(request)
        if isinstance(seen, Response):
            return seen
        flags = await door.flags.fresh()
        seen.badges["flags"] = len(flags)
        week = iso_week(deps.clock.now().date())
        return door.pages.render(
            "flags.html",
            seen,
            page="flags",
            flags=flags,
            says=lambda flag: flag_says(seen.words, flag, week),
        )

    return router
