"""``funnelbot region add`` and ``funnelbot leader add`` on a real SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.composition import build_deps
from funnels.kernel.actor import Actor
from funnels.kernel.stages import Role
from funnels.people.leaders import MayLead
from storage.db import create_engine
from storage.uow import SqlStore

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
                user = await tx.users.by_telegram(telegram_id)
                assert user is not None
                region_id = await tx.users.region(user.user_id)
                region = await tx.regions.get(region_id) if region_id else None
                return await tx.users.role(user.user_id), region.code if region else None
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
    for tz in ("Europe", "E" * 5000, "../etc/passwd"):  # a folder, too long, a path
        zone = runner.invoke(app, ["region", "add", "XX", "--name", "x", "--tz", tz])
        assert zone.exit_code == 1 and "not an IANA time zone" in zone.stderr
        assert "Traceback" not in zone.output
    for code in ("A" * 33, "S E A", "SÉA", "", "SEA/1"):
        bad = runner.invoke(app, ["region", "add", code, "--name", "x", "--tz", "Asia/Tokyo"])
        assert bad.exit_code == 1, bad.output
        assert bad.stderr.startswith("error: ") and "region code" in bad.stderr
    for name in ("n" * 129, "", "tab\there"):
        bad = runner.invoke(app, ["region", "add", "NN", "--name", name, "--tz", "Asia/Tokyo"])
        assert bad.exit_code == 1 and "region name" in bad.stderr
    unknown = runner.invoke(app, ["leader", "add", "7", "--region", "NOPE"])
    assert unknown.exit_code == 1 and "no region NOPE" in unknown.stderr and "EU" in unknown.stderr
    bad_id = runner.invoke(app, ["leader", "add", "0", "--region", "EU"])
    assert bad_id.exit_code == 1


@pytest.mark.parametrize(
    "telegram_id", ["abc", "²", "٣٣", "３３", "0", "4.2", str(2**53), str(2**76), "9" * 5000]
)
def test_a_bad_telegram_id_is_one_line_and_grants_nobody(db: str, telegram_id: str) -> None:
    runner.invoke(app, ["region", "add", "EU", "--name", "x", "--tz", "Europe/Madrid"])
    result = runner.invoke(app, ["leader", "add", telegram_id, "--region", "EU"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "is not a Telegram user id" in line
    assert f"from 1 to {2**53 - 1}" in line
    assert len(line) < 200  # a huge id is not echoed in full


def test_a_negative_id_is_a_usage_error(db: str) -> None:
    result = runner.invoke(app, ["leader", "add", "-5", "--region", "EU"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_the_largest_telegram_id_is_fine(db: str) -> None:
    runner.invoke(app, ["region", "add", "EU", "--name", "x", "--tz", "Europe/Madrid"])
    result = runner.invoke(app, ["leader", "add", str(2**53 - 1), "--region", "EU"])
    assert result.exit_code == 0, result.output
    assert _leader_region(db, 2**53 - 1) == (Role.LEADER, "EU")


def test_a_weekly_target_out_of_range_is_a_usage_error(db: str) -> None:
    for target in ("1001", "99999999999999999999", "-1"):
        result = runner.invoke(
            app,
            [
                "region",
                "add",
                "EU",
                "--name",
                "x",
                "--tz",
                "Europe/Madrid",
                "--weekly-target",
                target,
            ],
        )
        assert result.exit_code == 2 and "Traceback" not in result.output, target


def _may_lead(url: str, telegram_id: int) -> bool:
    async def ask() -> bool:
        engine = create_engine(url)
        try:
            deps = build_deps(SqlStore(engine))
            return await MayLead(deps)(Actor(telegram_id, "x"), is_admin=False)
        finally:
            await engine.dispose()

    return asyncio.run(ask())


def test_a_removed_leader_cannot_launch_from_their_next_command(db: str) -> None:
    runner.invoke(app, ["region", "add", "SEA", "--name", "SE Asia", "--tz", "Asia/Singapore"])
    assert runner.invoke(app, ["leader", "add", "4242", "--region", "SEA"]).exit_code == 0
    assert _may_lead(db, 4242)
    removed = runner.invoke(app, ["leader", "remove", "4242"])
    assert removed.exit_code == 0, removed.output
    assert "user 4242 is no longer a leader (now: member)" in removed.stdout
    assert _leader_region(db, 4242) == (Role.MEMBER, None)
    assert not _may_lead(db, 4242)
    again = runner.invoke(app, ["leader", "remove", "4242"])
    assert again.exit_code == 1 and "user 4242 is not a leader (nothing changed)" in again.stderr
    nobody = runner.invoke(app, ["leader", "remove", "999"])
    assert nobody.exit_code == 1 and "not a leader" in nobody.stderr
    bad = runner.invoke(app, ["leader", "remove", "12x"])
    assert bad.exit_code == 1 and "not a Telegram user id" in bad.stderr
