"""Shared fixtures: real databases migrated to head, and a store over them.

- ``sqlite_url``: a fresh SQLite file per test, migrated to head.
- ``pg_url``: PostgreSQL at ``FUNNELBOT_TEST_POSTGRES_URL`` (default below). Each test
  session works in its own throw-away database (so concurrent runs on one server do not
  trample each other), migrated to head once; each test starts with every table emptied.
- ``db_url``: parametrized over both, so an integration test runs on SQLite and PostgreSQL.
- ``store``: a :class:`storage.uow.SqlStore` over ``db_url``.
- ``redis_url``: Redis at ``FUNNELBOT_TEST_REDIS_URL``, its database flushed per test.

An unreachable PostgreSQL or Redis skips the tests that need it, except under ``CI=true``,
where it fails them: CI never passes by silently skipping the database half of the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import create_engine
from storage.migrate import upgrade, upgrade_async
from storage.uow import SqlStore
from tests.support.availability import unavailable

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
CONNECT_TIMEOUT_SECONDS = 5.0


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that ask for a service directly get its marker, so `-m "not postgres"` works.
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "pg_url" in names:
            item.add_marker(pytest.mark.postgres)
        if "redis_url" in names:
            item.add_marker(pytest.mark.redis)


# --- SQLite -------------------------------------------------------------------------


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    """A new SQLite file for this test, migrated to head."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'funnelbot.db'}"
    await upgrade_async(url)
    return url


# --- PostgreSQL ---------------------------------------------------------------------


async def _pg_execute(url: str, *statements: str, autocommit: bool = False) -> list[str]:
    """Run statements on a short-lived connection; the first column of the last result."""
    engine = create_engine(url, pool_pre_ping=False)
    rows: list[str] = []
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS * 4), engine.connect() as conn:
            if autocommit:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
            for statement in statements:
                result = await conn.execute(text(statement))
                rows = [str(row[0]) for row in result] if result.returns_rows else []
            if not autocommit:
                await conn.commit()
    finally:
        await engine.dispose()
    return rows


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _drop_stale_databases(base_url: str, prefix: str) -> None:
    """Drop databases left by test sessions on this machine that were killed mid-run."""
    host = make_url(base_url).host
    if host not in (None, "", "localhost", "127.0.0.1", "::1"):
        return  # another machine's process ids mean nothing here
    names = asyncio.run(
        _pg_execute(
            base_url,
            f"SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%'",
        )
    )
    for name in names:
        pid = name[len(prefix) :].split("_")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            with contextlib.suppress(Exception):
                asyncio.run(
                    _pg_execute(
                        base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', autocommit=True
                    )
                )


@pytest.fixture(scope="session")
def _pg_session_url() -> Iterator[str]:
    """A database of this test session's own on the test server, migrated to head.

    Falls back to the configured database itself if the role may not create databases.
    """
    base_url = os.environ.get("FUNNELBOT_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    base = make_url(base_url)
    try:
        asyncio.run(_pg_execute(base_url, "SELECT 1"))
    except Exception as exc:
        unavailable(f"PostgreSQL not reachable at {_safe(base_url)}: {exc!r}")

    prefix = f"{base.database or 'test'}_pytest_"
    with contextlib.suppress(Exception):
        _drop_stale_databases(base_url, prefix)
    name = f"{prefix}{os.getpid()}_{secrets.token_hex(3)}"
    url = base.set(database=name).render_as_string(hide_password=False)
    created = True
    try:
        asyncio.run(_pg_execute(base_url, f'CREATE DATABASE "{name}"', autocommit=True))
    except Exception:
        created, url = False, base_url
    try:
        upgrade(url)
        yield url
    finally:
        if created:
            asyncio.run(
                _pg_execute(
                    base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', autocommit=True
                )
            )


@pytest.fixture
async def pg_url(_pg_session_url: str) -> str:
    """PostgreSQL at head with every table empty (identities restarted)."""
    url = _pg_session_url
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(
                text(
                    "SELECT tablename FROM pg_tables "
                    "WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
                )
            )
            tables = ", ".join(f'"{row[0]}"' for row in result)
            if tables:
                await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()
    return url


# --- Both ---------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database: the test runs once on SQLite and once on PostgreSQL."""
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return url


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def store(engine: AsyncEngine) -> SqlStore:
    """The repositories over ``db_url``; the engine is disposed after the test."""
    return SqlStore(engine)


# --- Redis --------------------------------------------------------------------------


@pytest.fixture
async def redis_url() -> str:
    """Redis at ``FUNNELBOT_TEST_REDIS_URL`` with its database flushed."""
    from redis.asyncio import Redis

    url = os.environ.get("FUNNELBOT_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    client = Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        await client.ping()
        await client.flushdb()
    except Exception as exc:
        unavailable(f"Redis not reachable at {url}: {exc!r}")
    finally:
        await client.aclose()
    return url
