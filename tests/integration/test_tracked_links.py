"""Tracked links over real HTTP handling (the app as ``funnelbot run`` builds it, driven
through httpx's ASGI transport) on SQLite and PostgreSQL: first touch wins, repeated
clicks count once, a 10-fan task done from links alone, unknown codes, tampered cookies,
HEAD requests and preview fetchers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli.scripts import app as scripts_cli
from bot.composition import build_link_redirects
from bot.http.app import create_app
from bot.http.events import EventApplier
from bot.http.links import LinkRedirects
from bot.settings import Settings
from funnels.kernel.records import CohortRecord, MemberRef
from funnels.ladder.links import (
    Click,
    FindLink,
    LinkFor,
    LinkTarget,
    MyLinks,
    RecordClicks,
    VisitorKey,
)
from funnels.ladder.visitors import VISITOR_COOKIE
from funnels.scripts.loader import LoadedScript, load_script_text
from storage.tables import fan_locks, tracked_links
from tests.support.funnel_kit import TASK_CHAT, Kit, events_t, progress_t, script_text, task_at
from tests.support.scripts import line_of

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
JOIN = "https://shop.example.com/join?src=funnel"
DEAL = "https://shop.example.com/deal"
PUBLIC = "https://go.example.com"


def linked_script() -> LoadedScript:
    """The kit's mini script with targets on its link tasks, and a 10-fan invite task;
    the visitors task counts the clicks on its own link only."""
    text = script_text(budget="5.00")
    text = text.replace("fan.locked, count: 3}", "fan.locked, count: 10}")
    text = text.replace(
        "      goal: {event: fan.locked",
        f'      link: {{target: "{JOIN}"}}\n      goal: {{event: fan.locked',
    )
    text = text.replace(
        "      goal: {event: link.clicked, unique: visitor, count: 2}",
        f'      link: {{target: "{DEAL}"}}\n'
        "      goal: {event: link.clicked, unique: visitor, where: {task: visitors}, count: 2}",
    )
    return load_script_text(text, "linked.yaml")


@pytest.fixture
async def world(kit: Kit) -> tuple[CohortRecord, list[MemberRef]]:
    cohort = await kit.start(loaded=linked_script())
    async with kit.store.transaction() as tx:
        await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
        await tx.commit()
    refs = await kit.admitted(cohort, 2)
    kit.clock.set(task_at(1, "12:00"))
    return cohort, refs


@dataclass
class Web:
    """The app over the kit's store, and the clicks it has yet to write."""

    client: httpx.AsyncClient
    links: LinkRedirects

    async def visit(
        self, code: str, cookie: str | None = None, *, agent: str = BROWSER, method: str = "GET"
    ) -> httpx.Response:
        """One request as a browser with (or without) its visitor cookie; returns once
        what it recorded is applied to the ladder (it is stored before the answer)."""
        headers = {"User-Agent": agent}
        if cookie is not None:
            headers["Cookie"] = f"{VISITOR_COOKIE}={cookie}"
        self.client.cookies.clear()
        response = await self.client.request(method, f"/r/{code}", headers=headers)
        await self.links.clicks.drain()
        return response


@pytest.fixture
async def web(kit: Kit) -> AsyncIterator[Web]:
    settings = Settings(public_url=PUBLIC, _env_file=None)  # type: ignore[call-arg]
    links = build_link_redirects(settings, kit.deps, EventApplier(kit.deps))
    transport = httpx.ASGITransport(app=create_app(kit.store.engine, links=links))
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as client:
        yield Web(client, links)


async def codes(kit: Kit, ref: MemberRef) -> dict[str, str]:
    links = await MyLinks(kit.deps)(kit.actor(ref))
    assert links is not None
    return {t.task_id: t.code for t in links}


async def targets(kit: Kit, *wanted: tuple[MemberRef, str]) -> list[LinkTarget]:
    """Each member's link for the task named beside them, as a click finds it."""
    find = FindLink(kit.deps)
    found = [await find((await codes(kit, ref))[task]) for ref, task in wanted]
    assert all(found), found
    return [t for t in found if t is not None]


def cookie_of(response: httpx.Response) -> str:
    value = response.cookies.get(VISITOR_COOKIE)
    assert value, response.headers
    return value


async def events(kit: Kit, type_: str) -> list[tuple[str, int | None]]:
    rows = await kit.rows(
        select(events_t.c.event_id, events_t.c.user_id)
        .where(events_t.c.type == type_, events_t.c.source == "links")
        .order_by(events_t.c.id)
    )
    return [(r.event_id, r.user_id) for r in rows]


