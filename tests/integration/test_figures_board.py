"""The figures board on SQLite and PostgreSQL: a cohort's funnel answered from memory by
the front door (byte for byte what FastAPI's route answers, with no statement), kept as
fresh as its refreshes, the sweep that finds what other processes changed, keys revoked
and created elsewhere, and the database asked whenever the board cannot answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import delete, event, select, update

from bot.http import app as http_app
from bot.http.app import create_app
from bot.http.rates import KeyRates
from funnels.kernel.stages import Stage
from funnels.ops.board import FiguresBoard
from funnels.ops.keys import CreateApiKey, RevokeApiKey
from funnels.ops.kpis import iso_week
from funnels.ops.ports import CohortFilter
from funnels.people.regions import AddRegion
from storage.tables import api_keys, cohorts
from tests.support.api import problem
from tests.support.funnel_kit import Kit
from tests.support.ticks import Ticks


@pytest.fixture
def ticks() -> Ticks:
    return Ticks(1000.0)


@pytest.fixture
def board(kit: Kit, ticks: Ticks) -> FiguresBoard:
    return FiguresBoard(kit.deps, every=1.0, sweep=1.0, time=ticks)


@pytest.fixture
async def key(kit: Kit) -> str:
    return (await CreateApiKey(kit.deps)("ops"))[1]


@pytest.fixture
async def client(kit: Kit, board: FiguresBoard, key: str) -> AsyncIterator[httpx.AsyncClient]:
    """The service's app with the board (read only when a test says so)."""
    app = create_app(kit.store.engine, deps=kit.deps, board=board)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://funnelbot",
        headers={"Authorization": f"Bearer {key}"},
    ) as c:
        yield c


