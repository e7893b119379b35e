"""The HTTP API as the stats and ops tests reach it: the service's app in-process over
httpx, and the one check every problem answer must pass."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.http.app import create_app
from funnels.deps import Deps
from funnels.ops.board import FiguresBoard

PROBLEM = "application/problem+json"


@asynccontextmanager
async def api_client(
    engine: AsyncEngine, deps: Deps, key: str | None = None, board: FiguresBoard | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app ``funnelbot run`` builds, sending ``key`` as its Bearer key.
    The app's own failures come back as answers (500s), not as raised errors. With a
    figures ``board``, it is read again before each request (as if its second had just
    passed), so the answers come from it."""
    transport = httpx.ASGITransport(
        app=create_app(engine, deps=deps, board=board), raise_app_exceptions=False
    )
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    hooks: dict[str, list[Any]] = {}
    if board is not None:

        async def refresh(_: httpx.Request) -> None:
            await board.fill()
            await board.refresh()

        hooks["request"] = [refresh]
    async with httpx.AsyncClient(
        transport=transport, base_url="http://funnelbot", headers=headers, event_hooks=hooks
    ) as client:
        yield client


def problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with ``status``: its body, checked for the fields it must say."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body: dict[str, Any] = answer.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body
