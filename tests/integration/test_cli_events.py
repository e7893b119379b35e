"""``funnelbot event send|status`` against a real ``funnelbot run`` (no bot token) on
SQLite: the event is signed as a platform signs it, stored, applied, and counted; every
mistake gets one ``error:`` line and exit code 1."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cli import error_line, run_cli as funnelbot
from tests.support.process import free_port, wait_for

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def _running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[str, str]]]:
    """One ``funnelbot run`` for the module (a start takes seconds), on a fresh SQLite
    file with an events secret."""
    tmp_path = tmp_path_factory.mktemp("service")
    port = free_port()
    env = {
        "FUNNELBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/run.db",
        "FUNNELBOT_HTTP_HOST": "127.0.0.1",
        "FUNNELBOT_HTTP_PORT": str(port),
        "FUNNELBOT_EVENTS_SECRET": SECRET,
        "FUNNELBOT_TICK_SECONDS": "1",
    }
    log = (tmp_path / "run.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", "from bot.cli import main; main()", "run"],
        env={k: v for k, v in {**os.environ, **env}.items() if k != "FUNNELBOT_BOT_TOKEN"},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        wait_for(lambda: _healthy(port), "funnelbot run never answered", timeout=60)
        yield port, env
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
    assert process.returncode == 0
    assert "Traceback" not in (tmp_path / "run.log").read_text()


@pytest.fixture
def service(_running: tuple[int, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> int:
    """The running service; the CLI is pointed at its database, port and secret."""
    port, env = _running
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("FUNNELBOT_BOT_TOKEN", raising=False)
    return port


def test_an_event_is_signed_stored_applied_and_counted(service: int) -> None:
    sent = funnelbot("event", "send", "--type", "order.paid", "--member", "K7P2QX", "--id", "o-1")
    again = funnelbot("event", "send", "--type", "order.paid", "--member", "K7P2QX", "--id", "o-1")

    assert (sent.exit_code, sent.stdout) == (0, "202 o-1: stored\n")
    assert again.stdout == "202 o-1: already stored (a repeat: not counted)\n"

    def counted() -> bool:  # applied in the background: the member is unknown, so it waits
        return "waiting\tunknown_member\t1\n" in funnelbot("event", "status").stdout

    wait_for(counted, "the event was not applied")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--type", "order.paid"], "--member REF or --telegram-id"),
        (["--type", "order.paid", "--member", "A", "--telegram-id", "5"], "one of them"),
        (["--type", "order.paid", "--member", "A", "--data", "nokey"], "key=value"),
        (["--type", "Order Paid", "--member", "A"], "422"),
        (["--type", "a.b", "--member", "not a ref"], "member.ref"),
    ],
)
def test_mistakes_get_one_error_line(service: int, args: list[str], says: str) -> None:
    before = funnelbot("event", "status").stdout
    assert says in error_line(funnelbot("event", "send", *args))
    assert funnelbot("event", "status").stdout == before


def test_another_secret_is_refused_and_stores_nothing(
    service: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "FUNNELBOT_EVENTS_SECRET", "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    )
    before = funnelbot("event", "status").stdout
    assert "401" in error_line(funnelbot("event", "send", "--type", "a.b", "--member", "A"))
    assert funnelbot("event", "status").stdout == before


def test_without_a_secret_or_a_service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FUNNELBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/x.db")
    monkeypatch.delenv("FUNNELBOT_EVENTS_SECRET", raising=False)
    assert "FUNNELBOT_EVENTS_SECRET is not set" in error_line(
        funnelbot("event", "send", "--type", "a.b", "--member", "A")
    )
    monkeypatch.setenv("FUNNELBOT_EVENTS_SECRET", SECRET)
    down = f"http://127.0.0.1:{free_port()}"
    assert "could not post to" in error_line(
        funnelbot("event", "send", "--type", "a.b", "--member", "A", "--url", down)
    )
    monkeypatch.setenv("FUNNELBOT_EVENTS_SECRET", "whsec_short")
    assert "FUNNELBOT_EVENTS_SECRET" in error_line(
        funnelbot("event", "send", "--type", "a.b", "--member", "A")
    )
