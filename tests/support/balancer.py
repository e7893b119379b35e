"""A round-robin load balancer for tests: what stands in front of several
``funnelbot run`` processes in webhook mode. A real HTTP server on 127.0.0.1 (aiohttp,
a free port, its own thread) that passes each request to the next backend in turn,
headers and body as they came, and the backend's answer back (a method call in a
webhook's reply included). ``routed`` records which backend got each request."""

from __future__ import annotations

import itertools
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from tests.support.threads import served_in_thread

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


@dataclass
class Routed:
    backend: int
    path: str
    status: int
    body: bytes


@dataclass
class Balancer:
    backends: list[str]
    """Base URLs, such as ``http://127.0.0.1:8123``."""
    routed: list[Routed] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None
    _client: aiohttp.ClientSession | None = None

    def __post_init__(self) -> None:
        self._turns = itertools.cycle(range(len(self.backends)))

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        assert self._client is not None
        tried = 0
        while True:
            backend = next(self._turns)
            try:
                async with self._client.request(
                    request.method,
                    self.backends[backend] + request.path_qs,
                    data=body,
                    headers=headers,
                ) as answer:
                    reply = await answer.read()
                    self.routed.append(Routed(backend, request.path, answer.status, body))
                    kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
                    return web.Response(status=answer.status, body=reply, headers=kept)
            except aiohttp.ClientError:  # a backend down: the next one, as a balancer does
                tried += 1
                if tried >= len(self.backends):
                    return web.Response(status=502, text="no backend answered")

    async def _start(self) -> None:
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        app = web.Application(client_max_size=1 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()


def balancing(backends: list[str]) -> AbstractContextManager[Balancer]:
    """A balancer over ``backends`` (base URLs), serving in a thread while the block runs."""
    balancer = Balancer(backends)

    async def start() -> Balancer:
        await balancer._start()
        return balancer

    return served_in_thread(start, balancer._stop)
