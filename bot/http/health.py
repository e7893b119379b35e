"""``/healthz`` (the process answers), ``/readyz`` (it can reach what it needs: its
database, and Redis where several processes share their limits through it), saying
which one failed, and ``/metrics`` (Prometheus's text format)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.metrics import REGISTRY

Check = Callable[[], Awaitable[object]]
"""Something ``/readyz`` must reach: it raises when it cannot."""
CHECK_TIMEOUT = 3.0
"""Seconds a check may take before it counts as failed (a load balancer's probe waits
about as long)."""


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    reason: str | None = None
    """Why not, when unavailable: which check failed and its error, cut short."""
    checks: dict[str, str] = Field(
        default_factory=dict,
        description='Each check (`database`, and `redis` when it is set) and "ok" or its error.',
    )


async def _run(check: Check) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g} s"
    except Exception as exc:  # any failure of the dependency means not ready
        return (str(exc) or type(exc).__name__)[:200]
    return "ok"


def routes(engine: AsyncEngine, checks: Mapping[str, Check] | None = None) -> APIRouter:
    """``checks``: what besides the database ``/readyz`` must reach, by name."""
    router = APIRouter()

    async def database() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    everything: dict[str, Check] = {"database": database, **(checks or {})}

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus metrics (``bot/metrics.py``), in its text format."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @router.get("/healthz", response_model=Health)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        response_model=Readiness,
        responses={
            503: {"model": Readiness, "description": "the database or Redis cannot be reached"}
        },
    )
    async def readyz() -> JSONResponse:
        """Ready when every check passes; otherwise 503 naming what failed."""
        results = await asyncio.gather(*(_run(c) for c in everything.values()))
        found = dict(zip(everything, results, strict=True))
        failed = [f"{name}: {outcome}" for name, outcome in found.items() if outcome != "ok"]
        if failed:
            body = {"status": "unavailable", "reason": "; ".join(failed), "checks": found}
            return JSONResponse(body, 503)
        return JSONResponse({"status": "ready", "checks": found})

    return router
