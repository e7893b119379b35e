"""The stats routes (``Authorization: Bearer`` API keys): cohorts, chosen by code,
region, leader, status and start date, newest first, a page at a time (an opaque cursor
says where the next page starts), and a cohort's step timeline; as JSON or, with
``?format=csv``, as CSV."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from bot.http.auth import api_key
from bot.http.problems import ApiProblem, documented
from bot.http.rates import KeyRates
from funnels.deps import Deps
from funnels.ops.actions import CohortActions
from funnels.ops.cohorts import (
    MAX_PAGE,
    CohortDetails,
    CohortEnvelopes,
    CohortSteps,
    CohortTasks,
    EnvelopeFigures,
    ListCohorts,
    TaskFigures,
)
from funnels.ops.ports import CohortFilter

API = "/api/v1"
CSV = "text/csv; charset=utf-8"
MAX_ID = 2**63 - 1


class Format(StrEnum):
    json = "json"
    csv = "csv"


class Status(StrEnum):
    running = "running"
    paused = "paused"
    finished = "finished"
    cancelled = "cancelled"


class StepStatus(StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    skipped = "skipped"
    failed = "failed"
    unknown = "unknown"
    held = "held"


_EXAMPLE: dict[str, Any] = {
    "id": 42,
    "code": "SEA-2647",
    "status": "running",
    "status_reason": None,
    "region": "SEA",
    "leader_telegram_id": 5551234,
    "leader_name": "Lina",
    "script_id": "seven-plus-21",
    "script_version": 3,
    "locale": "en",
    "timezone": "Asia/Singapore",
    "capacity": 500,
    "start_date": "2026-11-16",
    "ends_at": "2026-12-14T16:00:00Z",
    "currency": "USD",
    "budget_minor": 150000,
    "spent_minor": 61250,
    "parent_cohort_id": None,
    "generation": 1,
    "created_at": "2026-11-12T09:30:00Z",
    "finished_at": None,
    "admission": "requests",
}


class Cohort(BaseModel):
    """A cohort: who runs it where, its script, its dates and its reward budget (money in
    minor units of ``currency``)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    id: int
    code: str
    status: Status
    status_reason: str | None
    region: str | None = Field(description="Region code; null for a cohort without one.")
    leader_telegram_id: int | None
    leader_name: str | None
    script_id: str
    script_version: int
    locale: str
    timezone: str
    capacity: int
    start_date: date
    ends_at: datetime
    currency: str
    budget_minor: int
    spent_minor: int
    parent_cohort_id: int | None = Field(
        description="The cohort whose graduate launched this line (null for a leader's own)."
    )
    generation: int
    created_at: datetime
    finished_at: datetime | None
    admission: Literal["requests", "personal"] = Field(
        description="How responders get into the task group: `requests` (join requests the"
        " bot approves) or `personal` (a one-time link for each, asked for in private)."
    )


class CohortPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [_EXAMPLE], "next_cursor": "NDI"}]}
    )

    items: list[Cohort]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


_STEP_EXAMPLE: dict[str, Any] = {
    "key": "d3_talk#2",
    "kind": "talk_part",
    "stage": "warmup",
    "day": 3,
    "part": 2,
    "due_at": "2026-11-18T12:02:00Z",
    "status": "done",
    "attempts": 1,
    "started_at": "2026-11-18T12:02:04Z",
    "late_seconds": 4,
    "outcome": {"message_ids": [811]},
    "error": None,
}


class Step(BaseModel):
    """One step run: when it was due, whether and how late it ran, and what came of it
    (``unknown``: sent or not cannot be told after a crash, so ops decide; ``held``: a
    later part of a talk waiting for that decision)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_STEP_EXAMPLE]})

    key: str
    kind: str
    stage: str
    day: int
    part: int | None
    due_at: datetime
    status: StepStatus
    attempts: int
    started_at: datetime | None
    late_seconds: int | None = Field(
        description="How long after its due time the run started; null until it has."
    )
    outcome: dict[str, Any] | None
    error: str | None


class Action(BaseModel):
    """Something ops did to the cohort, who did it (an API key) and when."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "action": "pause",
                    "by": "api key dashboard-sea",
                    "api_key_id": 3,
                    "detail": None,
                    "at": "2026-11-18T12:40:00Z",
                }
            ]
        }
    )

    action: str
    by: str
    api_key_id: int | None
    detail: str | None
    at: datetime


