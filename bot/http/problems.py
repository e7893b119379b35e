"""One error shape for the HTTP API: RFC 9457 problem details, for the routes' own
refusals (:class:`ApiProblem`), FastAPI's (unknown route, wrong method, a parameter that
does not validate) and failures alike."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

MEDIA_TYPE = "application/problem+json"

log = logging.getLogger("funnelbot.http")


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: object,
) -> JSONResponse:
    """``{"type": "about:blank", "title", "status", "detail", …extra}``."""
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra},
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=dict(headers) if headers else None,
    )


class ApiProblem(Exception):
    """Raised by a route to answer with a problem (nothing was changed)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: object,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.headers = headers
        self.extra = extra


PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def documented(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` for problem answers with these statuses."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}},
        }
        for status in statuses
    }


def _field(loc: tuple[int | str, ...]) -> str:
    """``query.limit``, ``path.cohort_id``: where the value was, and its name."""
    return ".".join(str(p) for p in loc) or "(request)"


def install(app: FastAPI) -> None:
    """Every error FastAPI answers becomes a problem."""

    @app.exception_handler(ApiProblem)
    async def _ours(_request: Request, exc: ApiProblem) -> Response:
        return problem(exc.status, exc.title, exc.detail, headers=exc.headers, **exc.extra)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        phrase = HTTPStatus(exc.status_code).phrase
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
        if exc.status_code == 404 and detail is None:
            detail = f"there is nothing at {request.url.path}"
        elif exc.status_code == 405 and detail is None:
            detail = f"{request.url.path} does not take {request.method}"
        return problem(exc.status_code, phrase, detail or phrase, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": _field(e["loc"]), "message": str(e["msg"]).removeprefix("Value error, ")}
            for e in exc.errors()[:20]
        ]
        first = errors[0] if errors else {"field": "(request)", "message": "invalid"}
        return problem(
            422, "Invalid request", f"{first['field']}: {first['message']}", errors=errors
        )

    @app.exception_handler(ConnectionError)
    @app.exception_handler(TimeoutError)
    async def _unavailable(request: Request, exc: Exception) -> Response:
        log.error("%s %s: the database failed: %s", request.method, request.url.path, exc)
        return problem(
            503,
            "Unavailable",
            "the database could not be reached; try again shortly",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> Response:
        # Lost or never made, the connection: try again. Anything else (a schema this
        # code does not know, say) is a failure like any other.
        if exc.connection_invalidated or exc.statement is None:
            return await _unavailable(request, exc)
        return await _failed(request, exc)

    @app.exception_handler(Exception)
    async def _failed(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return problem(500, "Internal error", "the request failed; it is logged")
