"""``/readyz`` over a real database and a real Redis: ready when everything it needs
answers, and otherwise a 503 that names which part failed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from bot.http import health
from bot.http.app import create_app
from bot.http.health import Check
from storage.db import create_engine
from storage.uow import SqlStore


async def _ready(engine: object, checks: dict[str, Check] | None = None) -> httpx.Response:
    app = create_app(engine, checks=checks)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://funnelbot") as client:
        return await client.get("/readyz")


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_ready_when_the_database_and_redis_answer(store: SqlStore, redis: Redis) -> None:
    answer = await _ready(store.engine, {"redis": redis.ping})
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
    alone = await _ready(store.engine)
    assert alone.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_a_redis_out_of_reach_is_named(store: SqlStore) -> None:
    gone = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        answer = await _ready(store.engine, {"redis": gone.ping})
    finally:
        await gone.aclose()
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] != "ok" and body["reason"].startswith("redis: ")


async def test_a_database_out_of_reach_is_named(tmp_path: Path, redis: Redis) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'no-such-folder' / 'db.sqlite'}")
    try:
        answer = await _ready(engine, {"redis": redis.ping})
    finally:
        await engine.dispose()
    assert answer.status_code == 503
    body = answer.json()
    assert body["checks"]["redis"] == "ok"
    assert body["reason"].startswith("database: ") and "redis" not in body["reason"]


async def test_a_check_that_hangs_fails_within_its_time(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "CHECK_TIMEOUT", 0.2)

    async def hangs() -> None:
        await asyncio.sleep(10)

    answer = await _ready(store.engine, {"redis": hangs})
    assert answer.status_code == 503
    assert answer.json()["checks"]["redis"] == "no answer within 0.2 s"
