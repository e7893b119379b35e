"""The private chat: /start, /lang (the choice sticks), /help, /balance, /tasks (money
goals shown as money in the member's language)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.telegram.i18n import Catalog
from funnels.kernel.records import IncomingEvent
from funnels.kernel.stages import Stage
from funnels.ladder.events import IngestEvents
from storage.uow import SqlStore
from tests.support.harness import ADMIN, LEADER, TASKS, WARMUP, running_bot

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


async def test_tasks_show_a_sales_goal_as_money_in_the_members_language(store: SqlStore) -> None:
    members = {71: "en", 72: "es", 73: "zh-CN"}
    async with running_bot(store, NOW) as h:
        h.api.add_user(ADMIN, "Ada", started_bot=True)
        h.api.add_user(LEADER, "Lena", started_bot=True)
        h.api.add_user(71, "Ann", started_bot=True, language_code="en")
        h.api.add_user(72, "Beto", started_bot=True, language_code="es")
        h.api.add_user(73, "Chen", started_bot=True, language_code="zh-hans")
        h.api.add_group(WARMUP, "Warm-up", supergroup=True, owner=LEADER)
        h.api.add_group(TASKS, "Tasks", supergroup=True, owner=LEADER)
        await h.say(ADMIN, ADMIN, f"/grant_leader {LEADER} SEA")
        await h.say(WARMUP, LEADER, "/launch start=2026-03-02")  # the English script: USD
        async with h.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(WARMUP)
        assert cohort is not None and cohort.currency == "USD"
        await h.say(TASKS, LEADER, f"/taskgroup {cohort.code}")
        admission = next(link for link, s in h.api.invite_links.items() if s.chat_id == TASKS)
        for user_id in members:
            await h.feed(h.api.join(WARMUP, user_id))
            async with h.store.transaction() as tx:  # they answered the pitch with 1
                ref = await tx.users.by_telegram(user_id)
                assert ref is not None
                await tx.members.advance(cohort.id, ref.user_id, Stage.REPLIED, h.clock.now())
                await tx.commit()
            await h.feed(h.api.request_join(TASKS, user_id, admission))
        assert {r.status for r in h.api.join_requests.values()} == {"approved"}

        # Task day 18 (2026-03-26): the sales stretch goal is open; $12.50 sold so far.
        h.clock.set(datetime(2026, 3, 26, 12, 0, tzinfo=ZoneInfo("Asia/Singapore")))
        sales = [
            IncomingEvent(
                f"order-{u}", "order.paid", h.clock.now(), telegram_user_id=u, data={"amount": 1250}
            )
            for u in members
        ]
        assert (await IngestEvents(h.services.deps, notify=False)("shop", sales)).accepted == 3

        for user_id, locale in members.items():
            await h.say(user_id, user_id, "/tasks")
            lines = h.last_text(user_id).splitlines()
            progress = CATALOG.text(
                locale,
                "tasks.progress",
                label=CATALOG.text(locale, "goal.order_paid.sum"),
                done=CATALOG.money(locale, 1250, "USD"),
                target=CATALOG.money(locale, 7000, "USD"),
            )
            title = "Stretch goal: 70 dollars in sales"  # the script's own words
            assert CATALOG.text(locale, "tasks.line_open", title=title, progress=progress) in lines
            assert not any("1250/7000" in line or "order.paid" in line for line in lines)
        assert "▫️ Stretch goal: 70 dollars in sales: sales $12.50 of $70.00" in h.texts(71)[-1]
        assert "ventas 12,50\xa0US$ de 70,00\xa0US$" in h.texts(72)[-1]
        assert "累计成交 US$12.50/US$70.00" in h.texts(73)[-1]
        # Counts stay plain numbers, under a word rather than an event type.
        assert "▫️ Bring in your first 10 fans: fans 0 of 10" in h.texts(71)[-1]
        assert "✅ Your first sale with the hit product" in h.texts(71)[-1]
