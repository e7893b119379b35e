"""Alembic on both databases: head -> base -> head works, and the models match the migrations.

Each test gets a database of its own (a SQLite file, or a throw-away PostgreSQL database
created on the test server), so downgrading never disturbs the shared test database.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url

from storage.db import create_engine
from storage.migrate import alembic_config, upgrade
from storage.models import Base

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TABLES = {
    "activity_days",
    "api_keys",
    "ops_actions",
    "regions",
    "users",
    "cohorts",
    "cohort_members",
    "member_activity",
    "step_runs",
    "envelopes",
    "envelope_shares",
    "task_progress",
    "task_unique_keys",
    "inbound_events",
    "ledger_entries",
    "invite_links",
    "personal_links",
    "telegram_updates",
    "proofs",
    "payouts",
    "tracked_links",
    "fan_locks",
    "funnel_days",
    "installation_secrets",
    "member_groups",
    "member_reminders",
}


async def _admin(url: str, statement: str) -> None:
    engine = create_engine(url, pool_pre_ping=False)
    try:
        async with asyncio.timeout(20), engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    base_url = os.environ.get("FUNNELBOT_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    name = (
        f"{make_url(base_url).database or 'test'}_migrations_{os.getpid()}_{secrets.token_hex(3)}"
    )
    try:
        asyncio.run(_admin(base_url, f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"cannot create a PostgreSQL database: {exc!r}", pytrace=False)
        pytest.skip(f"cannot create a PostgreSQL database: {exc!r}")
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database that no other test uses."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
    url: str = request.getfixturevalue("empty_pg_url")
    return url


def _inspect(url: str, work: Any) -> Any:
    async def run() -> Any:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _tables(url: str) -> set[str]:
    return _inspect(url, lambda c: set(inspect(c).get_table_names()))


def _revision(url: str) -> str | None:
    return _inspect(url, lambda c: MigrationContext.configure(c).get_current_revision())


def _differences(url: str) -> list[Any]:
    def compare(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    return _inspect(url, compare)


def test_upgrade_downgrade_upgrade(empty_url: str) -> None:
    head = ScriptDirectory.from_config(alembic_config(empty_url)).get_current_head()

    upgrade(empty_url)
    assert _tables(empty_url) - {"alembic_version"} == TABLES
    assert _revision(empty_url) == head

    command.downgrade(alembic_config(empty_url), "base")
    assert _tables(empty_url) - {"alembic_version"} == set()
    assert _revision(empty_url) is None

    upgrade(empty_url)
    assert _tables(empty_url) - {"alembic_version"} == TABLES
    assert _revision(empty_url) == head
    assert _differences(empty_url) == []


def test_models_match_the_migrations(empty_url: str) -> None:
    upgrade(empty_url)

    assert _differences(empty_url) == []