class Envelope(BaseModel):
    """A red envelope: what it held (minor units of ``currency``), the share of it the
    group grabbed, and how long they took to empty it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "step_key": "d1_envelope_noon",
                    "opened_at": "2026-11-16T04:00:00Z",
                    "expires_at": "2026-11-16T04:10:00Z",
                    "closed_at": "2026-11-16T04:10:00Z",
                    "currency": "CNY",
                    "total_minor": 20000,
                    "shares": 100,
                    "claimed": 100,
                    "claimed_minor": 20000,
                    "grab_rate": 1.0,
                    "last_claim_at": "2026-11-16T04:00:41Z",
                    "emptied_in_seconds": 41,
                }
            ]
        }
    )

    step_key: str
    opened_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    currency: str
    total_minor: int
    shares: int
    claimed: int
    claimed_minor: int
    grab_rate: float = Field(description="Shares claimed over shares offered, 0 to 1.")
    last_claim_at: datetime | None
    emptied_in_seconds: int | None = Field(
        description="From opening to the last share, once every share was claimed."
    )

    @classmethod
    def of(cls, figures: EnvelopeFigures) -> Envelope:
        line = figures.line
        return cls(
            step_key=line.step_key,
            opened_at=line.opened_at,
            expires_at=line.expires_at,
            closed_at=line.closed_at,
            currency=line.currency,
            total_minor=line.total_minor,
            shares=line.shares,
            claimed=line.claimed,
            claimed_minor=line.claimed_minor,
            grab_rate=round(figures.grab_rate, 4),
            last_claim_at=line.last_claim_at,
            emptied_in_seconds=figures.emptied_in_seconds,
        )


class Envelopes(BaseModel):
    items: list[Envelope]


class TaskOut(BaseModel):
    """A task of the cohort's ladder: when it unlocks, how many members took it up and
    finished it (the rate over members who reached the task group), and its rewards by
    way out: ``delivered`` to the platform, ``pending`` delivery, ``owed`` past the
    budget, ``parked`` after 3 days of failed deliveries (counts, and sums in minor
    units)."""

    model_config = ConfigDict(
        title="Task",
        json_schema_extra={
            "examples": [
                {
                    "task_id": "invite_fans",
                    "title": "Invite three fans",
                    "unlocks_at": "2026-11-23T01:00:00Z",
                    "reward_minor": 50,
                    "started": 212,
                    "completed": 131,
                    "admitted": 240,
                    "completion_rate": 0.5458,
                    "delivered": 120,
                    "delivered_minor": 6000,
                    "pending": 3,
                    "pending_minor": 150,
                    "owed": 8,
                    "owed_minor": 400,
                    "parked": 0,
                    "parked_minor": 0,
                }
            ]
        },
    )

    task_id: str
    title: str
    unlocks_at: datetime
    reward_minor: int | None
    started: int
    completed: int
    admitted: int
    completion_rate: float | None
    delivered: int
    delivered_minor: int
    pending: int
    pending_minor: int
    owed: int
    owed_minor: int
    parked: int
    parked_minor: int

    @classmethod
    def of(cls, task: TaskFigures) -> TaskOut:
        rate = task.completion_rate
        ways: dict[str, int] = {}
        for way, (n, minor) in task.payouts.items():
            ways[way], ways[f"{way}_minor"] = n, minor
        return cls(
            task_id=task.task_id,
            title=task.title,
            unlocks_at=task.unlocks_at,
            reward_minor=task.reward_minor,
            started=task.started,
            completed=task.completed,
            admitted=task.admitted,
            completion_rate=round(rate, 4) if rate is not None else None,
            **ways,
        )


class Tasks(BaseModel):
    items: list[TaskOut]


class Actions(BaseModel):
    items: list[Action]


class Steps(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [_STEP_EXAMPLE]}]})

    items: list[Step]


_COLUMNS = list(Cohort.model_fields)
_STEP_COLUMNS = list(Step.model_fields)
_ENVELOPE_COLUMNS = list(Envelope.model_fields)
_TASK_COLUMNS = list(TaskOut.model_fields)


def cohort_filter(
    code: str | None,
    region: str | None,
    leader: int | None,
    status: Status | None,
    start_from: date | None,
    start_to: date | None,
) -> CohortFilter:
    """The cohorts the query parameters choose; a 422 for a ``from`` after ``to``."""
    if start_from and start_to and start_from > start_to:
        raise ApiProblem(
            422,
            "Invalid request",
            "query.from: after query.to",
            errors=[{"field": "query.from", "message": "after query.to"}],
        )
    return CohortFilter(
        code=code.strip().upper() if code else None,
        region=region.strip().upper() if region else None,
        leader_telegram_id=leader,
        status=status.value if status else None,
        start_from=start_from,
        start_to=start_to,
    )


def no_cohort(cohort_id: int) -> ApiProblem:
    return ApiProblem(404, "Not Found", f"there is no cohort {cohort_id}")


def _cursor(before_id: int) -> str:
    return base64.urlsafe_b64encode(str(before_id).encode()).decode().rstrip("=")


def _before(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and 1 <= int(text) <= MAX_ID):
        raise ApiProblem(
            400,
            "Bad cursor",
            "cursor: not one this API gave (use next_cursor from the page before)",
            errors=[{"field": "query.cursor", "message": "not a cursor of this API"}],
        )
    return int(text)


def csv_response(
    rows: Sequence[object],
    columns: list[str],
    headers: dict[str, str] | None = None,
) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        values = (getattr(row, c) for c in columns)
        writer.writerow(_cell(v) for v in values)
    return Response(out.getvalue(), media_type=CSV, headers=headers)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return str(value)


FORMAT_QUERY = Query(description="`json` (default) or `csv`.")
RegionQuery = Annotated[str | None, Query(max_length=32, description="Region code.")]
LeaderQuery = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="The leader's Telegram user id.")
]


def _written_date(value: object) -> object:
    """Only ``YYYY-MM-DD``: pydantic alone would read ``0`` or ``1764028800`` as a Unix
    time."""
    if isinstance(value, str) and _DATE.fullmatch(value):
        return value
    raise ValueError("write a date as YYYY-MM-DD")


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
FromQuery = Annotated[
    date | None,
    BeforeValidator(_written_date),
    Query(alias="from", description="Started on or after (YYYY-MM-DD)."),
]
ToQuery = Annotated[
    date | None,
    BeforeValidator(_written_date),
    Query(alias="to", description="Started on or before (YYYY-MM-DD)."),
]


def chosen_cohorts(
    region: RegionQuery = None,
    leader: LeaderQuery = None,
    status: Status | None = None,
    start_from: FromQuery = None,
    start_to: ToQuery = None,
) -> CohortFilter:
    """The cohorts a figure sums over, from the query (a route dependency)."""
    return cohort_filter(None, region, leader, status, start_from, start_to)


CSV_CONTENT = {CSV: {"schema": {"type": "string"}}}


def routes(deps: Deps, rates: KeyRates | None = None) -> APIRouter:
    router = APIRouter(
        prefix=API,
        tags=["stats"],
        dependencies=[Depends(api_key(deps, rates=rates))],
        responses=documented(401, 422, 429),
    )
    list_cohorts, details, steps = ListCohorts(deps), CohortDetails(deps), CohortSteps(deps)
    actions, envelopes, tasks = CohortActions(deps), CohortEnvelopes(deps), CohortTasks(deps)

    @router.get(
        "/cohorts",
        response_model=CohortPage,
        summary="Cohorts, newest first, a page at a time",
        responses={200: {"content": CSV_CONTENT}, **documented(400)},
    )
    async def cohorts(
        request: Request,
        code: Annotated[str | None, Query(max_length=16, description="Cohort code.")] = None,
        region: RegionQuery = None,
        leader: LeaderQuery = None,
        status: Status | None = None,
        start_from: FromQuery = None,
        start_to: ToQuery = None,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        format: Annotated[Format, FORMAT_QUERY] = Format.json,
    ) -> Response:
        """Cohorts that match every filter given. `next_cursor` (JSON) or the `Link`
        header (`rel="next"`, both formats) leads to the next page."""
        choice = cohort_filter(code, region, leader, status, start_from, start_to)
        page = await list_cohorts(choice, _before(cursor) if cursor else None, limit)
        next_cursor = _cursor(page.next_before_id) if page.next_before_id else None
        headers = {}
        if next_cursor:
            link = request.url.include_query_params(cursor=next_cursor)
            headers["Link"] = f'<{link}>; rel="next"'
        if format is Format.csv:
            return csv_response(page.items, _COLUMNS, headers)
        body = CohortPage(
            items=[Cohort.model_validate(c, from_attributes=True) for c in page.items],
            next_cursor=next_cursor,
        )
        return JSONResponse(body.model_dump(mode="json"), headers=headers)

    @router.get(
        "/cohorts/{cohort_id}",
        response_model=Cohort,
        summary="One cohort",
        responses={200: {"content": CSV_CONTENT}, **documented(404)},
    )
    async def cohort(
        cohort_id: Annotated[int, Path(ge=1, le=MAX_ID)],
        format: Annotated[Format, FORMAT_QUERY] = Format.json,
    ) -> Response:
        found = await details(cohort_id)
        if found is None:
            raise no_cohort(cohort_id)
        if format is Format.csv:
            return csv_response([found], _COLUMNS)
        return JSONResponse(
            Cohort.model_validate(found, from_attributes=True).model_dump(mode="json")
        )

    # What one cohort has beyond its summary.
    one = APIRouter(prefix="/cohorts/{cohort_id}")

    @one.get(
        "/steps",
        response_model=Steps,
        summary="A cohort's step timeline",
        responses={200: {"content": CSV_CONTENT}, **documented(404)},
    )
    async def cohort_steps(
        cohort_id: Annotated[int, Path(ge=1, le=MAX_ID)],
        status: Annotated[
            StepStatus | None, Query(description="Only the runs in this state.")
        ] = None,
        format: Annotated[Format, FORMAT_QUERY] = Format.json,
    ) -> Response:
        """Every step run of the cohort by due time: posts, talk parts, envelopes, the
        pitch and task unlocks, with how late each started and what came of it."""
        lines = await steps(cohort_id, status.value if status else None)
        if lines is None:
            raise no_cohort(cohort_id)
        if format is Format.csv:
            return csv_response(lines, _STEP_COLUMNS)
        body = Steps(items=[Step.model_validate(line, from_attributes=True) for line in lines])
        return JSONResponse(body.model_dump(mode="json"))

    @one.get(
        "/actions",
        response_model=Actions,
        summary="What ops did to a cohort",
        responses=documented(404),
    )
    async def cohort_actions(cohort_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> Response:
        """Pauses and resumes over this API, oldest first, with the key that asked."""
        done = await actions(cohort_id)
        if done is None:
            raise no_cohort(cohort_id)
        body = Actions(items=[Action.model_validate(a, from_attributes=True) for a in done])
        return JSONResponse(body.model_dump(mode="json"))

    @one.get(
        "/envelopes",
        response_model=Envelopes,
        summary="A cohort's red envelopes",
        responses={200: {"content": CSV_CONTENT}, **documented(404)},
    )
    async def cohort_envelopes(
        cohort_id: Annotated[int, Path(ge=1, le=MAX_ID)],
        format: Annotated[Format, FORMAT_QUERY] = Format.json,
    ) -> Response:
        """Every red envelope that opened, by opening time: what it held, what was
        grabbed, the grab rate and the time to empty it."""
        found = await envelopes(cohort_id)
        if found is None:
            raise no_cohort(cohort_id)
        items = [Envelope.of(f) for f in found]
        if format is Format.csv:
            return csv_response(items, _ENVELOPE_COLUMNS)
        return JSONResponse(Envelopes(items=items).model_dump(mode="json"))

    @one.get(
        "/tasks",
        response_model=Tasks,
        summary="A cohort's tasks",
        responses={200: {"content": CSV_CONTENT}, **documented(404)},
    )
    async def cohort_tasks(
        cohort_id: Annotated[int, Path(ge=1, le=MAX_ID)],
        format: Annotated[Format, FORMAT_QUERY] = Format.json,
    ) -> Response:
        """The ladder's tasks in the script's order: unlock time, members who started and
        completed each, the completion rate, and rewards by way out."""
        found = await tasks(cohort_id)
        if found is None:
            raise no_cohort(cohort_id)
        items = [TaskOut.of(t) for t in found]
        if format is Format.csv:
            return csv_response(items, _TASK_COLUMNS)
        return JSONResponse(Tasks(items=items).model_dump(mode="json"))

    router.include_router(one)
    return router
