"""``funnelbot run`` serves tracked links: ``/r/{code}`` over real HTTP (uvicorn), and a
warning at start, once, when ``FUNNELBOT_PUBLIC_URL`` is not set."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.botapi import LocalBotAPI
from tests.support.process import BotProcess

TOKEN = "5252:LINKS"
WARNING = "FUNNELBOT_PUBLIC_URL is not set"


def test_without_a_public_url_the_start_warns_once(tmp_path: Path) -> None:
    with LocalBotAPI(TOKEN) as api:
        bot = BotProcess(tmp_path, api, TOKEN, FUNNELBOT_PUBLIC_URL="").start()
        try:
            response = httpx.get(
                f"http://127.0.0.1:{bot.port}/r/ABCDEFGHJK",
                headers={"Accept-Language": "zh-CN,zh;q=0.9"},
                timeout=5,
            )
            assert response.status_code == 404
            assert "链接不存在" in response.text
            assert response.headers["cache-control"] == "no-store"
        finally:
            assert bot.stop() == 0
        output = bot.output()
        assert output.count(WARNING) == 1, output
        assert f"http://127.0.0.1:{bot.port}" in output
        assert "Traceback" not in output


def test_with_a_public_url_there_is_no_warning(tmp_path: Path) -> None:
    with LocalBotAPI(TOKEN) as api:
        bot = BotProcess(tmp_path, api, TOKEN, FUNNELBOT_PUBLIC_URL="https://go.example.com")
        bot.start()
        assert bot.stop() == 0
        assert WARNING not in bot.output()
