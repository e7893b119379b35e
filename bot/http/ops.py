"""The ops routes (``Authorization: Bearer`` API keys): pause and resume a cohort, retry
one of its steps, raise its reward budget. Each action is recorded with the key that
asked, and shows in ``GET /api/v1/cohorts/{id}/actions``; a refusal is a problem and
changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Body, Depends, Path
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from bot.http.auth import api_key
from bot.http.problems import ApiProblem, documented
from bot.http.rates import KeyRates
from bot.http.stats import API, MAX_ID, Cohort, no_cohort
from funnels.deps import Deps
from funnels.kernel.actor import OpsAuthor
from funnels.kernel.records import ApiKeyRecord
from funnels.kernel.refusals import Refused
from funnels.ladder.rewards import RaiseBudget
from funnels.ops.actions import PauseByOps, ResumeByOps
from funnels.ops.cohorts import CohortDetails
from funnels.ops.ports import CohortSummary
from funnels.ops.steps import RetryStep

T = TypeVar("T")

_REFUSALS = {
    "no_cohort": (404, "Not Found", "there is no cohort {id}"),
    "not_running": (409, "Conflict", "cohort {code} is {status}: only a running one can pause"),
    "not_paused": (409, "Conflict", "cohort {code} is {status}, not paused"),
    "still_missing": (
        409,
        "Conflict",
        "cohort {code} stays paused: the bot still lacks {missing} in its warm-up group",
    ),
    "no_step": (404, "Not Found", "cohort {code} has no step {step}"),
    "step_waiting": (
        409,
        "Conflict",
        "step {step} waits for {on} to be decided: retry or skip that one first",
    ),
    "cannot_retry": (
        409,
        "Conflict",
        "step {step} is {status}: only a step whose outcome is unknown, that failed or "
        "was skipped can be retried",
    ),
    "bad_amount": (422, "Invalid request", "body.add: {reason}"),
    "not_positive": (422, "Invalid request", "body.add: the amount must be more than zero"),
}


class Retried(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"step": "d3_talk.p1", "resumed": ["d3_talk.p2"]}]}
    )

    step: str
    """Pending again: the next tick sends it."""
    resumed: list[str] = Field(description="Talk parts that were held behind it and go on.")


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"add": "50.00"}]})

    add: str = Field(
        min_length=1,
        max_length=32,
        description="Amount to add, a decimal in the cohort's currency.",
    )


class BudgetOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "currency": "USD",
                    "added_minor": 5000,
                    "budget_minor": 155000,
                    "paid": 12,
                    "paid_minor": 2400,
                    "still_owed": 0,
                    "still_owed_minor": 0,
                }
            ]
        }
    )

    currency: str
    added_minor: int
    budget_minor: int
    paid: int
    """Owed rewards paid now, in the order they were earned."""
    paid_minor: int
    still_owed: int
    still_owed_minor: int


def _problem(refused: Refused) -> ApiProblem:
    status, title, detail = _REFUSALS[refused.code]
    params = dict(refused.params)
    missing = params.get("missing")
    if isinstance(missing, tuple):
        params["missing"] = ", ".join(str(m) for m in missing)
    return ApiProblem(status, title, detail.format(**params))


async def _refusing(action: Awaitable[T]) -> T:
    """What ``action`` gives; its refusal as a problem (nothing was changed)."""
    try:
        return await action
    except Refused as refused:
        raise _problem(refused) from None


def _author(key: ApiKeyRecord) -> OpsAuthor:
    return OpsAuthor(f"api key {key.name}", key.id)


def routes(deps: Deps, rates: KeyRates | None = None) -> APIRouter:
    router = APIRouter(
        prefix=f"{API}/cohorts/{{cohort_id}}",
        tags=["ops"],
        responses=documented(401, 404, 409, 422, 429),
    )
    # The request's key, as a default value: a local cannot be named in an annotation
    # (annotations are strings here, resolved in the module's namespace).
    keyed = Depends(api_key(deps, rates=rates))
    pause, resume, details = PauseByOps(deps), ResumeByOps(deps), CohortDetails(deps)
    retry, raise_budget = RetryStep(deps), RaiseBudget(deps)

    async def summary(cohort_id: int) -> CohortSummary:
        found = await details(cohort_id)
        if found is None:
            raise no_cohort(cohort_id)
        return found

    async def code_of(cohort_id: int) -> str:
        return (await summary(cohort_id)).code

    async def answer(cohort_id: int) -> Response:
        """The cohort as it is now, after the action."""
        body = Cohort.model_validate(await summary(cohort_id), from_attributes=True)
        return JSONResponse(body.model_dump(mode="json"))

    @router.post("/pause", response_model=Cohort, summary="Pause a running cohort")
    async def pause_cohort(
        cohort_id: Annotated[int, Path(ge=1, le=MAX_ID)],
        key: ApiKeyRecord = keyed,
    ) -> Response:
        """No step runs until it is resumed; steps missed meanwhile then follow their
        late policy. 409 when the cohort is not running."""
        await _refusing(pause(cohort_id, _author(key)))
        return await answer(cohort_id)

    @router.post("/resume", response_model=Cohort, summary="Resume a paused cohort")
    async def resume_cohort(
        cohort_id: Annotated[int, Path(ge=1, le=MAX_ID)],
        key: ApiKeyRecord = keyed,
    ) -> Response:
        """409 when the cohort is not paused, or while the bot still lacks the rights it
        needs in the warm-up group (it says which)."""
        await _refusing(resume(cohort_id, _author(key)))
        return await answer(cohort_id)

    # What ops do to one step of the cohort.
    step = APIRouter(prefix="/steps/{step_key}")

    @step.post(
        "/retry",
        response_model=Retried,
        summary="Send a step again at the next tick",
    )
    async def retry_step(
        cohort_id: Annotated[int, Path(ge=1, le=MAX_ID)],
        step_key: Annotated[str, Path(min_length=1, max_length=96)],
        key: ApiKeyRecord = keyed,
    ) -> Response:
        """A step whose outcome is unknown, that failed or that was skipped; talk parts
        held behind it go on after it. 409 for a step already done, pending, or waiting
        behind another."""
        author = _author(key)
        code = await code_of(cohort_id)
        decided = await _refusing(retry(code, step_key, by=author.by, author=author))
        body = Retried(step=decided.key, resumed=decided.resumed)
        return JSONResponse(body.model_dump(mode="json"))

    router.include_router(step)

    @router.post(
        "/budget",
        response_model=BudgetOut,
        summary="Raise a cohort's reward budget",
        # A body that cannot even be read (not UTF-8, say) is refused by FastAPI before
        # it is parsed: 400, where JSON that is not a BudgetIn is a 422.
        responses=documented(400),
    )
    async def budget(
        cohort_id: Annotated[int, Path(ge=1, le=MAX_ID)],
        amount: Annotated[BudgetIn, Body()],
        key: ApiKeyRecord = keyed,
    ) -> Response:
        """Rewards owed past the budget are then paid in the order they were earned,
        while it lasts. 400 for a body that cannot be read as text."""
        code = await code_of(cohort_id)
        raised = await _refusing(raise_budget(code, amount.add, author=_author(key)))
        body = BudgetOut(
            currency=raised.cohort.currency,
            added_minor=raised.added_minor,
            budget_minor=raised.budget_minor,
            paid=len(raised.paid),
            paid_minor=sum(p.amount_minor for p in raised.paid),
            still_owed=raised.still_owed,
            still_owed_minor=raised.still_owed_minor,
        )
        return JSONResponse(body.model_dump(mode="json"))

    return router
