"""Every CLI command that uses a database, given one it cannot use (a bad URL, a sync
driver, a missing folder, a server that does not answer or refuses us, a schema this
code does not know): one ``error:`` line, exit code 1, no traceback, nothing started."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from bot.cli import app
from bot.cli.checks import Unusable, check_database

runner = CliRunner()

COMMANDS = [
    ["run"],
    ["migrate"],
    ["region", "add", "SEA", "--name", "SE Asia", "--tz", "Asia/Singapore"],
    ["leader", "add", "4242", "--region", "SEA"],
]
COMMAND_IDS = ["run", "migrate", "region-add", "leader-add"]

# URL -> what the one line says about it.
BAD_URLS = {
    "nonsense": "'nonsense' is not a database URL; write it like sqlite+aiosqlite:///",
    "postgresql://x": "postgresql:// does not name an async driver",
    "sqlite:///x.db": "sqlite:// does not name an async driver",
    "mysql+aiomysql://u@h/x": "funnelbot runs on SQLite or PostgreSQL, not mysql",
    "postgresql+asyncpg://u:s3cret@h:port/x": "'postgresql+asyncpg://u:***@h:port/x' is not",
    "sqlite+aiosqlite:////nonexistent/dir/x.db": "the folder /nonexistent/dir does not exist",
    "postgresql+asyncpg://u:s3cret@127.0.0.1:1/x": "cannot use the database "
    "postgresql+asyncpg://u:***@127.0.0.1:1/x: [Errno 111]",
}


def one_error_line(result: Result, exit_code: int = 1) -> str:
    """The single line a failed command printed (asserting that it is the only one)."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    return line


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
@pytest.mark.parametrize("url", list(BAD_URLS))
def test_a_bad_database_url_is_one_line(
    command: list[str], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNNELBOT_DATABASE_URL", url)
    line = one_error_line(runner.invoke(app, command))
    assert line.startswith("error: FUNNELBOT_DATABASE_URL: ")
    assert BAD_URLS[url] in line
    assert "s3cret" not in line


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_a_folder_or_a_file_that_is_no_database(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNNELBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}")
    line = one_error_line(runner.invoke(app, command))
    assert line.endswith(f"{tmp_path} is a folder, not a database file")
    text = tmp_path / "notes.txt"
    text.write_text("not a database, just some notes\n" * 100, encoding="utf-8")
    monkeypatch.setenv("FUNNELBOT_DATABASE_URL", f"sqlite+aiosqlite:///{text}")
    line = one_error_line(runner.invoke(app, command))
    assert line.endswith(": file is not a database")
    below_a_file = text / "x.db"
    monkeypatch.setenv("FUNNELBOT_DATABASE_URL", f"sqlite+aiosqlite:///{below_a_file}")
    line = one_error_line(runner.invoke(app, command))
    assert line.endswith(f"the folder {text} does not exist")


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_a_postgres_database_that_does_not_exist(
    command: list[str], pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = make_url(pg_url).set(database="funnelbot_no_such_database")
    monkeypatch.setenv("FUNNELBOT_DATABASE_URL", missing.render_as_string(hide_password=False))
    line = one_error_line(runner.invoke(app, command))
    assert 'database "funnelbot_no_such_database" does not exist' in line


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_a_schema_this_code_does_not_know(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "newer.db"
    url = f"sqlite+aiosqlite:///{path}"
    monkeypatch.setenv("FUNNELBOT_DATABASE_URL", url)
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    with sqlite3.connect(path) as db:  # as if a newer funnelbot had migrated it
        db.execute("UPDATE alembic_version SET version_num = 'from_the_future'")
    result = runner.invoke(app, command)
    assert result.exit_code == 1 and "Traceback" not in result.output
    # `run` may have logged its start first; the last line says what went wrong.
    last = result.stderr.splitlines()[-1]
    assert last.startswith("error: ")
    assert "Can't locate revision identified by 'from_the_future'" in last


def test_run_refuses_a_scripts_dir_that_is_not_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNNELBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/run.db")
    monkeypatch.setenv("FUNNELBOT_SCRIPTS_DIR", str(tmp_path / "nowhere"))
    line = one_error_line(runner.invoke(app, ["run"]))
    assert line == f"error: FUNNELBOT_SCRIPTS_DIR: {tmp_path / 'nowhere'} does not exist"
    (tmp_path / "file").write_text("", encoding="utf-8")
    monkeypatch.setenv("FUNNELBOT_SCRIPTS_DIR", str(tmp_path / "file"))
    line = one_error_line(runner.invoke(app, ["run"]))
    assert line == f"error: FUNNELBOT_SCRIPTS_DIR: {tmp_path / 'file'} is not a folder"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word (a hung database)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_a_server_that_never_answers_times_out(silent_server: int) -> None:
    url = f"postgresql+asyncpg://u@127.0.0.1:{silent_server}/x"
    with pytest.raises(Unusable) as caught:
        check_database(url, "--database-url", timeout=0.5)
    assert str(caught.value) == f"--database-url: no answer from {url} within 0.5 s"


@pytest.mark.parametrize("ids", ["٣", "1,²", "[1,2", str(2**76), "[0]"])
def test_admin_ids_that_are_not_telegram_ids_are_one_line(
    ids: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNNELBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/run.db")
    monkeypatch.setenv("FUNNELBOT_ADMIN_IDS", ids)
    line = one_error_line(runner.invoke(app, ["run"]))
    assert line.startswith("error: FUNNELBOT_ADMIN_IDS: ")