async def fans(kit: Kit, cohort_id: int) -> dict[str, int]:
    rows = await kit.rows(select(fan_locks).where(fan_locks.c.cohort_id == cohort_id))
    return {r.visitor: r.user_id for r in rows}


async def test_mylink_makes_one_link_per_open_task_with_a_target_once(
    kit: Kit, world: tuple[CohortRecord, list[MemberRef]]
) -> None:
    _, (ann, bob) = world
    first = await codes(kit, ann)
    assert set(first) == {"invite_fans", "visitors"}  # first_sale: no target, not open
    assert await codes(kit, ann) == first  # the same links every time
    assert set((await codes(kit, bob)).values()).isdisjoint(first.values())
    assert await LinkFor(kit.deps)(kit.actor(ann), "visitors") == first["visitors"]
    assert await LinkFor(kit.deps)(kit.actor(ann), "first_sale") is None
    assert await kit.count(tracked_links) == 4
    # Someone in no task group has no links.
    [stranger] = await kit.users(1)
    assert await MyLinks(kit.deps)(kit.actor(stranger)) is None
    assert await LinkFor(kit.deps)(kit.actor(stranger), "visitors") is None


async def test_a_click_redirects_records_and_locks_the_first_touch(
    kit: Kit, world: tuple[CohortRecord, list[MemberRef]], web: Web
) -> None:
    cohort, (ann, bob) = world
    ann_code = (await codes(kit, ann))["invite_fans"]
    bob_code = (await codes(kit, bob))["visitors"]

    first = await web.visit(ann_code)
    assert first.status_code == 302
    assert first.headers["location"] == JOIN
    assert first.headers["cache-control"] == "no-store"
    cookie = cookie_of(first)
    set_cookie = first.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "secure" in set_cookie and "path=/r" in set_cookie
    visitor = cookie.split(".")[0]
    assert await fans(kit, cohort.id) == {visitor: ann.user_id}

    # The same visitor opens Bob's link: counted as Bob's click, still Ann's fan.
    second = await web.visit(bob_code, cookie)
    assert second.status_code == 302 and second.headers["location"] == DEAL
    assert VISITOR_COOKIE not in second.cookies  # the cookie is kept, not replaced
    assert await fans(kit, cohort.id) == {visitor: ann.user_id}
    assert await events(kit, "fan.locked") == [(f"fan:{cohort.id}:{visitor}", ann.user_id)]
    assert await events(kit, "link.clicked") == [
        (f"click:{ann_code}:{visitor}", ann.user_id),
        (f"click:{bob_code}:{visitor}", bob.user_id),
    ]
    # Repeated clicks by the visitor count once, on either link.
    for _ in range(3):
        assert (await web.visit(ann_code, cookie)).status_code == 302
        assert (await web.visit(bob_code, cookie)).status_code == 302
    assert len(await events(kit, "link.clicked")) == 2
    assert len(await events(kit, "fan.locked")) == 1
    [visitors_row] = await kit.rows(
        select(progress_t.c.progress).where(
            progress_t.c.user_id == bob.user_id, progress_t.c.task_id == "visitors"
        )
    )
    assert visitors_row.progress == {"0": 1}


async def test_ten_fans_from_links_alone_complete_the_invite_task(
    kit: Kit, world: tuple[CohortRecord, list[MemberRef]], web: Web
) -> None:
    cohort, (ann, _) = world
    code = (await codes(kit, ann))["invite_fans"]
    for n in range(10):
        response = await web.visit(code)  # ten different browsers
        assert response.status_code == 302, n
    assert len(await fans(kit, cohort.id)) == 10
    [row] = await kit.rows(
        select(progress_t.c.completed_at, progress_t.c.reward_status).where(
            progress_t.c.user_id == ann.user_id, progress_t.c.task_id == "invite_fans"
        )
    )
    assert row.completed_at is not None and row.reward_status == "paid"
    assert [(m, n.task_id) for m, n in kit.messenger.notices] == [(ann, "invite_fans")]
    assert await MyLinks(kit.deps)(kit.actor(ann)) is not None
    assert set(await codes(kit, ann)) == {"visitors"}  # done: its link is no longer listed


