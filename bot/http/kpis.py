"""The KPI routes (``Authorization: Bearer`` API keys): a cohort's funnel and days, the
funnel over any choice of cohorts, regions against their weekly launch target, leaders
and the lines their graduates grew, the red flags, and A/B variants compared; as JSON or, with
``?format=csv``, as CSV. Every figure is read from the rollups (``funnels/ops/kpis.py``),
through the figures board where the service keeps one (``funnels/ops/board.py``); a
cohort's funnel as JSON is answered by the front door straight from the board
(:func:`fast_funnel_route`).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from bot.http.auth import api_key
from bot.http.front import FastRoute
from bot.http.problems import ApiProblem, documented
from bot.http.rates import KeyRates
from bot.http.stats import (
    API,
    CSV_CONTENT,
    FORMAT_QUERY,
    MAX_ID,
    Format,
    RegionQuery,
    chosen_cohorts,
    csv_response,
    no_cohort,
)
from funnels.deps import Deps
from funnels.kernel.stages import Stage
from funnels.ops.board import FiguresBoard
from funnels.ops.experiments import CompareVariants, Experiment
from funnels.ops.kpis import (
    CohortFunnelReport,
    DayLine,
    FunnelFigures,
    FunnelOver,
    LeaderKpis,
    LeaderLine,
    RedFlags,
    RegionKpis,
    RegionWeek,
    iso_week,
    week_days,
)
from funnels.ops.ports import CohortFigures, CohortFilter


class StageOut(BaseModel):
    model_config = ConfigDict(title="Stage")

    stage: str = Field(description="joined, engaged, replied, admitted, tasked, sold, …")
    members: int = Field(description="Members at this stage or beyond.")
    from_previous: float | None = Field(
        description="Over the stage before (null for joined, or where that is zero)."
    )
    from_joined: float | None


_STAGES_EXAMPLE = [
    {"stage": "joined", "members": 480, "from_previous": None, "from_joined": 1.0},
    {"stage": "engaged", "members": 402, "from_previous": 0.8375, "from_joined": 0.8375},
    {"stage": "replied", "members": 151, "from_previous": 0.3756, "from_joined": 0.3146},
]
_FUNNEL_EXAMPLE: dict[str, Any] = {
    "cohorts": 4,
    "stages": _STAGES_EXAMPLE,
    "reply_rate": 0.3146,
    "currency": "CNY",
    "spent_minor": 180000,
    "cost_per_sold_minor": 4615,
}


class FunnelOut(BaseModel):
    """Members at each funnel stage (or beyond), with the conversion from the stage
    before and from `joined`; the reply rate to the pitch; money spent (envelope shares
    and task rewards, minor units of `currency`) and its cost per member who sold.
    Money is null over cohorts of several currencies."""

    model_config = ConfigDict(title="Funnel", json_schema_extra={"examples": [_FUNNEL_EXAMPLE]})

    cohorts: int
    stages: list[StageOut]
    reply_rate: float | None
    currency: str | None
    spent_minor: int | None
    cost_per_sold_minor: int | None

    @classmethod
    def of(cls, figures: FunnelFigures) -> FunnelOut:
        return cls(
            cohorts=figures.cohorts,
            stages=[
                StageOut(
                    stage=line.stage.label,
                    members=line.members,
                    from_previous=_round(line.from_previous),
                    from_joined=_round(line.from_joined),
                )
                for line in figures.stages
            ],
            reply_rate=_round(figures.reply_rate),
            currency=figures.currency,
            spent_minor=figures.spent_minor,
            cost_per_sold_minor=figures.cost_per_sold_minor,
        )


class CohortFunnelOut(FunnelOut):
    model_config = ConfigDict(
        title="CohortFunnel",
        json_schema_extra={"examples": [{"cohort_id": 42, "code": "SEA-2647", **_FUNNEL_EXAMPLE}]},
    )

    cohort_id: int
    code: str


class DayOut(BaseModel):
    """One local day of a cohort: members who entered each stage that day (a member who
    skips a stage enters it with the next), and the group's messages and writers."""

    model_config = ConfigDict(
        title="Day",
        json_schema_extra={
            "examples": [
                {
                    "day": "2026-11-22",
                    "number": 7,
                    "joined": 2,
                    "engaged": 11,
                    "replied": 149,
                    "admitted": 0,
                    "tasked": 0,
                    "sold": 0,
                    "shopkeeper": 0,
                    "supervisor": 0,
                    "messages": 612,
                    "writers": 233,
                }
            ]
        },
    )

    day: date
    number: int = Field(description="The cohort's day: 1 is its start date.")
    joined: int
    engaged: int
    replied: int
    admitted: int
    tasked: int
    sold: int
    shopkeeper: int
    supervisor: int
    messages: int
    writers: int = Field(description="Members who wrote at least one message that day.")

    @classmethod
    def of(cls, line: DayLine) -> DayOut:
        entered = {stage.label: line.entered.get(stage, 0) for stage in Stage}
        return cls(
            day=line.day,
            number=line.number,
            messages=line.messages,
            writers=line.writers,
            **entered,
        )


