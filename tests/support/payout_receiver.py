"""A platform's payout endpoint, for tests: a real HTTP server on 127.0.0.1 (aiohttp, a
free port) that checks each request's Standard Webhooks signature with the
``standardwebhooks`` package, as a receiver would, and answers as told.

``answers`` is a queue of what to do with the next requests (an HTTP status, or
``"hang"`` to answer too late); when it is empty, ``then`` is used (200 by default).
``received`` lists every verified request as (webhook-id, parsed body); ``bad_signatures``
counts requests whose signature did not verify (they get 401).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from tests.support.threads import served_in_thread

Answer = int | str


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass
class Receiver:
    secret: str
    answers: list[Answer] = field(default_factory=list)
    then: Answer = 200
    hang_seconds: float = 2.0
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)
    """The webhook-id of every request, verified or not, in arrival order."""
    bad_signatures: int = 0
    in_flight: int = 0
    most_in_flight: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.attempts.append(request.headers.get("webhook-id", ""))
        try:
            event = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        answer = self.answers.pop(0) if self.answers else self.then
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if answer == "hang":
                await asyncio.sleep(self.hang_seconds)
                return web.Response(status=200, text="too late")
            if isinstance(answer, str) and answer.startswith("sleep"):
                await asyncio.sleep(float(answer.removeprefix("sleep")))
                answer = 200
            assert isinstance(answer, int)
            if 200 <= answer < 300:
                self.received.append((request.headers["webhook-id"], event))
            return web.Response(status=answer, text=json.dumps({"status": answer}))
        finally:
            self.in_flight -= 1

    def ids(self) -> list[str]:
        return [webhook_id for webhook_id, _ in self.received]


@asynccontextmanager
async def payout_receiver(secret: str | None = None) -> AsyncIterator[Receiver]:
    receiver = Receiver(secret or new_secret())
    app = web.Application()
    app.router.add_post("/payouts", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    receiver.url = f"http://127.0.0.1:{port}/payouts"
    try:
        yield receiver
    finally:
        await runner.cleanup()


def receiving() -> AbstractContextManager[Receiver]:
    """The payout receiver on a loop of its own, in a thread (for synchronous tests, and
    beside processes that block their test's loop)."""
    server = payout_receiver()
    return served_in_thread(server.__aenter__, lambda: server.__aexit__(None, None, None))