async def test_an_unknown_code_is_a_plain_404_page(
    kit: Kit, world: tuple[CohortRecord, list[MemberRef]], web: Web
) -> None:
    for code in ["ABCDEFGHJK", "short", "x" * 300, "abcdefghjk"]:
        response = await web.client.get(f"/r/{code}", headers={"Accept-Language": "es-MX,es;q=0.9"})
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "Enlace no encontrado" in response.text and len(response.text) < 1000
        assert VISITOR_COOKIE not in response.cookies
    response = await web.client.get("/r/ABCDEFGHJK")
    assert response.status_code == 404 and "Link not found" in response.text
    assert await kit.count(events_t) == 0


async def test_a_tampered_cookie_is_treated_as_no_cookie(
    kit: Kit, world: tuple[CohortRecord, list[MemberRef]], web: Web
) -> None:
    cohort, (ann, bob) = world
    ann_code = (await codes(kit, ann))["invite_fans"]
    bob_code = (await codes(kit, bob))["invite_fans"]
    cookie = cookie_of(await web.visit(ann_code))
    visitor, mac = cookie.split(".")
    forged = f"{visitor}.{mac[::-1]}"
    response = await web.visit(bob_code, forged)
    assert response.status_code == 302
    fresh = cookie_of(response)  # a new visitor id, not the forged one
    assert fresh.split(".")[0] != visitor
    assert await fans(kit, cohort.id) == {visitor: ann.user_id, fresh.split(".")[0]: bob.user_id}


async def test_head_requests_and_preview_fetchers_are_redirected_not_counted(
    kit: Kit, world: tuple[CohortRecord, list[MemberRef]], web: Web
) -> None:
    cohort, (ann, _) = world
    code = (await codes(kit, ann))["invite_fans"]
    agents = [
        "TelegramBot (like TwitterBot)",
        "WhatsApp/2.23.20.0 A",
        "facebookexternalhit/1.1",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    ]
    for agent in agents:
        response = await web.visit(code, agent=agent)
        assert response.status_code == 302 and response.headers["location"] == JOIN
        assert VISITOR_COOKIE not in response.cookies
    response = await web.visit(code, method="HEAD")
    assert response.status_code == 302 and response.headers["location"] == JOIN
    assert await kit.count(events_t) == 0
    assert await fans(kit, cohort.id) == {}


async def test_every_process_signs_with_the_one_stored_key(
    kit: Kit, world: tuple[CohortRecord, list[MemberRef]]
) -> None:
    first = await VisitorKey(kit.deps)()
    assert len(first) >= 32
    assert await VisitorKey(kit.deps)() == first  # a second process, or a restart
    # A link lookup is remembered: the second one asks nothing of the database.
    _, (ann, _) = world
    code = (await codes(kit, ann))["invite_fans"]
    find = FindLink(kit.deps)
    found = await find(code)
    assert found is not None and found.url == JOIN
    assert await find(code) is found


def test_validate_reports_a_bad_target_as_path_line_field_message(tmp_path: Path) -> None:
    text = script_text().replace(
        "      goal: {event: fan.locked",
        '      link: {target: "ftp://shop.example.com/x"}\n      goal: {event: fan.locked',
    )
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(scripts_cli, ["validate", str(path)])
    assert result.exit_code == 1
    line = line_of(text, "link: {target:")
    assert result.stderr.startswith(
        f"{path}:{line}: tasks.ladder[invite_fans].link.target: "
        "'ftp://shop.example.com/x' is not an http or https address"
    )


