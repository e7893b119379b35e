"""``funnelbot region add`` and ``funnelbot leader add`` on a real SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from funnels.stages import Role
from storage.db import create_engine
from storage.repositories import SqlStore

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/admin.db"
    monkeypatch.setenv("FUNNELBOT_DATABASE_URL", url)
    return url


def _leader_region(url: str, telegram_id: int) -> tuple[int, str | None]:
    async def read() -> tuple[int, str | None]:
        engine = create_engine(url)
        try:
            async with SqlStore(engine).transaction() as tx:
                user = await tx.members.by_telegram(telegram_id)
                assert user is not None
                region_id = await tx.members.region(user.user_id)
                region = await tx.regions.get(region_id) if region_id else None
                return await tx.members.role(user.user_id), region.code if region else None
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_a_region_then_a_leader_in_it(db: str) -> None:
    added = runner.invoke(
        app, ["region", "add", "sea", "--name", "SE Asia", "--tz", "Asia/Singapore"]
    )
    assert added.exit_code == 0, added.output
    assert "SEA" in added.stdout
    granted = runner.invoke(app, ["leader", "add", "4242", "--region", "SEA"])
    assert granted.exit_code == 0, granted.output
    assert _leader_region(db, 4242) == (Role.LEADER, "SEA")


def test_bad_input_is_refused_clearly_and_changes_nothing(db: str) -> None:
    assert (
        runner.invoke(
            app, ["region", "add", "EU", "--name", "x", "--tz", "Europe/Madrid"]
        ).exit_code
        == 0
    )
    again = runner.invoke(app, ["region", "add", "eu", "--name", "y", "--tz", "Europe/Madrid"])
    assert again.exit_code == 1 and "exists already" in again.stderr
    zone = runner.invoke(app, ["region", "add", "XX", "--name", "x", "--tz", "Mars/Base"])
    assert zone.exit_code == 1 and "not an IANA time zone" in zone.stderr
    unknown = runner.invoke(app, ["leader", "add", "7", "--region", "NOPE"])
    assert unknown.exit_code == 1 and "no region NOPE" in unknown.stderr and "EU" in unknown.stderr
    bad_id = runner.invoke(app, ["leader", "add", "0", "--region", "EU"])
    assert bad_id.exit_code == 1
