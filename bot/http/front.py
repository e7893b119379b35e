"""The HTTP app's front door: the high-volume routes answered directly, the rest by
FastAPI.

Platform events (``POST /api/v1/events``), tracked-link clicks (``GET|HEAD /r/{code}``)
and, in webhook mode, Telegram's updates (``POST /telegram/webhook``: a crowd's taps)
arrive by the thousand a second. Their handlers read the raw request and build their
own response, so FastAPI's layers (exception middlewares, the exit stack, routing past
the docs routes, dependency solving) would only add work to each request. Here they are
matched on method and path first; an error in a handler is still answered as problem
details (500) and logged, as FastAPI's middleware would. Everything else, and the
OpenAPI document that describes these routes too, is FastAPI's.

A route may also answer only what it can answer at once and pass the rest on
(``passes``): a cohort's funnel is answered from memory
(:class:`~funnels.ops.board.FiguresBoard`) for a live key and a cohort the board holds,
and by FastAPI's route of the same path otherwise (CSV, a bad key, an unknown cohort, a
board not ready), so both answer alike.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from bot.http.problems import problem

log = logging.getLogger("funnelbot.http")

Handler = Callable[[Request], Awaitable[Response | None]]


@dataclass(frozen=True, slots=True)
class FastRoute:
    """``path`` exactly, or with ``param`` set, ``path`` followed by one non-empty
    segment (``/r/`` + ``code``) and then ``suffix``, the segment given to the handler as
    that path parameter. With ``passes``, a method the route does not take, or a
    handler's None, goes on to FastAPI."""

    path: str
    methods: frozenset[str]
    handler: Handler
    param: str | None = None
    suffix: str = ""
    passes: bool = False

    def match(self, path: str) -> dict[str, str] | None:
        if self.param is None:
            return {} if path == self.path else None
        if not path.startswith(self.path) or not path.endswith(self.suffix):
            return None
        rest = path[len(self.path) : len(path) - len(self.suffix)]
        if not rest or "/" in rest:
            return None
        return {self.param: rest}


MAX_BODY_BYTES = 64 * 1024
"""The largest body FastAPI's routes take (an ops action, a dashboard form: a few
hundred bytes); routes that read larger bodies set their own limit and check it."""


class FrontDoor:
    """An ASGI app: :class:`FastRoute` s first, then the FastAPI app, whose requests'
    bodies are cut at ``max_body`` bytes (a 413 problem), but on the paths in
    ``own_limits``, which check their own."""

    def __init__(
        self,
        app: FastAPI,
        routes: list[FastRoute],
        *,
        max_body: int = MAX_BODY_BYTES,
        own_limits: frozenset[str] = frozenset(),
    ) -> None:
        self.fastapi = app
        self.routes = routes
        self.max_body = max_body
        self.own_limits = own_limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            for route in self.routes:
                params = route.match(path)
                if params is None:
                    continue
                if route.passes and scope["method"] not in route.methods:
                    break
                if scope["method"] not in route.methods:
                    allow = ", ".join(sorted(route.methods))
                    await problem(
                        405, "Method not allowed", f"{path} takes {allow}", headers={"Allow": allow}
                    )(scope, receive, send)
                    return
                scope["path_params"] = params
                response = await self._answer(route, Request(scope, receive))
                if response is None:
                    scope.pop("path_params", None)
                    break
                await response(scope, receive, send)
                return
            if scope["path"] not in self.own_limits:
                limited = self._limited(scope, receive)
                if limited is None:
                    detail = f"the limit is {self.max_body} bytes"
                    await problem(413, "Content Too Large", detail)(scope, receive, send)
                    return
                receive = limited
        await self.fastapi(scope, receive, send)

    def _limited(self, scope: Scope, receive: Receive) -> Receive | None:
        """``receive``, raising a 413 (which FastAPI answers as a problem) once the body
        passes the limit; None when its ``Content-Length`` says it will."""
        limit = self.max_body
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                return None
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, f"the limit is {limit} bytes")
            return message

        return receive_limited

    @staticmethod
    async def _answer(route: FastRoute, request: Request) -> Response | None:
        try:
            return await route.handler(request)
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            return problem(500, "Internal error", "the request failed; it is logged")
