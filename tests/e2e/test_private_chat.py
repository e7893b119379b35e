"""The private chat: /start, /lang (the choice sticks), /help, /balance, /tasks."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.i18n import Catalog
from storage.repositories import SqlStore
from tests.e2e.harness import running_bot

CATALOG = Catalog.load()
NOW = datetime(2026, 3, 1, 10, 0, tzinfo=ZoneInfo("Asia/Singapore"))


async def test_a_member_picks_a_language_and_the_bot_keeps_to_it(store: SqlStore) -> None:
    async with running_bot(store, NOW) as h:
        h.api.add_user(61, "Zhang", language_code="zh-hans")
        await h.feed(h.api.start_bot(61))
        assert h.last_text(61) == CATALOG.text("zh-CN", "start.welcome", name="Zhang")
        await h.say(61, 61, "/lang")
        menu = h.api.messages(61)[-1]
        buttons = [row[0] for row in menu["reply_markup"]["inline_keyboard"]]
        assert [b["text"] for b in buttons] == ["简体中文", "Español", "English"]
        await h.feed(h.api.tap(61, menu["message_id"], 61, data=buttons[1]["callback_data"]))
        assert h.last_text(61) == CATALOG.text("es", "lang.set")
        await h.say(61, 61, "/help")
        assert h.last_text(61) == CATALOG.text("es", "help.member")
        await h.say(61, 61, "/balance")
        assert h.last_text(61) == CATALOG.text("es", "balance.empty")
        await h.say(61, 61, "/tasks")
        assert h.last_text(61) == CATALOG.text("es", "tasks.none")
        await h.say(61, 61, "/mylink")
        assert h.last_text(61) == CATALOG.text("es", "mylink.none")
        # Group commands in a private chat are pointed to the group.
        await h.say(61, 61, "/launch")
        assert h.last_text(61) == CATALOG.text("es", "launch.group_only")