async def test_one_batch_of_clicks_locks_the_first_touch_and_stores_each_event_once(
    kit: Kit, world: tuple[CohortRecord, list[MemberRef]]
) -> None:
    """A group commit holding several visitors' clicks: within the batch the first click
    of a visitor locks them; a visitor locked before stays whose they were; a fan event
    goes to the holder only; repeats in the batch and across batches are stored once."""
    cohort, (ann, bob) = world
    ann_link, bob_link = await targets(kit, (ann, "invite_fans"), (bob, "visitors"))
    record = RecordClicks(kit.deps)
    at = kit.clock.now()

    assert await record([Click(bob_link, "old", at)]) == 2  # "old" is Bob's fan already
    batch = [
        Click(ann_link, "new", at),  # first touch: Ann's
        Click(bob_link, "new", at),  # then Bob's link: his click, Ann's fan
        Click(ann_link, "new", at),  # a repeat within the batch
        Click(ann_link, "old", at),  # Bob's fan opens Ann's link
    ]
    # click:ann:new, fan:new (Ann), click:bob:new, click:ann:old: four new events.
    assert await record(batch) == 4
    assert await record(batch) == 0  # all of it again: nothing new

    assert await fans(kit, cohort.id) == {"old": bob.user_id, "new": ann.user_id}

    # A lock taken elsewhere (another process's batch, say) with no fan event seen here
    # yet: of one batch's candidates for the fan event, the holder's is the one stored.
    async with kit.store.transaction() as tx:
        await tx.conn.execute(
            fan_locks.insert().values(
                cohort_id=cohort.id,
                visitor="elsewhere",
                user_id=bob.user_id,
                code=bob_link.link.code,
                locked_at=at,
            )
        )
        await tx.commit()
    assert await record([Click(ann_link, "elsewhere", at), Click(bob_link, "elsewhere", at)]) == 3
    fan_refs = await kit.rows(
        select(events_t.c.event_id, events_t.c.member_ref).where(events_t.c.type == "fan.locked")
    )
    assert {r.event_id: r.member_ref for r in fan_refs} == {
        f"fan:{cohort.id}:new": ann_link.link.member_ref,
        f"fan:{cohort.id}:old": bob_link.link.member_ref,
        f"fan:{cohort.id}:elsewhere": bob_link.link.member_ref,
    }
    assert sorted(e for e, _ in await events(kit, "link.clicked")) == sorted(
        [
            f"click:{bob_link.link.code}:old",
            f"click:{ann_link.link.code}:new",
            f"click:{bob_link.link.code}:new",
            f"click:{ann_link.link.code}:old",
            f"click:{ann_link.link.code}:elsewhere",
            f"click:{bob_link.link.code}:elsewhere",
        ]
    )


async def test_concurrent_batches_of_the_same_visitors_lock_each_once_for_its_holder(
    kit: Kit, world: tuple[CohortRecord, list[MemberRef]]
) -> None:
    """Two group commits at once (on PostgreSQL, two connections) with the same visitors
    on different members' links, in opposite orders: no deadlock, one lock per visitor,
    and the one ``fan.locked`` of each visitor is the holder's, whichever batch won."""
    cohort, (ann, bob) = world
    ann_link, bob_link = await targets(kit, (ann, "invite_fans"), (bob, "visitors"))
    record = RecordClicks(kit.deps)
    at = kit.clock.now()
    visitors = [f"v{n:04}" for n in range(2000)]

    for _ in range(3):
        await asyncio.gather(
            record([Click(ann_link, v, at) for v in visitors]),
            record([Click(bob_link, v, at) for v in reversed(visitors)]),
        )

    holders = await fans(kit, cohort.id)
    assert sorted(holders) == visitors
    fan_refs = await kit.rows(
        select(events_t.c.event_id, events_t.c.member_ref).where(events_t.c.type == "fan.locked")
    )
    ref_of = {ann.user_id: ann_link.link.member_ref, bob.user_id: bob_link.link.member_ref}
    assert sorted((r.event_id, r.member_ref) for r in fan_refs) == sorted(
        (f"fan:{cohort.id}:{v}", ref_of[holders[v]]) for v in visitors
    )
    assert len(await events(kit, "link.clicked")) == 2 * len(visitors)


async def test_a_click_is_stored_before_its_redirect_and_counted_after(
    kit: Kit, world: tuple[CohortRecord, list[MemberRef]], web: Web
) -> None:
    """Once the visitor has the redirect, the click and the fan lock are in the database
    (a crash now loses neither); the ladder counts them afterwards."""
    cohort, (ann, _) = world
    code = (await codes(kit, ann))["invite_fans"]
    web.client.cookies.clear()

    response = await web.client.get(f"/r/{code}", headers={"User-Agent": BROWSER})

    assert response.status_code == 302
    stored = await kit.rows(select(events_t.c.type, events_t.c.state).order_by(events_t.c.id))
    assert [(r.type, r.state) for r in stored] == [
        ("link.clicked", "pending"),
        ("fan.locked", "pending"),
    ]
    assert len(await fans(kit, cohort.id)) == 1
    await web.links.clicks.drain()
    assert {r.state for r in await kit.rows(select(events_t.c.state))} == {"handled"}


async def test_a_click_that_cannot_be_stored_still_redirects(
    kit: Kit,
    world: tuple[CohortRecord, list[MemberRef]],
    web: Web,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, (ann, _) = world
    code = (await codes(kit, ann))["invite_fans"]
    await web.visit(code)  # the link is looked up (and remembered) while all is well

    async def down(clicks: object) -> None:
        raise ConnectionError("database went away")

    monkeypatch.setattr(web.links.clicks, "_record", down)
    response = await web.visit(code)

    assert response.status_code == 302 and response.headers["location"] == JOIN
    assert await kit.count(events_t, events_t.c.type == "link.clicked") == 1  # the first
