"""``funnelbot run`` as a process against the local Bot API server: long polling by
default, Telegram's webhook mode with its secret when FUNNELBOT_WEBHOOK_URL is set; a
Bot API out of reach at start waited for while the rest runs, and a token it refuses
ending the start in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.botapi import LocalBotAPI
from tests.support.process import BotProcess, free_port, wait_for

TOKEN = "5151:SERVICE"


@contextmanager
def funnelbot_run(
    tmp_path: Path, api: LocalBotAPI, port: int | None = None, **env: str
) -> Iterator[int]:
    bot = BotProcess(tmp_path, api, TOKEN, port, **env).start()
    try:
        yield bot.port
    finally:
        code = bot.stop()
        text = bot.output()
        assert "Traceback" not in text, text
        assert code == 0, text


def test_long_polling_registers_commands_and_answers_start(tmp_path: Path) -> None:
    with LocalBotAPI(TOKEN) as api, funnelbot_run(tmp_path, api):
        api.add_user(31, "Ana", language_code="es")
        wait_for(lambda: api.calls_of("deleteWebhook"), "the bot never started polling")
        menus = api.commands
        assert any(language == "es" for _, language in menus)
        assert any(language == "zh" for _, language in menus)
        api.start_bot(31)  # arrives through the long poll
        wait_for(lambda: api.messages(31), "no answer to /start")
        assert "Ana" in api.messages(31)[-1]["text"]
        polls = api.calls_of("getUpdates")
        assert "chat_member" in polls[-1].params.get("allowed_updates", [])


def test_webhook_mode_checks_the_secret(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/webhook"
    env = {"FUNNELBOT_WEBHOOK_URL": url, "FUNNELBOT_WEBHOOK_SECRET": "s3cret-token"}
    with LocalBotAPI(TOKEN) as api, funnelbot_run(tmp_path, api, port, **env):
        wait_for(lambda: api.calls_of("setWebhook"), "no setWebhook")
        assert api.calls_of("setWebhook")[-1].params["url"] == url
        api.add_user(32, "Bo")
        api.start_bot(32)
        wait_for(lambda: api.messages(32), "no answer to /start through the webhook")
        forged = httpx.post(url, json={"update_id": 1, "message": {}}, timeout=5)
        assert forged.status_code == 401
        wrong = httpx.post(
            url,
            json={"update_id": 1},
            headers={"X-Telegram-Bot-Api-Secret-Token": "nope"},
            timeout=5,
        )
        assert wrong.status_code == 401


def test_the_log_is_json_lines_with_no_secret_and_no_line_per_probe(tmp_path: Path) -> None:
    with LocalBotAPI(TOKEN) as api:
        bot = BotProcess(tmp_path, api, TOKEN).start()
        try:
            wait_for(lambda: api.calls_of("deleteWebhook"), "the bot never started polling")
            for _ in range(5):
                assert httpx.get(f"http://127.0.0.1:{bot.port}/readyz", timeout=5).is_success
            assert httpx.get(f"http://127.0.0.1:{bot.port}/metrics", timeout=5).is_success
        finally:
            assert bot.stop() == 0
        text = bot.output()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # uvicorn's too
    assert TOKEN not in text and TOKEN.split(":")[1] not in text
    assert "readyz" not in text and "metrics" not in text  # no line per request


@pytest.mark.parametrize("mode", ["polling", "webhook"])
def test_a_bot_api_out_of_reach_at_start_is_waited_for_while_the_rest_runs(
    tmp_path: Path, mode: str
) -> None:
    """Nothing listens where the Bot API should be: the process starts anyway (its HTTP
    API answers), says so once, and sets itself up with Telegram as soon as the Bot API
    answers; then it takes updates as usual."""
    api = LocalBotAPI(TOKEN, port=free_port())
    port = free_port()
    env = {}
    if mode == "webhook":
        env = {
            "FUNNELBOT_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/webhook",
            "FUNNELBOT_WEBHOOK_SECRET": "s3cret-token",
        }
    bot = BotProcess(tmp_path, api, TOKEN, port, **env).start()
    try:
        assert httpx.get(f"http://127.0.0.1:{bot.port}/readyz", timeout=5).is_success
        wait_for(lambda: "out of reach" in bot.output(), lambda: bot.output())
        with api:
            api.add_user(33, "Cai")
            first = "setWebhook" if mode == "webhook" else "deleteWebhook"
            wait_for(lambda: api.calls_of(first), lambda: f"never reached:\n{bot.output()}")
            wait_for(lambda: api.commands, "the menus were not registered once reached")
            api.start_bot(33)
            wait_for(lambda: api.messages(33), lambda: f"no answer to /start:\n{bot.output()}")
            code = bot.stop()
    finally:
        if bot.process is not None and bot.process.poll() is None:
            bot.kill()
    text = bot.output()
    assert code == 0 and "Traceback" not in text, text
    assert text.count("out of reach") == 1, text  # once, not once per try
    assert "reached the Bot API after" in text


def test_a_token_the_bot_api_refuses_ends_the_start_in_one_line(tmp_path: Path) -> None:
    with LocalBotAPI(TOKEN) as api:
        url = api.base_url
        bot = BotProcess(tmp_path, api, "5151:NOT-THIS-BOT")
        ended = subprocess.run(
            [sys.executable, "-c", "from bot.cli import main; main()", "run"],
            env=bot.env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert ended.returncode == 1, ended.stdout + ended.stderr
    assert "Traceback" not in ended.stderr and "Traceback" not in ended.stdout
    (said,) = [line for line in ended.stderr.splitlines() if line.startswith("error:")]
    assert said.startswith(f"error: FUNNELBOT_BOT_TOKEN: the Bot API at {url} refused it"), said
    assert "NOT-THIS-BOT" not in ended.stdout + ended.stderr
