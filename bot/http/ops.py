"""The ops routes (``Authorization: Bearer`` API keys): pause and resume a cohort. Each
action is recorded with the key that asked, and shows in
``GET /api/v1/cohorts/{id}/actions``; a refusal is a problem and changes nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse, Response

from bot.http.auth import api_key
from bot.http.problems import ApiProblem, documented
from bot.http.stats import API, MAX_ID, Cohort
from funnels.deps import Deps
from funnels.kernel.records import ApiKeyRecord
from funnels.kernel.refusals import Refused
from funnels.ops.actions import Author, PauseByOps, ResumeByOps
from funnels.ops.cohorts import CohortDetails

_REFUSALS = {
    "no_cohort": (404, "Not Found", "there is no cohort {id}"),
    "not_running": (409, "Conflict", "cohort {code} is {status}: only a running one can pause"),
    "not_paused": (409, "Conflict", "cohort {code} is {status}, not paused"),
    "still_missing": (
        409,
        "Conflict",
        "cohort {code} stays paused: the bot still lacks {missing} in its warm-up group",
    ),
}


def _problem(refused: Refused) -> ApiProblem:
    status, title, detail = _REFUSALS[refused.code]
    params = dict(refused.params)
    missing = params.get("missing")
    if isinstance(missing, tuple):
        params["missing"] = ", ".join(str(m) for m in missing)
    return ApiProblem(status, title, detail.format(**params))


def routes(deps: Deps) -> APIRouter:
    router = APIRouter(
        prefix=f"{API}/cohorts/{{cohort_id}}",
        tags=["ops"],
        responses=documented(401, 404, 409, 422),
    )
    # The request's key, as a default value: a local cannot be named in an annotation
    # (annotations are strings here, resolved in the module's namespace).
    keyed = Depends(api_key(deps))
    pause, resume, details = PauseByOps(deps), ResumeByOps(deps), CohortDetails(deps)

    async def answer(cohort_id: int) -> Response:
        found = await details(cohort_id)
        if found is None:  # (it was there a moment ago: cohorts are never deleted)
            raise ApiProblem(404, "Not Found", f"there is no cohort {cohort_id}")
        body = Cohort.model_validate(found, from_attributes=True)
        return JSONResponse(body.model_dump(mode="json"))

    @router.post("/pause", response_model=Cohort, summary="Pause a running cohort")
    async def pause_cohort(
        cohort_id: Annotated[int, Path(ge=1, le=MAX_ID)],
        key: ApiKeyRecord = keyed,
    ) -> Response:
        """No step runs until it is resumed; steps missed meanwhile then follow their
        late policy. 409 when the cohort is not running."""
        try:
            await pause(cohort_id, Author.of(key))
        except Refused as refused:
            raise _problem(refused) from None
        return await answer(cohort_id)

    @router.post("/resume", response_model=Cohort, summary="Resume a paused cohort")
    async def resume_cohort(
        cohort_id: Annotated[int, Path(ge=1, le=MAX_ID)],
        key: ApiKeyRecord = keyed,
    ) -> Response:
        """409 when the cohort is not paused, or while the bot still lacks the rights it
        needs in the warm-up group (it says which)."""
        try:
            await resume(cohort_id, Author.of(key))
        except Refused as refused:
            raise _problem(refused) from None
        return await answer(cohort_id)

    return router
