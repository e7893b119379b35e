"""Fixtures of the engine tests; the databases come from ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.telegram.offline import RecordingMessenger
from funnels.deps import Deps
from funnels.kernel.clock import ManualClock
from funnels.ops.keys import CreateApiKey
from storage.uow import SqlStore
from tests.support.api import api_client
from tests.support.funnel_kit import Kit, load, warmup_at


@pytest.fixture
def kit(store: SqlStore) -> Kit:
    """The mini script over ``store`` (SQLite and PostgreSQL), at 08:00 on warm-up day 1."""
    clock = ManualClock(warmup_at(1, "08:00"))
    messenger = RecordingMessenger()
    return Kit(store, clock, messenger, Deps(store, messenger, clock), load())


@pytest.fixture
def cli(kit: Kit, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Kit:
    """The kit, with ``funnelbot`` commands pointed at its database."""
    monkeypatch.setenv("FUNNELBOT_DATABASE_URL", db_url)
    return kit


@pytest.fixture
async def api(kit: Kit) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API over the kit's store, with the key of an operator, ``ops-sea``."""
    _, key = await CreateApiKey(kit.deps)("ops-sea")
    async with api_client(kit.store.engine, kit.deps, key) as client:
        yield client