class Days(BaseModel):
    items: list[DayOut]


class RegionWeekOut(BaseModel):
    """A region's cohorts launched (started) in one ISO week against its weekly target,
    how full they are, and how they convert."""

    model_config = ConfigDict(
        title="RegionWeek",
        json_schema_extra={
            "examples": [
                {
                    "region": "SEA",
                    "name": "South-East Asia",
                    "week": "2026-W47",
                    "weekly_target": 1,
                    "launched": 1,
                    "behind": False,
                    "capacity": 500,
                    "joined": 480,
                    "capacity_fill": 0.96,
                    "replied": 151,
                    "reply_rate": 0.3146,
                    "admitted": 148,
                    "sold": 39,
                    "shopkeepers": 12,
                }
            ]
        },
    )

    region: str
    name: str
    week: str
    weekly_target: int
    launched: int
    behind: bool = Field(description="Fewer cohorts launched than the weekly target.")
    capacity: int
    joined: int
    capacity_fill: float | None = Field(description="Joined over capacity.")
    replied: int
    reply_rate: float | None
    admitted: int
    sold: int
    shopkeepers: int

    @classmethod
    def of(cls, line: RegionWeek, week: str) -> RegionWeekOut:
        return cls(
            region=line.region,
            name=line.name,
            week=week,
            weekly_target=line.weekly_target,
            launched=line.launched,
            behind=line.behind,
            capacity=line.capacity,
            joined=line.joined,
            capacity_fill=_round(line.capacity_fill),
            replied=line.replied,
            reply_rate=_round(line.reply_rate),
            admitted=line.admitted,
            sold=line.sold,
            shopkeepers=line.shopkeepers,
        )


class RegionWeeks(BaseModel):
    week: str
    items: list[RegionWeekOut]


class GenerationOut(BaseModel):
    model_config = ConfigDict(title="Generation")

    generation: int = Field(description="2: a graduate's line; 3: its graduate's; …")
    cohorts: int
    joined: int
    sold: int
    shopkeepers: int


