"""``funnelbot run`` as a process against the local Bot API server: long polling by
default, Telegram's webhook mode with its secret when FUNNELBOT_WEBHOOK_URL is set."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.botapi import LocalBotAPI

TOKEN = "5151:SERVICE"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def funnelbot_run(
    tmp_path: Path, api: LocalBotAPI, port: int | None = None, **env: str
) -> Iterator[int]:
    port = port or _free_port()
    environment = {
        **os.environ,
        "FUNNELBOT_BOT_TOKEN": TOKEN,
        "FUNNELBOT_TELEGRAM_API_URL": api.base_url,
        "FUNNELBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/run.db",
        "FUNNELBOT_HTTP_HOST": "127.0.0.1",
        "FUNNELBOT_HTTP_PORT": str(port),
        "FUNNELBOT_TICK_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    log = tmp_path / "run.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "from bot.cli import main; main()", "run"],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        _wait(lambda: _healthy(port), f"funnelbot run never answered:\n{log.read_text()}")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)
        text = log.read_text()
        assert "Traceback" not in text, text


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(condition: object, message: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(message)


def test_long_polling_registers_commands_and_answers_start(tmp_path: Path) -> None:
    with LocalBotAPI(TOKEN) as api, funnelbot_run(tmp_path, api):
        api.add_user(31, "Ana", language_code="es")
        _wait(lambda: api.calls_of("deleteWebhook"), "the bot never started polling")
        menus = api.commands
        assert any(language == "es" for _, language in menus)
        assert any(language == "zh" for _, language in menus)
        api.start_bot(31)  # arrives through the long poll
        _wait(lambda: api.messages(31), "no answer to /start")
        assert "Ana" in api.messages(31)[-1]["text"]
        polls = api.calls_of("getUpdates")
        assert "chat_member" in polls[-1].params.get("allowed_updates", [])


def test_webhook_mode_checks_the_secret(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/telegram/webhook"
    env = {"FUNNELBOT_WEBHOOK_URL": url, "FUNNELBOT_WEBHOOK_SECRET": "s3cret-token"}
    with LocalBotAPI(TOKEN) as api, funnelbot_run(tmp_path, api, port, **env):
        _wait(lambda: api.calls_of("setWebhook"), "no setWebhook")
        assert api.calls_of("setWebhook")[-1].params["url"] == url
        api.add_user(32, "Bo")
        api.start_bot(32)
        _wait(lambda: api.messages(32), "no answer to /start through the webhook")
        forged = httpx.post(url, json={"update_id": 1, "message": {}}, timeout=5)
        assert forged.status_code == 401
        wrong = httpx.post(
            url,
            json={"update_id": 1},
            headers={"X-Telegram-Bot-Api-Secret-Token": "nope"},
            timeout=5,
        )
        assert wrong.status_code == 401
