"""``/mylink`` against the local Bot API server: a member in the task stage gets a
tracked link per open task with a target, titled, in their language, and the link
leads where the script says; before the task stage, the invite link and when task links
come."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from bot.composition import build_link_redirects
from bot.http.app import create_app
from bot.http.events import EventApplier
from bot.telegram.i18n import Catalog
from funnels.kernel.stages import Stage
from storage.uow import SqlStore
from tests.support.harness import ADMIN, LEADER, TASKS, WARMUP, Harness, running_bot

CATALOG = Catalog.load()
SG = ZoneInfo("Asia/Singapore")
NOW = datetime(2026, 3, 1, 10, 0, tzinfo=SG)
PUBLIC = "https://go.example.com"
LINK = re.compile(re.escape(PUBLIC) + r"/r/[A-Z0-9]{10}")
INVITE = "Bring in your first 10 fans"  # the English script's own titles
DEAL = "Get the deal in front of 100 visitors"


async def admitted_world(h: Harness, members: dict[int, str]) -> None:
    h.api.add_user(ADMIN, "Ada", started_bot=True)
    h.api.add_user(LEADER, "Lena", started_bot=True)
    for user_id, language in members.items():
        h.api.add_user(user_id, f"M{user_id}", started_bot=True, language_code=language)
    h.api.add_group(WARMUP, "Warm-up", supergroup=True, owner=LEADER)
    h.api.add_group(TASKS, "Tasks", supergroup=True, owner=LEADER)
    await h.say(ADMIN, ADMIN, f"/grant_leader {LEADER} SEA")
    await h.say(WARMUP, LEADER, "/launch start=2026-03-02")  # the English script
    async with h.store.transaction() as tx:
        cohort = await tx.cohorts.by_chat(WARMUP)
    assert cohort is not None
    await h.say(TASKS, LEADER, f"/taskgroup {cohort.code}")
    for user_id in members:
        await h.feed(h.api.join(WARMUP, user_id))


async def admit(h: Harness, user_id: int) -> None:
    admission = next(link for link, s in h.api.invite_links.items() if s.chat_id == TASKS)
    async with h.store.transaction() as tx:
        cohort = await tx.cohorts.by_chat(WARMUP)
        ref = await tx.users.by_telegram(user_id)
        assert cohort is not None and ref is not None
        await tx.members.advance(cohort.id, ref.user_id, Stage.REPLIED, h.clock.now())
        await tx.commit()
    await h.feed(h.api.request_join(TASKS, user_id, admission))


async def test_mylink_lists_a_members_task_links_in_their_language(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNNELBOT_PUBLIC_URL", PUBLIC)
    members = {71: "en", 72: "es", 73: "zh-hans"}
    async with running_bot(store, NOW) as h:
        await admitted_world(h, members)

        # Warm-up only: the invite link, and when the task links come.
        await h.say(71, 71, "/mylink")
        text = h.last_text(71)
        assert CATALOG.text("en", "links.later") in text
        warmup_links = [link for link, s in h.api.invite_links.items() if s.chat_id == WARMUP]
        assert any(link in text for link in warmup_links)

        for user_id in members:
            await admit(h, user_id)
        # Task day 1 (warm-up of 7 days from 2026-03-02): only the invite task is open.
        h.clock.set(datetime(2026, 3, 9, 10, 0, tzinfo=SG))
        await h.say(72, 72, "/mylink")
        text = h.last_text(72)
        assert text.startswith(CATALOG.text("es", "links.header"))
        [link] = LINK.findall(text)
        assert CATALOG.text("es", "links.line", title=INVITE, link=link) in text
        await h.say(72, 72, "/mylink")
        assert LINK.findall(h.last_text(72)) == [link]  # the same link every time

        # The link leads to the task's target.
        app = create_app(
            store.engine,
            links=build_link_redirects(
                h.services.settings, h.services.deps, EventApplier(h.services.deps)
            ),
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=PUBLIC
        ) as web:
            response = await web.get(link.removeprefix(PUBLIC), headers={"User-Agent": "Firefox"})
        assert response.status_code == 302
        assert response.headers["location"] == "https://shop.example.com/join"

        # Task day 9: the deal is open too; each member has links of their own.
        h.clock.set(datetime(2026, 3, 17, 10, 0, tzinfo=SG))
        seen: set[str] = set()
        for user_id, locale in ((71, "en"), (73, "zh-CN")):
            await h.say(user_id, user_id, "/mylink")
            text = h.last_text(user_id)
            assert text.startswith(CATALOG.text(locale, "links.header"))
            invite, deal = LINK.findall(text)
            assert CATALOG.text(locale, "links.line", title=INVITE, link=invite) in text
            assert CATALOG.text(locale, "links.line", title=DEAL, link=deal) in text
            seen |= {invite, deal}
        assert len(seen | {link}) == 5


async def test_mylink_when_no_open_task_needs_a_link(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNNELBOT_PUBLIC_URL", PUBLIC)
    async with running_bot(store, NOW) as h:
        await admitted_world(h, {81: "en"})
        await admit(h, 81)
        # After the cohort's 28 days nothing is open.
        h.clock.set(datetime(2026, 4, 5, 10, 0, tzinfo=SG))
        await h.say(81, 81, "/mylink")
        assert h.last_text(81) == CATALOG.text("en", "links.none_open")