class LeaderOut(BaseModel):
    """A leader's own cohorts and how they convert, and the lines grown out of them by
    graduates, per generation."""

    model_config = ConfigDict(
        title="Leader",
        json_schema_extra={
            "examples": [
                {
                    "telegram_id": 5551234,
                    "name": "Lina",
                    "cohorts": 4,
                    "joined": 1900,
                    "replied": 610,
                    "admitted": 598,
                    "sold": 160,
                    "shopkeepers": 48,
                    "conversion": 0.0842,
                    "lines": [
                        {
                            "generation": 2,
                            "cohorts": 3,
                            "joined": 1210,
                            "sold": 88,
                            "shopkeepers": 20,
                        }
                    ],
                }
            ]
        },
    )

    telegram_id: int | None
    name: str | None
    cohorts: int
    joined: int
    replied: int
    admitted: int
    sold: int
    shopkeepers: int
    conversion: float | None = Field(description="Sold over joined, own cohorts.")
    lines: list[GenerationOut]

    @classmethod
    def of(cls, line: LeaderLine) -> LeaderOut:
        return cls(
            telegram_id=line.telegram_id,
            name=line.name,
            cohorts=line.cohorts,
            joined=line.joined,
            replied=line.replied,
            admitted=line.admitted,
            sold=line.sold,
            shopkeepers=line.shopkeepers,
            conversion=_round(line.conversion),
            lines=[GenerationOut.model_validate(g, from_attributes=True) for g in line.lines],
        )


class Leaders(BaseModel):
    items: list[LeaderOut]


class FlagOut(BaseModel):
    """Something to look at now: ``low_reply`` (under 10% replied once the pitch
    opened), ``region_behind`` (fewer launches this week than the target),
    ``unknown_steps`` (sends in doubt after a crash), ``budget_low`` (90% or more
    spent), ``payouts_parked``."""

    model_config = ConfigDict(
        title="Flag",
        json_schema_extra={
            "examples": [
                {
                    "kind": "low_reply",
                    "cohort_id": 42,
                    "cohort_code": "SEA-2647",
                    "region": "SEA",
                    "figure": 0.062,
                    "detail": "29 of 468 members replied to the pitch (under 10%)",
                }
            ]
        },
    )

    kind: str
    cohort_id: int | None
    cohort_code: str | None
    region: str | None
    figure: float
    detail: str


class Flags(BaseModel):
    items: list[FlagOut]


class ArmOut(BaseModel):
    model_config = ConfigDict(title="Arm")

    arm: str = Field(description="`a` is the message's own text; the others its variants.")
    weight: int
    cohorts: int = Field(
        description="Cohorts whose group got this wording (for a reminder: whose members did)."
    )
    members: int = Field(
        description="Members who joined those cohorts (for a reminder: who got this wording)."
    )
    converted: int = Field(
        description="Of them, members who replied to the pitch (for a reminder: who reached "
        "a stage beyond the one they were at when their first reminder of the kind went out)."
    )
    rate: float | None
    low: float | None = Field(
        description="95% interval (null with fewer than two cohorts, or two members for a "
        "reminder)."
    )
    high: float | None


class ExperimentOut(BaseModel):
    """A warm-up message with variants: each arm's cohorts and members, their reply rate
    with a 95% interval (cohorts are the unit: a group sees one wording), and a verdict
    that says plainly when there are too few cohorts to tell. A kind of daily reminder
    with variants (`kind` reminder, `step_key` such as `reminder.inactive`, `stage`
    next): members are the unit, each drawing their own arm, and conversion is going on
    to a later stage."""

    model_config = ConfigDict(
        title="Experiment",
        json_schema_extra={
            "examples": [
                {
                    "script_id": "seven-plus-twentyone",
                    "step_key": "d7_pitch",
                    "kind": "pitch",
                    "stage": "replied",
                    "arms": [
                        {
                            "arm": "a",
                            "weight": 1,
                            "cohorts": 3,
                            "members": 1440,
                            "converted": 490,
                            "rate": 0.3403,
                            "low": 0.29,
                            "high": 0.3906,
                        },
                        {
                            "arm": "story",
                            "weight": 1,
                            "cohorts": 2,
                            "members": 960,
                            "converted": 370,
                            "rate": 0.3854,
                            "low": 0.35,
                            "high": 0.4208,
                        },
                    ],
                    "verdict": "too_small",
                    "leader": None,
                    "detail": "too few cohorts to tell: arm a, story has fewer than 5",
                }
            ]
        },
    )

    script_id: str
    step_key: str
    kind: str = Field(description="post, talk_part, pitch or reminder.")
    stage: str = Field(description="What counts as converted: replied, or next (a reminder).")
    arms: list[ArmOut]
    verdict: str = Field(description="too_small, no_difference, better or worse.")
    leader: str | None = Field(description="The arm that beats (or trails) `a`.")
    detail: str