@contextmanager
def statements(kit: Kit) -> Iterator[list[str]]:
    """The SQL statements run on the kit's engine meanwhile."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sync = kit.store.engine.sync_engine
    event.listen(sync, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(sync, "before_cursor_execute", note)


async def _cohort_with_members(kit: Kit, n: int = 4) -> Any:
    cohort = await kit.start()
    await kit.members(n)
    return cohort


def _members(body: dict[str, Any]) -> dict[str, int]:
    return {line["stage"]: line["members"] for line in body["stages"]}


async def test_a_funnel_comes_from_memory_as_fastapi_would_answer_it(
    kit: Kit, board: FiguresBoard, client: httpx.AsyncClient
) -> None:
    cohort = await _cohort_with_members(kit)
    await board.fill()
    assert board.ready
    with statements(kit) as seen:
        fast = await client.get(f"/api/v1/cohorts/{cohort.id}/funnel")
        again = await client.get(f"/api/v1/cohorts/{cohort.id}/funnel")
    assert fast.status_code == 200 and again.status_code == 200
    assert seen == [], "the board's answer ran statements"
    assert fast.headers["content-type"] == "application/json"
    # A query string goes to FastAPI's route: the same bytes.
    with statements(kit) as seen:
        routed = await client.get(f"/api/v1/cohorts/{cohort.id}/funnel", params={"format": "json"})
    assert routed.status_code == 200
    assert fast.content == routed.content == again.content
    assert _members(fast.json())["joined"] == 4


async def test_the_answer_follows_the_figures_as_the_board_reads_them_again(
    kit: Kit, board: FiguresBoard, client: httpx.AsyncClient
) -> None:
    cohort = await _cohort_with_members(kit)
    refs = await kit.members(2)
    await board.fill()
    before = (await client.get(f"/api/v1/cohorts/{cohort.id}/funnel")).json()
    assert _members(before)["joined"] == 6 and _members(before)["sold"] == 0
    await kit.force_stage(cohort.id, refs[0].user_id, Stage.SOLD)
    # Until the next read, the board answers what it holds …
    held = (await client.get(f"/api/v1/cohorts/{cohort.id}/funnel")).json()
    assert held == before
    await board.refresh()
    after = (await client.get(f"/api/v1/cohorts/{cohort.id}/funnel")).json()
    assert _members(after)["sold"] == 1 and _members(after)["admitted"] == 1


async def test_the_sweep_finds_cohorts_changed_new_and_gone_page_by_page(
    kit: Kit, ticks: Ticks, key: str
) -> None:
    first = await kit.start(chat=-1001, code="SWEEP-1")
    second = await kit.start(chat=-1002, code="SWEEP-2")
    # One cohort a read: a pass through the three takes three reads.
    board = FiguresBoard(kit.deps, every=1.0, sweep=3.0, time=ticks, min_page=1)
    await board.fill()
    assert board.figures(first.id) is not None and board.figures(second.id) is not None
    async with kit.store.transaction() as tx:  # finished (out of the active read) and changed
        await tx.conn.execute(
            update(cohorts)
            .where(cohorts.c.id == second.id)
            .values(status="finished", spent_minor=777)
        )
        await tx.commit()
    third = await kit.start(chat=-1003, code="SWEEP-3")
    seen_at = None
    for n in range(1, 5):
        await board.refresh()
        found = board.figures(second.id)
        if found is not None and found.spent_minor == 777 and board.figures(third.id):
            seen_at = n
            break
    assert seen_at is not None, "a sweep did not find the change and the new cohort"
    async with kit.store.transaction() as tx:  # gone, with everything that refers to it
        for table in reversed(cohorts.metadata.sorted_tables):
            if "cohort_id" in table.c:
                await tx.conn.execute(delete(table).where(table.c.cohort_id == first.id))
        await tx.conn.execute(delete(cohorts).where(cohorts.c.id == first.id))
        await tx.commit()
    for _ in range(4):
        await board.refresh()
    assert board.figures(first.id) is None
    assert [c.code for c in board.chosen(CohortFilter())] == ["SWEEP-2", "SWEEP-3"]


async def test_keys_revoked_or_made_elsewhere_are_seen(
    kit: Kit, board: FiguresBoard, client: httpx.AsyncClient, key: str
) -> None:
    cohort = await _cohort_with_members(kit, 1)
    await board.fill()
    url = f"/api/v1/cohorts/{cohort.id}/funnel"
    newer = (await CreateApiKey(kit.deps)("newer"))[1]  # not on the board yet: asked
    assert (await client.get(url, headers={"Authorization": f"Bearer {newer}"})).status_code == 200
    await RevokeApiKey(kit.deps)("ops")
    await board.refresh()
    refused = problem(await client.get(url), 401)
    assert "revoked" in refused["detail"]
    assert problem(await client.get(url, headers={"Authorization": "Bearer fbk_nope"}), 401)
    assert problem(await client.get(url, headers={"Authorization": ""}), 401)
    assert (await client.get(url, headers={"Authorization": f"Bearer {newer}"})).status_code == 200


async def test_a_key_used_on_the_board_is_stamped_with_the_next_read(
    kit: Kit, board: FiguresBoard, client: httpx.AsyncClient
) -> None:
    cohort = await _cohort_with_members(kit, 1)
    await board.fill()

    async def last_used() -> Any:
        async with kit.store.transaction() as tx:
            return (
                await tx.conn.execute(
                    select(api_keys.c.last_used_at).where(api_keys.c.name == "ops")
                )
            ).scalar_one()

    assert await last_used() is None
    assert (await client.get(f"/api/v1/cohorts/{cohort.id}/funnel")).status_code == 200
    await board.refresh()
    assert await last_used() is not None


async def test_what_the_board_cannot_answer_the_database_does(
    kit: Kit, board: FiguresBoard, client: httpx.AsyncClient, ticks: Ticks
) -> None:
    cohort = await _cohort_with_members(kit)
    url = f"/api/v1/cohorts/{cohort.id}/funnel"
    # Not filled yet: from the database.
    with statements(kit) as seen:
        assert _members((await client.get(url)).json())["joined"] == 4
    assert seen
    await board.fill()
    problem(await client.get("/api/v1/cohorts/999999/funnel"), 404)
    bad = problem(await client.get("/api/v1/cohorts/abc/funnel"), 422)
    assert "cohort_id" in str(bad)
    problem(await client.get("/api/v1/cohorts/0/funnel"), 422)
    problem(await client.get("/api/v1/cohorts/\u0661\u0662/funnel"), 422)
    as_csv = await client.get(url, params={"format": "csv"})
    assert as_csv.status_code == 200 and as_csv.text.startswith("stage,")
    assert (await client.post(url)).status_code == 405
    # A cohort started after the last read is answered, from the database.
    other = await kit.start(chat=-1009, code="LATE-1")
    assert (await client.get(f"/api/v1/cohorts/{other.id}/funnel")).json()["code"] == "LATE-1"
    # No read for longer than the board may be behind: from the database again.
    refs = await kit.members(1)
    await kit.force_stage(cohort.id, refs[0].user_id, Stage.ENGAGED)
    ticks.now += board.stale_after + 1
    assert not board.ready
    with statements(kit) as seen:
        assert _members((await client.get(url)).json())["joined"] == 5
    assert seen


async def until(done: Callable[[], bool]) -> None:
    for _ in range(200):
        if done():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("waited 4 s")


async def test_a_board_that_cannot_read_keeps_trying_and_says_so(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "funnelbot.board")
    board = FiguresBoard(kit.deps, every=0.01, sweep=0.01, stale_after=0.2)
    await kit.start()
    board.start()

    async def rename(old: str, new: str) -> None:
        async with kit.store.transaction() as tx:
            await tx.conn.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")
            await tx.commit()

    try:
        await until(lambda: board.ready)
        await rename("api_keys", "api_keys_away")  # every read fails
        await until(lambda: not board.ready)
        assert caplog.text.count("the figures board could not read the database") == 1
        await rename("api_keys_away", "api_keys")
        await until(lambda: board.ready)
        assert "the figures board reads the database again" in caplog.text
    finally:
        await board.stop()


async def test_a_weeks_regions_come_from_memory_as_fastapi_would_answer_them(
    kit: Kit, board: FiguresBoard, client: httpx.AsyncClient
) -> None:
    await AddRegion(kit.deps)("SEA", "South-East Asia", "Asia/Singapore", 2)
    await AddRegion(kit.deps)("LATAM", "Latin America", "America/Bogota", 1)
    sea = await kit.start(region_id=1)
    await kit.members(3)
    week = iso_week(sea.start_date)
    await board.fill()
    url = "/api/v1/regions/kpi"
    for query in ({"week": week}, {"week": week, "region": "sea "}, {"week": week, "region": ""}):
        with statements(kit) as seen:
            fast = await client.get(url, params=query)
        assert fast.status_code == 200 and seen == [], query
        routed = await client.get(url, params={**query, "format": "json"})
        assert fast.content == routed.content, query
    body = (await client.get(url, params={"week": week})).json()
    assert [(r["region"], r["launched"], r["joined"]) for r in body["items"]] == [
        ("LATAM", 0, 0),
        ("SEA", 1, 3),
    ]
    # This week by default, as FastAPI's route says it.
    with statements(kit) as seen:
        this_week = await client.get(url)
    assert seen == [] and this_week.json()["week"] == iso_week(kit.clock.now().date())
    # Whatever is not a plain week and region is FastAPI's: the same problems as ever.
    for bad in ("", "2026-W60", "2026-47", "\u0662\u0660\u0662\u0666-W01", "2026-W01x"):
        problem(await client.get(url, params={"week": bad}), 422)
    problem(await client.get(url, params={"week": week, "region": "x" * 33}), 422)
    twice = await client.get(f"{url}?week={week}&week=2020-W01")
    assert twice.status_code == 200 and twice.json()["week"] == "2020-W01"
    as_csv = await client.get(url, params={"week": week, "format": "csv"})
    assert as_csv.text.startswith("region,")
    problem(await client.get(url, headers={"Authorization": "Bearer fbk_wrong"}), 401)


async def test_a_key_past_its_rate_is_refused_whichever_route_answers(
    kit: Kit, board: FiguresBoard, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cohort = await _cohort_with_members(kit, 1)
    other = (await CreateApiKey(kit.deps)("other"))[1]
    await board.fill()
    # Time stands still for the buckets: however slow the machine, no token comes back
    # between the requests (at 1 a second one would, past a second).
    monkeypatch.setattr(http_app, "KeyRates", lambda rate: KeyRates(rate, time_source=lambda: 0.0))
    app = create_app(kit.store.engine, deps=kit.deps, board=board, api_rate=1)  # bursts of 2
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://funnelbot") as c:
        ours = {"Authorization": f"Bearer {key}"}
        funnel = f"/api/v1/cohorts/{cohort.id}/funnel"
        assert (await c.get(funnel, headers=ours)).status_code == 200
        assert (await c.get("/api/v1/cohorts", headers=ours)).status_code == 200
        for url in (funnel, "/api/v1/regions/kpi", "/api/v1/cohorts", f"{funnel}?format=csv"):
            refused = problem(await c.get(url, headers=ours), 429)
            assert "the key ops may make 1 requests a second" in refused["detail"], url
        answer = await c.get(funnel, headers=ours)
        assert answer.headers["Retry-After"] == "1"
        theirs = {"Authorization": f"Bearer {other}"}
        assert (await c.get(funnel, headers=theirs)).status_code == 200  # a bucket each


async def test_a_keys_rate_is_one_for_all_processes_sharing_redis(
    kit: Kit, board: FiguresBoard, key: str, redis_url: str
) -> None:
    """Two processes' apps on one Redis: the key's burst of 2 is spent across both (each
    counting alone would let 4 through), on the board's fast route and FastAPI's alike."""
    cohort = await _cohort_with_members(kit, 1)
    await board.fill()
    ours = {"Authorization": f"Bearer {key}"}
    funnel = f"/api/v1/cohorts/{cohort.id}/funnel"
    redis_a, redis_b = Redis.from_url(redis_url), Redis.from_url(redis_url)
    a, b = (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(
                app=create_app(
                    kit.store.engine, deps=kit.deps, board=board, api_rate=1, redis=redis
                ),
                raise_app_exceptions=False,
            ),
            base_url="http://funnelbot",
        )
        for redis in (redis_a, redis_b)
    )
    try:
        assert (await a.get(funnel, headers=ours)).status_code == 200
        assert (await b.get("/api/v1/cohorts", headers=ours)).status_code == 200
        for client in (a, b):
            for url in (funnel, "/api/v1/cohorts"):
                refused = problem(await client.get(url, headers=ours), 429)
                assert "the key ops may make 1 requests a second" in refused["detail"]
    finally:
        await a.aclose()
        await b.aclose()
        await redis_a.aclose()
        await redis_b.aclose()


async def test_a_board_nobody_asks_for_reads_nothing_and_fills_again_when_asked(
    kit: Kit,
) -> None:
    board = FiguresBoard(kit.deps, every=0.01, sweep=0.01, rest_after=0.3)
    cohort = await kit.start()

    def joined() -> int | None:
        figures = board.figures(cohort.id)
        return None if figures is None else figures.stages[Stage.JOINED]

    try:
        with statements(kit) as seen:
            board.start()
            await asyncio.sleep(0.2)
        assert seen == []  # started resting: nobody asked yet
        await until(lambda: board.ready)  # asked: it fills
        assert joined() == 0
        await asyncio.sleep(0.5)  # nobody asks for longer than rest_after
        with statements(kit) as seen:
            await asyncio.sleep(0.2)
        assert seen == []
        refs = await kit.members(2)  # written meanwhile, by this process or another
        assert refs
        assert not board.ready  # a rested board is not used: the database answers
        await until(lambda: board.ready)
        assert joined() == 2
    finally:
        await board.stop()
