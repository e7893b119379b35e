"""``funnelbot demo``: a simulated month into the configured database, seen through the
stats API; refused where real cohorts are, harmless a second time."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from bot.cli import app
from bot.composition import build_deps
from bot.simulation.demo import REGIONS, first_start
from funnels.ops.keys import CreateApiKey
from funnels.people.regions import AddRegion
from storage.db import create_engine
from storage.models import Base
from storage.uow import SqlStore
from tests.support.api import api_client
from tests.support.cli import error_line
from tests.support.funnel_kit import Kit

CODES = {code for code, _ in REGIONS}


def demo(url: str, *args: str) -> Result:
    """``funnelbot demo`` on the database at ``url`` (10 members a cohort: it is the
    month of 24 cohorts that takes the time, not their size)."""
    env = {"FUNNELBOT_DATABASE_URL": url}
    return CliRunner().invoke(app, ["demo", "--members", "10", *args], env=env)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Result]:
    """One demo, made on a SQLite file that did not exist (as on a fresh machine)."""
    path = tmp_path_factory.mktemp("demo") / "funnelbot.db"
    url = f"sqlite+aiosqlite:///{path}"
    return url, demo(url, "--seed", "3")


@pytest.mark.slow
async def test_demo_fills_an_empty_database_the_stats_api_lists(made: tuple[str, Result]) -> None:
    url, result = made
    assert result.exit_code == 0, result.output
    assert "24 cohorts in 6 regions" in result.stdout
    assert "240 members" in result.stdout
    assert "funnelbot apikey create NAME" in result.stdout
    assert "/api/v1/cohorts" in result.stdout

    engine = create_engine(url)
    try:
        deps = build_deps(SqlStore(engine))
        _, key = await CreateApiKey(deps)("demo-test")
        async with api_client(engine, deps, key) as client:
            answer = await client.get("/api/v1/cohorts", params={"limit": 100})
    finally:
        await engine.dispose()
    assert answer.status_code == 200, answer.text
    page = answer.json()
    cohorts = page["items"]
    assert len(cohorts) == 24 and page["next_cursor"] is None
    # Six regions, each launching one cohort a week for four weeks, all run to their end.
    assert Counter(c["region"] for c in cohorts) == dict.fromkeys(CODES, 4)
    starts = sorted({date.fromisoformat(c["start_date"]) for c in cohorts})
    assert len(starts) == 4 and all(d.weekday() == 0 for d in starts)
    assert all(b - a == timedelta(days=7) for a, b in itertools.pairwise(starts))
    assert {c["status"] for c in cohorts} == {"finished"}
    assert {c["capacity"] for c in cohorts} == {10}
    assert len({c["leader_telegram_id"] for c in cohorts}) == 6


@pytest.mark.slow
def test_a_second_demo_changes_nothing(made: tuple[str, Result]) -> None:
    url, first = made
    assert first.exit_code == 0, first.output
    path = Path(url.removeprefix("sqlite+aiosqlite:///"))
    before = _sqlite_rows(path)
    again = demo(url)
    assert again.exit_code == 0, again.output
    assert "holds the demo already (24 cohorts" in again.stdout
    assert "nothing changed" in again.stdout
    assert _sqlite_rows(path) == before


def _sqlite_rows(path: Path) -> dict[str, int]:
    """How many rows each table of a SQLite file holds (read with the standard library,
    so the reading writes nothing)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


async def _rows(kit: Kit) -> dict[str, int]:
    """How many rows each table holds."""
    return {t.name: await kit.count(t) for t in Base.metadata.sorted_tables}


async def test_demo_refuses_a_database_with_a_real_cohort(cli: Kit, db_url: str) -> None:
    # (SQLite and PostgreSQL.) A real cohort, in a real region.
    region = await AddRegion(cli.deps)("SEA", "Southeast Asia", "Asia/Singapore")
    cohort = await cli.start(region_id=region.id)
    before = await _rows(cli)
    line = error_line(await asyncio.to_thread(demo, db_url))
    assert "the database holds real cohorts" in line
    assert f"{cohort.code}, in region SEA" in line
    assert "FUNNELBOT_DATABASE_URL" in line
    assert await _rows(cli) == before


def test_demo_says_what_is_wrong_with_a_bad_database_url(tmp_path: Path) -> None:
    line = error_line(demo("mysql://root@localhost/funnelbot"))
    assert "FUNNELBOT_DATABASE_URL" in line and "SQLite or PostgreSQL" in line
    missing = tmp_path / "no-such-folder" / "funnelbot.db"
    line = error_line(demo(f"sqlite+aiosqlite:///{missing}"))
    assert "does not exist" in line


def test_the_demo_month_is_over_by_today() -> None:
    today = date(2026, 11, 27)
    start = first_start(today, 28)
    assert start.weekday() == 0
    last_end = start + timedelta(days=21 + 28)
    assert last_end + timedelta(days=7) <= today < last_end + timedelta(days=14)