class Experiments(BaseModel):
    items: list[ExperimentOut]


class _ArmRow(BaseModel):
    script_id: str
    step_key: str
    verdict: str
    arm: str
    weight: int
    cohorts: int
    members: int
    converted: int
    rate: float | None
    low: float | None
    high: float | None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


_STAGE_COLUMNS = list(StageOut.model_fields)
_DAY_COLUMNS = list(DayOut.model_fields)
_REGION_COLUMNS = list(RegionWeekOut.model_fields)
_LEADER_COLUMNS = [c for c in LeaderOut.model_fields if c != "lines"]
_FLAG_COLUMNS = list(FlagOut.model_fields)
_ARM_COLUMNS = list(_ArmRow.model_fields)
_WEEK = Query(
    pattern=r"^[0-9]{4}-W[0-9]{2}$",
    description="ISO week, e.g. 2026-W47 (default: this week).",
)


def _experiment(found: Experiment) -> ExperimentOut:
    return ExperimentOut(
        script_id=found.script_id,
        step_key=found.step_key,
        kind=found.kind,
        stage=found.stage,
        arms=[
            ArmOut(
                arm=a.arm,
                weight=a.weight,
                cohorts=a.cohorts,
                members=a.members,
                converted=a.converted,
                rate=_round(a.rate),
                low=_round(a.low),
                high=_round(a.high),
            )
            for a in found.arms
        ],
        verdict=found.verdict,
        leader=found.leader,
        detail=found.detail,
    )


def _cohort_funnel(cohort: CohortFigures, funnel: FunnelFigures) -> CohortFunnelOut:
    return CohortFunnelOut(
        cohort_id=cohort.id, code=cohort.code, **FunnelOut.of(funnel).model_dump()
    )


def _funnel_json(cohort: CohortFigures) -> bytes:
    """A cohort's funnel answer as FastAPI's route renders it."""
    body = _cohort_funnel(cohort, FunnelFigures.of([cohort]))
    return bytes(JSONResponse(body.model_dump(mode="json")).body)


def _region_body(week: str, items: list[RegionWeekOut]) -> dict[str, Any]:
    return RegionWeeks(week=week, items=items).model_dump(mode="json")


