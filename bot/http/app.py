"""The FastAPI application: one routes module per area, put together here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.http import (
    dashboard,
    events,
    health,
    kpis,
    links as tracked_links,
    ops,
    problems,
    stats,
    webhook,
)
from bot.http.events import EventIntake
from bot.http.front import FrontDoor
from bot.http.links import LinkRedirects
from bot.http.rates import KeyRates, SharedKeyRates
from bot.http.webhook import TelegramWebhook
from funnels.deps import Deps
from funnels.ops.board import FiguresBoard

if TYPE_CHECKING:
    from redis.asyncio import Redis


def create_app(
    engine: AsyncEngine,
    telegram: TelegramWebhook | None = None,
    intake: EventIntake | None = None,
    *,
    links: LinkRedirects | None = None,
    deps: Deps | None = None,
    public_url: str | None = None,
    board: FiguresBoard | None = None,
    checks: Mapping[str, health.Check] | None = None,
    api_rate: float = 0.0,
    redis: Redis | None = None,
) -> FrontDoor:
    """The service's ASGI app: FastAPI behind a front door that answers the high-volume
    routes (events, tracked links) directly. The stats and ops routes and the dashboard
    need ``deps`` (their use cases and the API keys); ``public_url`` (the address people
    reach the service at) makes the dashboard's cookies ``Secure`` when it is https; a
    figures ``board`` (started by the caller) answers the KPI routes from memory;
    ``checks`` are what ``/readyz`` must reach besides the database (Redis);
    ``api_rate``: requests a second each API key may make (0: no limit), counted in
    ``redis`` when given (shared by the processes), else in this process."""
    # (/docs is the dashboard's: Swagger UI from the app's own files. FastAPI's pages load
    # theirs from a CDN.)
    app = FastAPI(title="funnelbot", version="0.1.0", docs_url=None, redoc_url=None)
    problems.install(app)
    app.include_router(health.routes(engine, checks))
    app.include_router(webhook.routes(telegram))
    app.include_router(events.routes(intake))
    rates: KeyRates | None = None
    if api_rate > 0:
        rates = SharedKeyRates(redis, api_rate) if redis is not None else KeyRates(api_rate)
    if deps is not None:
        app.include_router(stats.routes(deps, rates))
        app.include_router(kpis.routes(deps, board, rates))
        app.include_router(ops.routes(deps, rates))
        app.include_router(dashboard.routes(deps, public_url=public_url))
    _, schemas = events.request_schema()
    make_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        # The events body is read raw (its signature covers the bytes), so the schemas
        # it refers to are added to the components by hand.
        document = make_openapi()
        document.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
    fast = [events.fast_route(intake)]
    if telegram is not None:
        fast.append(webhook.fast_route(telegram))
    if links is not None:
        fast.append(tracked_links.fast_route(links))
    if deps is not None and board is not None:
        fast += [
            kpis.fast_funnel_route(board, rates),
            kpis.fast_regions_route(board, deps, rates),
        ]
    # The webhook reads Telegram's updates (up to 1 MiB) with its own limit.
    return FrontDoor(app, fast, own_limits=frozenset({webhook.PATH}))
