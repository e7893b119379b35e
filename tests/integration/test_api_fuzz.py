"""The HTTP API against its own OpenAPI document, fuzzed with schemathesis: no request
gets a 500, every answer has a status the document lists for its route, and every body
matches the schema given for that status (and media type).

The app is the one ``funnelbot run`` serves (:func:`bot.http.app.create_app`), over a
SQLite database seeded with a cohort about to start and a short simulation (two cohorts
with their steps, envelopes, tasks and rewards), with a real API key, so that the stats
and ops routes answer with data (and pause and resume a cohort), not only with 401.
Schemathesis also sends requests without the key, or with a wrong one, and requests
that break the schema (which must be refused with a 4xx).

``POST /api/v1/events`` is fuzzed too. Its signature covers the raw bytes of the body,
which schemathesis cannot compute, so a request that carries the three signature headers
has them replaced by a valid signature of its body on the way in (:class:`Signing`), as
the platform would sign it: the body's checks (JSON, the event's fields, 1 to 1,000
events) are what is fuzzed there. Requests that leave a header out keep the 401 they
get; bad signatures are ``test_events_http``'s.

Left out: schemathesis's check that every request the schema allows is accepted
(``positive_data_acceptance``). The API checks more than JSON Schema can say (a cursor
this API gave, an ISO week that exists, an event not in the future, an amount above
zero), and answers those with a documented 422 (400 for a cursor) naming the field.

Bounded and reproducible: a fixed number of examples per route, derandomized, no
example database.
"""

from __future__ import annotations

import asyncio
import base64
import math
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import AuthContext, Case
from schemathesis.checks import positive_data_acceptance
from standardwebhooks.webhooks import Webhook
from starlette.types import Message, Receive, Scope, Send

from bot.composition import build_deps
from bot.http.app import create_app
from bot.http.events import PATH as EVENTS, EventApplier, EventIntake
from bot.simulation import Simulation, SimulationOptions
from funnels.cohorts.launch import StartCohort
from funnels.ops.board import FiguresBoard
from funnels.ops.keys import CreateApiKey
from funnels.scripts.library import DEFAULT_SCRIPT, script_path
from funnels.scripts.loader import load_script
from storage.db import create_engine
from storage.migrate import upgrade
from storage.uow import SqlStore

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
SIGNATURE_HEADERS = (b"webhook-id", b"webhook-timestamp", b"webhook-signature")
EXAMPLES = 40
"""Generated requests per route (and per phase): about 20 s for the whole API."""


def _document() -> dict[str, Any]:
    """The app's OpenAPI document (making it touches no database)."""
    engine = create_engine("sqlite+aiosqlite://")
    deps = build_deps(SqlStore(engine))
    app = create_app(engine, intake=EventIntake(deps, SECRET, EventApplier(deps)), deps=deps)
    return app.fastapi.openapi()


class Served:
    """The app the cases go to, and its API key, once the fixture has made them (the
    schema is loaded when the module is, and needs an ASGI app then)."""

    app: Any = None
    key = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


SERVED = Served()
# Loaded here, not from a fixture: schemathesis's fixture loader (``from_fixture``) sets
# an attribute pytest 9 no longer has.
schema = schemathesis.openapi.from_dict(_document())
schema.app = SERVED


@schema.auth()
class ApiKey:
    """The key, sent as the stats and ops routes ask (schemathesis leaves it out, or
    sends a wrong one, in the cases that check what happens then)."""

    def get(self, case: Case, ctx: AuthContext) -> str:
        return SERVED.key

    def set(self, case: Case, data: str, ctx: AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_to_its_openapi(case: Case, key: str) -> None:
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


class Signing:
    """An ASGI wrapper: a request to the events route that carries the three signature
    headers gets them replaced by a valid signature of its body."""

    def __init__(self, app: Any, secret: str) -> None:
        self.app = app
        self.webhook = Webhook(secret)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", ())) if scope["type"] == "http" else {}
        if scope.get("path") != EVENTS or not all(h in headers for h in SIGNATURE_HEADERS):
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        signed = [(k, v) for k, v in scope["headers"] if k not in SIGNATURE_HEADERS]
        signed += [(k.encode(), v.encode()) for k, v in self._sign(body).items()]
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, "headers": signed}, replay, send)

    def _sign(self, body: bytes) -> dict[str, str]:
        msg_id = "msg_" + secrets.token_hex(8)
        when = datetime.now(UTC)  # noqa: TID251  (the sender's clock, as the receiver checks it)
        try:
            text = body.decode()
        except UnicodeDecodeError:
            text = body.decode("latin-1")  # signed as the route cannot read it: a 401
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": self.webhook.sign(msg_id, when, text),
        }


async def _seed(url: str) -> str:
    """A cohort starting tomorrow (id 1: running, so pausing it is allowed), two simulated
    cohorts run to their end, and an API key; the key."""
    loaded = load_script(script_path(DEFAULT_SCRIPT))
    engine = create_engine(url)
    try:
        deps = build_deps(SqlStore(engine))
        tomorrow = deps.clock.now().date() + timedelta(days=1)
        await StartCohort(deps)(loaded, start=tomorrow, code="FUZZ1", warmup_chat_id=-1)
        options = SimulationOptions(cohorts=2, members=12, regions=2, seed=5, database_url=url)
        await Simulation(loaded, options).run()
        _, key = await CreateApiKey(deps)("fuzz")
    finally:
        await engine.dispose()
    return key


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app over a seeded SQLite database, served to the cases; an API key for it."""
    url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('fuzz')) / 'funnelbot.db'}"
    upgrade(url)
    key = asyncio.run(_seed(url))
    # The app's engine connects in schemathesis's own event loop, at the first request.
    engine = create_engine(url)
    deps = build_deps(SqlStore(engine))
    intake = EventIntake(deps, SECRET, EventApplier(deps))
    # With the figures board the service keeps (filled once and never stale here), so
    # the front door's funnel route is fuzzed too.
    board = FiguresBoard(deps, stale_after=math.inf)

    async def fill() -> None:
        await board.fill()
        await engine.dispose()

    asyncio.run(fill())
    SERVED.app = Signing(create_app(engine, intake=intake, deps=deps, board=board), SECRET)
    SERVED.key = key
    try:
        yield key
    finally:
        SERVED.app, SERVED.key = None, ""
        asyncio.run(engine.dispose())


async def test_readiness_without_a_database_answers_as_documented(tmp_path: Path) -> None:
    # The one documented status the fuzzed app never gives: its database is always there.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'no-such-folder' / 'db.sqlite'}")
    try:
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://funnelbot") as client:
            answer = await client.get("/readyz")
    finally:
        await engine.dispose()
    assert answer.status_code == 503
    assert answer.json()["status"] == "unavailable"
    schema["/readyz"]["GET"].validate_response(answer)