async def _live_key(request: Request, board: FiguresBoard, rates: KeyRates | None) -> bool:
    """Whether the request's Bearer key is one the board holds and within its rate (any
    other answer, a 401 or a 429 among them, is FastAPI's route's to give)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    key = board.key(token.strip())
    return key is not None and (rates is None or await rates.wait(key.id) == 0)


_WEEK_FORM = re.compile(r"^[0-9]{4}-W[0-9]{2}$")


def fast_regions_route(board: FiguresBoard, deps: Deps, rates: KeyRates | None = None) -> FastRoute:
    """``GET /api/v1/regions/kpi`` for the front door: with a live key and nothing in the
    query but a valid ``week`` and ``region`` (each at most once), a week's regions from
    the board; anything else is FastAPI's route's (:func:`routes`)."""
    kpis = RegionKpis(deps, board)

    async def regions(request: Request) -> Response | None:
        if not board.ready:
            return None
        query = parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True)
        given = dict(query)
        if len(given) != len(query) or not set(given) <= {"week", "region"}:
            return None
        week = given.get("week", iso_week(deps.clock.now().date()))
        region = given.get("region")
        if not _WEEK_FORM.match(week) or (region is not None and len(region) > 32):
            return None
        if not await _live_key(request, board, rates):
            return None
        code = region.strip().upper() if region else None
        try:
            found = kpis.at_once(week, code)
        except ValueError:  # not a week of the calendar (2026-W60): FastAPI says so
            return None
        if found is None:
            return None
        items = [RegionWeekOut.of(r, week) for r in found]
        return JSONResponse(_region_body(week, items))

    return FastRoute(f"{API}/regions/kpi", frozenset({"GET"}), regions, passes=True)


def fast_funnel_route(board: FiguresBoard, rates: KeyRates | None = None) -> FastRoute:
    """``GET /api/v1/cohorts/{cohort_id}/funnel`` for the front door: with no query, a
    live key and a cohort the board holds, its answer's bytes kept with the cohort's
    figures; anything else is FastAPI's route's (:func:`routes`)."""
    prefix, suffix = f"{API}/cohorts/", "/funnel"

    async def funnel(request: Request) -> Response | None:
        if request.scope["query_string"] or not board.ready:
            return None
        raw = request.path_params["cohort_id"]
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_ID:
            return None
        if not await _live_key(request, board, rates):
            return None
        body = board.derived(int(raw), "funnel.json", _funnel_json)
        if body is None:
            return None
        return Response(body, media_type="application/json")

    return FastRoute(
        prefix, frozenset({"GET"}), funnel, param="cohort_id", suffix=suffix, passes=True
    )


def routes(
    deps: Deps, board: FiguresBoard | None = None, rates: KeyRates | None = None
) -> APIRouter:
    router = APIRouter(
        prefix=API,
        tags=["kpis"],
        dependencies=[Depends(api_key(deps, board, rates))],
        responses=documented(401, 422, 429),
    )
    cohort_funnel, funnel_over = CohortFunnelReport(deps, board), FunnelOver(deps, board)
    regions, leaders = RegionKpis(deps, board), LeaderKpis(deps, board)
    flags = RedFlags(deps)
    compare = CompareVariants(deps)

    @router.get(
        "/funnel",
        response_model=FunnelOut,
        summary="The funnel over a choice of cohorts",
        responses={200: {"content": CSV_CONTENT}},
    )
    async def funnel(
        choice: Annotated[CohortFilter, Depends(chosen_cohorts)],
        format: Annotated[Format, FORMAT_QUERY] = Format.json,
    ) -> Response:
        """Members per stage summed over every cohort that matches all filters (all
        cohorts without one); CSV gives the stage lines."""
        body = FunnelOut.of(await funnel_over(choice))
        if format is Format.csv:
            return csv_response(body.stages, _STAGE_COLUMNS)
        return JSONResponse(body.model_dump(mode="json"))

    regions_router = APIRouter(prefix="/regions")

    @regions_router.get(
        "/kpi",
        response_model=RegionWeeks,
        summary="Regions in one ISO week against their weekly launch target",
        responses={200: {"content": CSV_CONTENT}},
    )
    async def region_kpis(
        week: Annotated[str | None, _WEEK] = None,
        region: RegionQuery = None,
        format: Annotated[Format, FORMAT_QUERY] = Format.json,
    ) -> Response:
        """Every region (or the one asked for) with the cohorts that started in the week:
        launched against the target, capacity fill, replies, admitted, sold and
        shopkeepers."""
        week = week or iso_week(deps.clock.now().date())
        try:
            week_days(week)
        except ValueError as bad:
            raise ApiProblem(
                422,
                "Invalid request",
                f"query.week: {bad}",
                errors=[{"field": "query.week", "message": str(bad)}],
            ) from None
        code = region.strip().upper() if region else None
        items = [RegionWeekOut.of(r, week) for r in await regions(week, code)]
        if format is Format.csv:
            return csv_response(items, _REGION_COLUMNS)
        return JSONResponse(_region_body(week, items))

    @router.get(
        "/leaders",
        response_model=Leaders,
        summary="Leaders, the most sold first, and their graduates' lines",
        responses={200: {"content": CSV_CONTENT}},
    )
    async def leader_kpis(
        region: RegionQuery = None,
        format: Annotated[Format, FORMAT_QUERY] = Format.json,
    ) -> Response:
        """Each leader's own cohorts (in the region, if one is given) and their
        conversion, with the lines their graduates launched per generation (JSON only;
        CSV leaves the lines out)."""
        code = region.strip().upper() if region else None
        items = [LeaderOut.of(line) for line in await leaders(code)]
        if format is Format.csv:
            return csv_response(items, _LEADER_COLUMNS)
        return JSONResponse(Leaders(items=items).model_dump(mode="json"))

    @router.get(
        "/flags",
        response_model=Flags,
        summary="Red flags: what to look at now",
        responses={200: {"content": CSV_CONTENT}},
    )
    async def red_flags(format: Annotated[Format, FORMAT_QUERY] = Format.json) -> Response:
        """Cohorts under a 10% reply rate once the pitch opened, regions behind this
        week's launch target, steps in `unknown`, budgets 90% spent, parked payouts."""
        items = [FlagOut.model_validate(f, from_attributes=True) for f in await flags()]
        if format is Format.csv:
            return csv_response(items, _FLAG_COLUMNS)
        return JSONResponse(Flags(items=items).model_dump(mode="json"))

    @router.get(
        "/experiments",
        response_model=Experiments,
        summary="A/B variants compared",
        responses={200: {"content": CSV_CONTENT}},
    )
    async def experiments(
        choice: Annotated[CohortFilter, Depends(chosen_cohorts)],
        format: Annotated[Format, FORMAT_QUERY] = Format.json,
    ) -> Response:
        """Every warm-up message with variants in the chosen cohorts' scripts: each arm's
        reply rate with its sample and interval, and whether an arm differs from `a`
        (CSV: a row per arm)."""
        items = [_experiment(e) for e in await compare(choice)]
        if format is Format.csv:
            rows = [
                _ArmRow(
                    script_id=e.script_id, step_key=e.step_key, verdict=e.verdict, **a.model_dump()
                )
                for e in items
                for a in e.arms
            ]
            return csv_response(rows, _ARM_COLUMNS)
        return JSONResponse(Experiments(items=items).model_dump(mode="json"))

    one = APIRouter(prefix="/cohorts/{cohort_id}")

    @one.get(
        "/funnel",
        response_model=CohortFunnelOut,
        summary="A cohort's funnel",
        responses={200: {"content": CSV_CONTENT}, **documented(404)},
    )
    async def one_funnel(
        cohort_id: Annotated[int, Path(ge=1, le=MAX_ID)],
        format: Annotated[Format, FORMAT_QUERY] = Format.json,
    ) -> Response:
        """Members per stage with conversions, the reply rate, money spent and its cost
        per member who sold; CSV gives the stage lines."""
        found = await cohort_funnel(cohort_id, days=False)
        if found is None:
            raise no_cohort(cohort_id)
        body = _cohort_funnel(found.cohort, found.funnel)
        if format is Format.csv:
            return csv_response(body.stages, _STAGE_COLUMNS)
        return JSONResponse(body.model_dump(mode="json"))

    @one.get(
        "/days",
        response_model=Days,
        summary="A cohort's days",
        responses={200: {"content": CSV_CONTENT}, **documented(404)},
    )
    async def one_days(
        cohort_id: Annotated[int, Path(ge=1, le=MAX_ID)],
        format: Annotated[Format, FORMAT_QUERY] = Format.json,
    ) -> Response:
        """Each local day with anything in it: members who entered each stage, and the
        group's messages and the members who wrote (daily activity)."""
        found = await cohort_funnel(cohort_id)
        if found is None:
            raise no_cohort(cohort_id)
        items = [DayOut.of(line) for line in found.days]
        if format is Format.csv:
            return csv_response(items, _DAY_COLUMNS)
        return JSONResponse(Days(items=items).model_dump(mode="json"))

    router.include_router(regions_router)
    router.include_router(one)
    return router
