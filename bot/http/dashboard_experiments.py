"""The A/B variants page: every warm-up message that declares variants, its arms
(cohorts, members, replied, the reply rate and its 95% interval), and every kind of
daily reminder that does (members who went on instead of replies), with the verdict in
plain words, read through :class:`funnels.ops.experiments.CompareVariants`, the use case
of ``GET /api/v1/experiments``. The verdict's ``detail`` is English: the page says it
again in the reader's language from the figures."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from bot.http.web.door import Door
from bot.http.web.render import PREFIX
from bot.http.web.texts import Wording
from funnels.ops.experiments import (
    MIN_COHORTS,
    MIN_MEMBERS,
    WIDE,
    CompareVariants,
    Experiment,
)
from funnels.ops.ports import CohortFilter


def verdict_says(words: Wording, found: Experiment) -> str:
    """The verdict as a sentence: which arm gets more replies than ``a`` (moves more
    members on, for a reminder), none beyond chance, or why there are too few cohorts
    (members) to tell."""
    base = found.arms[0]
    per_member = found.kind == "reminder"
    if found.verdict in ("better", "worse") and found.leader is not None:
        arm = next(a for a in found.arms if a.arm == found.leader)
        return words(
            f"verdict.{'went_on_' if per_member else ''}{found.verdict}",
            arm=arm.arm,
            rate=words.percent(arm.rate),
            base=words.percent(base.rate),
        )
    if found.verdict == "no_difference":
        return words("verdict.no_difference")
    if per_member:
        small = [a.arm for a in found.arms if a.members < MIN_MEMBERS]
        if small:
            return words(
                "verdict.too_few_members",
                count=len(small),
                arms=", ".join(small),
                least=MIN_MEMBERS,
            )
        return words("verdict.members_too_wide", points=words.percent(WIDE))
    small = [a.arm for a in found.arms if a.cohorts < MIN_COHORTS]
    if small:
        return words(
            "verdict.too_few_cohorts", count=len(small), arms=", ".join(small), least=MIN_COHORTS
        )
    empty = [a.arm for a in found.arms if a.rate is None]
    if empty:
        return words("verdict.no_members", count=len(empty), arms=", ".join(empty))
    return words("verdict.too_wide", points=words.percent(WIDE))


def interval_box(low: float | None, high: float | None, rate: float | None) -> dict[str, float]:
    """Where an arm's interval and rate sit on a 0-100 scale (an SVG bar, drawn by
    attributes: the page's CSP allows no inline style)."""
    lo = 100 * (low if low is not None else rate or 0.0)
    hi = 100 * (high if high is not None else rate or 0.0)
    return {
        "x": round(lo, 2),
        "width": round(max(hi - lo, 0.0), 2),
        "at": round(100 * (rate or 0.0), 2),
    }


def routes(door: Door) -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    compare = CompareVariants(door.deps)

    @router.get("/experiments")
    async def experiments(request: Request) -> Response:
        seen = await door.viewer(request)
        if isinstance(seen, Response):
            return seen
        found = await compare(CohortFilter())
        return door.pages.render(
            "experiments.html",
            seen,
            page="experiments",
            experiments=found,
            says=lambda e: verdict_says(seen.words, e),
            box=interval_box,
            MIN_COHORTS=MIN_COHORTS,
            MIN_MEMBERS=MIN_MEMBERS,
            reminders=any(e.kind == "reminder" for e in found),
        )

    return router
