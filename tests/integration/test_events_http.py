"""``POST /api/v1/events`` over SQLite and PostgreSQL, signed as a platform signs with the
``standardwebhooks`` package: what is accepted, what is refused and why, and that a
refused request stores nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from bot.http.app import create_app
from bot.http.events import MAX_BODY_BYTES, PATH, EventApplier, EventIntake
from funnels.kernel.records import MemberRef
from funnels.ladder.events import CatchUpEvents
from tests.integration.test_events_db import DAY1, ledger, task_cohort
from tests.support.funnel_kit import Kit, events_t

BOTH = json.dumps(
    {
        "id": "e1",
        "type": "a.b",
        "occurred_at": "2026-03-02T10:00:00Z",
        "member": {"ref": "x", "telegram_user_id": 9},
    }
).encode()
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(body: bytes, *, secret: str = SECRET, at: datetime | None = None) -> dict[str, str]:
    msg_id = "msg_" + secrets.token_hex(8)
    # The signature's time is the sender's wall clock (as the receiver checks it).
    when = at or datetime.now(UTC)  # noqa: TID251
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode()),
        "content-type": "application/json",
    }


def event(who: MemberRef | None, event_id: str = "e1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": event_id,
        "type": "fan.locked",
        "occurred_at": DAY1.isoformat(),
        "member": {"telegram_user_id": who.telegram_id if who else 123},
        "data": {},
    }
    body.update(extra)
    return body


class Sender:
    def __init__(self, client: httpx.AsyncClient, intake: EventIntake) -> None:
        self.client = client
        self.intake = intake

    async def post(self, payload: Any, **sign_options: Any) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return await self.client.post(PATH, content=body, headers=sign(body, **sign_options))


@pytest.fixture
async def sender(kit: Kit) -> AsyncIterator[Sender]:
    intake = EventIntake(kit.deps, SECRET, EventApplier(kit.deps))
    app = create_app(kit.store.engine, None, intake)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield Sender(client, intake)


async def stored(kit: Kit) -> int:
    return await kit.count(events_t)


async def test_an_event_is_accepted_then_applied(kit: Kit, sender: Sender) -> None:
    _, [m] = await task_cohort(kit, 1)

    got = await sender.post([event(m, f"fan-{i}") for i in range(3)])

    assert got.status_code == 202
    assert got.json() == {"accepted": 3, "duplicates": 0}
    assert await sender.intake.applier.apply_pending() == 3
    assert len(await ledger(kit)) == 1  # the 3-fan task is done and paid


async def test_data_is_stored_as_sent(kit: Kit, sender: Sender) -> None:
    """Words that look like non-numbers inside strings are data; non-ASCII stays as is."""
    _, [m] = await task_cohort(kit, 1)
    data = {"note": "NaN Infinity", "name": "小店 – tienda", "n": [1, 2.5, None, True]}

    got = await sender.post(event(m, "data-1", data=data))

    assert got.status_code == 202
    async with kit.store.engine.connect() as conn:
        kept = (await conn.execute(select(events_t.c.data))).scalar_one()
    assert kept == data


async def test_a_repeat_is_acknowledged_and_counted_once(kit: Kit, sender: Sender) -> None:
    _, [m] = await task_cohort(kit, 1)
    await sender.post(event(m, "same"))

    again = await sender.post([event(m, "same"), event(m, "new"), event(m, "new")])

    assert again.status_code == 202
    assert again.json() == {"accepted": 1, "duplicates": 2}
    assert await stored(kit) == 2


async def test_an_event_for_an_unknown_member_is_kept(kit: Kit, sender: Sender) -> None:
    await task_cohort(kit, 1)

    got = await sender.post(event(None, "who", member={"ref": "NOBODY1"}))

    assert got.status_code == 202 and got.json()["accepted"] == 1
    await sender.intake.applier.apply_pending()
    assert await kit.count(events_t, events_t.c.state == "waiting") == 1


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "Missing required headers"),
        ({"webhook-signature": "v1,AAAA"}, "No matching signature"),
        ({"webhook-signature": "garbage"}, "unreadable"),
        ({"webhook-signature": "v1,%%%"}, "No matching signature"),
        ({"webhook-timestamp": "soon"}, "Invalid Signature Headers"),
    ],
)
async def test_bad_signatures_store_nothing(
    kit: Kit, sender: Sender, headers: dict[str, str], why: str
) -> None:
    body = json.dumps(event(None)).encode()
    signed = sign(body)
    if not headers:
        signed = {"content-type": "application/json"}
    signed.update(headers)

    got = await sender.client.post(PATH, content=body, headers=signed)

    assert got.status_code == 401
    assert got.headers["content-type"] == "application/problem+json"
    assert why in got.json()["detail"]
    assert await stored(kit) == 0


async def test_another_secret_or_a_changed_body_is_refused(kit: Kit, sender: Sender) -> None:
    other = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    assert (await sender.post(event(None), secret=other)).status_code == 401
    body = json.dumps(event(None)).encode()
    headers = sign(body)
    tampered = body.replace(b"fan.locked", b"order.paid")
    assert (await sender.client.post(PATH, content=tampered, headers=headers)).status_code == 401
    assert await stored(kit) == 0


@pytest.mark.parametrize("skew", [timedelta(minutes=-6), timedelta(minutes=6)])
async def test_stale_or_early_signatures_are_refused(
    kit: Kit, sender: Sender, skew: timedelta
) -> None:
    got = await sender.post(event(None), at=datetime.now(UTC) + skew)  # noqa: TID251
    assert got.status_code == 401
    assert "timestamp too" in got.json()["detail"]
    assert await stored(kit) == 0


async def test_a_body_over_the_limit_is_refused_before_it_is_read(kit: Kit, sender: Sender) -> None:
    declared = await sender.client.post(
        PATH, content=b"[]", headers={"content-length": str(MAX_BODY_BYTES + 1)}
    )
    assert declared.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    streamed = await sender.client.post(PATH, content=chunks())
    assert streamed.status_code == 413
    assert await stored(kit) == 0


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{not json", 400, "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (b"\xff\xfe", 401, "unreadable"),
        (b"42", 422, "event object or a list"),
        (b"[]", 422, "(body)"),
        (json.dumps([event(None, f"e{i}") for i in range(1001)]).encode(), 422, "(body)"),
        (json.dumps(event(None, member=None)).encode(), 422, "member"),
        (json.dumps(event(None, type="Order Paid")).encode(), 422, "type"),
        (json.dumps(event(None, id="")).encode(), 422, "id"),
        (json.dumps(event(None, id="has space")).encode(), 422, "id"),
        (json.dumps(event(None, occurred_at="2026-03-02T10:00:00")).encode(), 422, "occurred_at"),
        (json.dumps(event(None, occurred_at="yesterday")).encode(), 422, "occurred_at"),
        (json.dumps(event(None, occurred_at="2100-01-01T00:00:00Z")).encode(), 422, "future"),
        (json.dumps(event(None, member={"telegram_user_id": "12"})).encode(), 422, "member"),
        (json.dumps(event(None, member={"telegram_user_id": True})).encode(), 422, "member"),
        (json.dumps(event(None, member={"telegram_user_id": 2**63})).encode(), 422, "member"),
        (BOTH, 422, "member."),
        (json.dumps(event(None, data={"x": "y" * 5000})).encode(), 422, "data"),
        (
            json.dumps(event(None, data={"x": [1, float("nan")]})).encode(),
            422,
            "data: data holds NaN",
        ),
        (json.dumps(event(None, data={"x": float("-inf")})).encode(), 422, "not JSON numbers"),
        (b"  \n" + json.dumps(event(None, type="x")).encode(), 422, "type"),
        (b'{"id": "a", "type": "order.paid"} trailing', 400, "not JSON"),
        (b"", 400, "not JSON"),
        (b"null", 422, "event object or a list"),
        (json.dumps(event(None, colour="red")).encode(), 422, "colour"),
        (json.dumps([event(None, "a"), event(None, "b", type="x")]).encode(), 422, "1.type"),
    ],
)
async def test_malformed_bodies_name_the_problem(
    kit: Kit, sender: Sender, body: bytes, status: int, says: str
) -> None:
    if body == b"\xff\xfe":  # not UTF-8: the signature cannot be checked over it
        headers = sign(b"x")
        got = await sender.client.post(PATH, content=body, headers=headers)
    else:
        got = await sender.post(body)

    assert got.status_code == status, got.text
    assert got.headers["content-type"] == "application/problem+json"
    problem = got.json()
    assert problem["status"] == status
    assert says in problem["detail"]
    assert await stored(kit) == 0


async def test_off_without_a_secret(kit: Kit) -> None:
    app = create_app(kit.store.engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        got = await client.post(PATH, json=event(None))
    assert got.status_code == 503
    assert "FUNNELBOT_EVENTS_SECRET" in got.json()["detail"]


async def test_events_not_stored_are_not_acknowledged(
    kit: Kit, sender: Sender, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object) -> list[object]:
        raise ConnectionError("database went away")

    monkeypatch.setattr(sender.intake, "_store", broken)
    kit.clock.set(DAY1 + timedelta(hours=1))

    got = await sender.post(event(None))

    assert got.status_code == 503
    assert got.headers["retry-after"] == "5"
    assert await stored(kit) == 0


async def test_the_route_is_documented_with_its_schema(kit: Kit, sender: Sender) -> None:
    document = (await sender.client.get("/openapi.json")).json()
    post = document["paths"][PATH]["post"]
    assert "202" in post["responses"] and "401" in post["responses"]
    assert "EventIn" in document["components"]["schemas"]
    assert {p["name"] for p in post["parameters"]} >= {"webhook-id", "webhook-signature"}


async def test_the_applier_runs_in_the_background_and_stops_cleanly(
    kit: Kit, sender: Sender
) -> None:
    """Started, it applies what is posted; stopped mid-flow, what it had not applied is
    pending (never half applied), and the next catch-up applies it."""
    _, members = await task_cohort(kit, 3)
    sender.intake.applier.start()
    first = await sender.post([event(members[0], f"a{i}") for i in range(3)])
    assert first.status_code == 202

    async def applied() -> int:
        return await kit.count(events_t, events_t.c.state == "handled")

    for _ in range(200):
        if await applied() == 3:
            break
        await asyncio.sleep(0.02)
    assert await applied() == 3

    for i in range(20):
        await sender.post([event(members[i % 3], f"b{i}-{j}") for j in range(25)])
    await sender.intake.applier.stop()

    pending = await kit.count(events_t, events_t.c.state == "pending")
    assert pending + await applied() == 503
    await CatchUpEvents(kit.deps)()
    assert await applied() == 503
