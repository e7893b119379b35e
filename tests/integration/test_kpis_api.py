"""The KPIs on SQLite and PostgreSQL: rollups kept current by what members do, the
routes that read them (a cohort's funnel and days, the funnel over a choice, regions in
a week, leaders, red flags), and ``funnelbot stats reconcile``."""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import select, update
from typer.testing import CliRunner

from bot.cli import app as cli_app
from funnels.kernel.stages import Stage
from funnels.ops.board import FiguresBoard
from funnels.ops.keys import CreateApiKey
from funnels.ops.kpis import iso_week
from funnels.people.regions import AddRegion
from storage.migrate import alembic_config, upgrade_async
from storage.tables import activity_days, funnel_days
from tests.support.api import api_client, problem
from tests.support.funnel_kit import START, WARMUP_CHAT, Kit, warmup_at

PITCH = warmup_at(2, "20:00")
STAGES = [s.label for s in Stage]


@pytest.fixture(params=["database", "board"])
async def api(kit: Kit, request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """The API of an operator (``ops-sea``), its figures read from the database, or from
    a figures board read again before each request: every test here holds for both."""
    _, key = await CreateApiKey(kit.deps)("ops-sea")
    board = FiguresBoard(kit.deps, every=1, sweep=1) if request.param == "board" else None
    async with api_client(kit.store.engine, kit.deps, key, board) as client:
        yield client


async def _lived_a_little(kit: Kit) -> dict[str, Any]:
    """A SEA cohort (target: two a week) led by a leader: ten join on day 1, two write
    that day, one on day 2, four reply to the pitch, one of them goes on to sell."""
    sea = await AddRegion(kit.deps)("SEA", "South-East Asia", "Asia/Singapore", 2)
    await AddRegion(kit.deps)("LATAM", "Latin America", "America/Bogota", 1)
    (leader,) = await kit.users(1)
    cohort = await kit.start(region_id=sea.id, leader=leader)
    refs = await kit.members(10)
    kit.clock.set(warmup_at(1, "12:00"))
    chatter = kit.chatter()
    await chatter(WARMUP_CHAT, {refs[0].telegram_id: 3, refs[1].telegram_id: 1})
    kit.clock.set(warmup_at(2, "09:00"))
    await chatter(WARMUP_CHAT, {refs[0].telegram_id: 2})
    await kit.run_until(PITCH)
    kit.clock.set(PITCH + timedelta(minutes=1))
    for ref in refs[:4]:
        assert await kit.reply()(WARMUP_CHAT, ref.user_id, "1") == "recorded"
    await kit.force_stage(cohort.id, refs[0].user_id, Stage.SOLD)
    return {"cohort": cohort, "refs": refs, "leader": leader}


async def test_a_cohorts_funnel_follows_what_its_members_do(
    kit: Kit, api: httpx.AsyncClient
) -> None:
    world = await _lived_a_little(kit)
    cohort = world["cohort"]
    answer = await api.get(f"/api/v1/cohorts/{cohort.id}/funnel")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    members = {line["stage"]: line["members"] for line in body["stages"]}
    assert members == {
        "joined": 10,
        "engaged": 4,
        "replied": 4,
        "admitted": 1,
        "tasked": 1,
        "sold": 1,
        "shopkeeper": 0,
        "supervisor": 0,
    }
    lines = {line["stage"]: line for line in body["stages"]}
    assert lines["joined"]["from_previous"] is None and lines["replied"]["from_joined"] == 0.4
    assert lines["admitted"]["from_previous"] == 0.25
    assert lines["shopkeeper"]["from_previous"] == 0.0
    assert lines["supervisor"]["from_previous"] is None
    assert (body["cohort_id"], body["code"], body["cohorts"]) == (cohort.id, cohort.code, 1)
    assert body["reply_rate"] == 0.4
    assert (body["currency"], body["spent_minor"], body["cost_per_sold_minor"]) == ("USD", 0, 0)
    async with kit.store.transaction() as tx:  # two rewards' worth spent
        await tx.cohorts.reserve(cohort.id, 101)
        await tx.commit()
    await kit.force_stage(cohort.id, world["refs"][1].user_id, Stage.SOLD)
    costs = (await api.get(f"/api/v1/cohorts/{cohort.id}/funnel")).json()
    assert (costs["spent_minor"], costs["cost_per_sold_minor"]) == (101, 51)  # 50.5, up
    as_csv = await api.get(f"/api/v1/cohorts/{cohort.id}/funnel", params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [(r["stage"], int(r["members"])) for r in rows] == [
        (line["stage"], line["members"]) for line in costs["stages"]
    ]


async def test_a_cohorts_days_show_who_entered_what_and_who_wrote(
    kit: Kit, api: httpx.AsyncClient
) -> None:
    world = await _lived_a_little(kit)
    answer = await api.get(f"/api/v1/cohorts/{world['cohort'].id}/days")
    assert answer.status_code == 200, answer.text
    days = answer.json()["items"]
    assert [(d["day"], d["number"]) for d in days] == [
        (START.isoformat(), 1),
        ((START + timedelta(days=1)).isoformat(), 2),
    ]
    first, second = days
    assert (first["joined"], first["engaged"], first["replied"]) == (10, 2, 0)
    assert (first["messages"], first["writers"]) == (4, 2)
    assert (second["joined"], second["engaged"], second["replied"]) == (0, 2, 4)
    assert (second["admitted"], second["sold"], second["messages"], second["writers"]) == (
        1,
        1,
        2,
        1,
    )
    as_csv = await api.get(f"/api/v1/cohorts/{world['cohort'].id}/days", params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [(r["number"], r["replied"], r["messages"]) for r in rows] == [
        ("1", "0", "4"),
        ("2", "4", "2"),
    ]


async def test_the_funnel_over_a_choice_of_cohorts(kit: Kit, api: httpx.AsyncClient) -> None:
    world = await _lived_a_little(kit)
    other = await kit.start(chat=None)  # no region, nobody in it
    everything = (await api.get("/api/v1/funnel")).json()
    assert everything["cohorts"] == 2 and everything["stages"][0]["members"] == 10
    sea = (await api.get("/api/v1/funnel", params={"region": "sea"})).json()
    assert sea["cohorts"] == 1 and sea["reply_rate"] == 0.4
    led = await api.get("/api/v1/funnel", params={"leader": world["leader"].telegram_id})
    assert led.json()["cohorts"] == 1
    nobody = (await api.get("/api/v1/funnel", params={"region": "MARS"})).json()
    assert nobody["cohorts"] == 0 and nobody["reply_rate"] is None
    assert all(line["members"] == 0 for line in nobody["stages"])
    started = {"from": START.isoformat(), "to": START.isoformat(), "status": "running"}
    assert (await api.get("/api/v1/funnel", params=started)).json()["cohorts"] == 2
    assert other.id != world["cohort"].id
    backwards = await api.get("/api/v1/funnel", params={"from": "2026-03-05", "to": "2026-03-01"})
    assert problem(backwards, 422)["errors"][0]["field"] == "query.from"


async def test_regions_in_a_week_against_their_target(kit: Kit, api: httpx.AsyncClient) -> None:
    await _lived_a_little(kit)
    week = iso_week(START)
    answer = await api.get("/api/v1/regions/kpi", params={"week": week})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["week"] == week
    regions = {r["region"]: r for r in body["items"]}
    sea, latam = regions["SEA"], regions["LATAM"]
    assert (sea["launched"], sea["weekly_target"], sea["behind"]) == (1, 2, True)
    assert (sea["joined"], sea["replied"], sea["admitted"], sea["sold"]) == (10, 4, 1, 1)
    assert sea["capacity_fill"] == round(10 / sea["capacity"], 4) and sea["reply_rate"] == 0.4
    assert (latam["launched"], latam["joined"], latam["capacity_fill"]) == (0, 0, None)
    next_week = iso_week(START + timedelta(days=7))
    later = (await api.get("/api/v1/regions/kpi", params={"week": next_week})).json()
    assert all(r["launched"] == 0 for r in later["items"])
    one = (await api.get("/api/v1/regions/kpi", params={"week": week, "region": "sea"})).json()
    assert [r["region"] for r in one["items"]] == ["SEA"]
    default = (await api.get("/api/v1/regions/kpi")).json()
    assert default["week"] == iso_week(kit.clock.now().date())
    as_csv = await api.get("/api/v1/regions/kpi", params={"week": week, "format": "csv"})
    rows = {r["region"]: r for r in csv.DictReader(io.StringIO(as_csv.text))}
    assert rows["SEA"]["behind"] == "True" and rows["SEA"]["joined"] == "10"
    for bad in ("2026-W54", "2026-47", "W47", "2026-W4"):
        refused = await api.get("/api/v1/regions/kpi", params={"week": bad})
        assert problem(refused, 422)["errors"][0]["field"] == "query.week", bad


async def test_leaders_and_the_lines_of_their_graduates(kit: Kit, api: httpx.AsyncClient) -> None:
    world = await _lived_a_little(kit)
    answer = await api.get("/api/v1/leaders")
    assert answer.status_code == 200, answer.text
    leaders = {line["telegram_id"]: line for line in answer.json()["items"]}
    mine = leaders[world["leader"].telegram_id]
    assert (mine["cohorts"], mine["joined"], mine["sold"], mine["conversion"]) == (1, 10, 1, 0.1)
    assert mine["lines"] == []
    as_csv = await api.get("/api/v1/leaders", params={"format": "csv"})
    header = next(csv.reader(io.StringIO(as_csv.text)))
    assert "lines" not in header and "conversion" in header


async def test_red_flags(kit: Kit, api: httpx.AsyncClient) -> None:
    world = await _lived_a_little(kit)
    quiet = await kit.start(chat=None, code="QUIET")  # its pitch never opened
    answer = await api.get("/api/v1/flags")
    assert answer.status_code == 200, answer.text
    flags = {(f["kind"], f["region"]) for f in answer.json()["items"]}
    assert ("region_behind", "SEA") in flags  # 1 of 2 this week
    assert ("region_behind", "LATAM") in flags
    assert not any(kind == "low_reply" for kind, _ in flags)  # 40% replied
    # Four replies in forty is 10%: not under it. One more silent member is.
    await kit.members(30)
    flagged = (await api.get("/api/v1/flags")).json()["items"]
    assert not [f for f in flagged if f["kind"] == "low_reply"]
    await kit.members(1)
    flagged = (await api.get("/api/v1/flags")).json()["items"]
    low = [f for f in flagged if f["kind"] == "low_reply"]
    assert [(f["cohort_id"], f["cohort_code"], f["figure"]) for f in low] == [
        (world["cohort"].id, world["cohort"].code, round(4 / 41, 4))
    ]
    assert "4 of 41 members replied" in low[0]["detail"]
    assert quiet.id not in {f["cohort_id"] for f in flagged}
    as_csv = await api.get("/api/v1/flags", params={"format": "csv"})
    kinds = [r["kind"] for r in csv.DictReader(io.StringIO(as_csv.text))]
    assert sorted(kinds) == sorted(f["kind"] for f in flagged)


async def test_unknown_cohorts_are_404s(api: httpx.AsyncClient) -> None:
    for path in ("/api/v1/cohorts/99/funnel", "/api/v1/cohorts/99/days"):
        assert "no cohort 99" in problem(await api.get(path), 404)["detail"]
    assert problem(await api.get("/api/v1/cohorts/0/funnel"), 422)


# ------------------------------------------------------------------ reconcile


def _reconcile(*args: str) -> Any:
    return CliRunner().invoke(cli_app, ["stats", "reconcile", *args])


async def test_reconcile_proves_the_rollups_and_repairs_them(
    cli: Kit, api: httpx.AsyncClient
) -> None:
    kit = cli
    world = await _lived_a_little(kit)
    cohort_id = world["cohort"].id
    fine = await asyncio.to_thread(_reconcile, "--check")
    assert fine.exit_code == 0, fine.output
    assert "1 cohort(s) checked: the rollups equal the recount" in fine.stdout
    before = (await api.get(f"/api/v1/cohorts/{cohort_id}/funnel")).json()
    days_before = (await api.get(f"/api/v1/cohorts/{cohort_id}/days")).json()
    # Drift: a lost count and a doubled day of messages.
    async with kit.store.transaction() as tx:
        await tx.conn.execute(
            update(funnel_days)
            .where(funnel_days.c.cohort_id == cohort_id, funnel_days.c.stage == int(Stage.REPLIED))
            .values(members=funnel_days.c.members - 1)
        )
        await tx.conn.execute(
            update(activity_days)
            .where(activity_days.c.cohort_id == cohort_id)
            .values(messages=activity_days.c.messages * 2)
        )
        await tx.commit()
    drifted = (await api.get(f"/api/v1/cohorts/{cohort_id}/funnel")).json()
    assert drifted["reply_rate"] == 0.3
    checked = await asyncio.to_thread(_reconcile, "--check")
    assert checked.exit_code == 1
    assert f"cohort {cohort_id}: 1 funnel row(s), 2 activity row(s) off" in checked.stdout
    assert (await api.get(f"/api/v1/cohorts/{cohort_id}/funnel")).json() == drifted  # unchanged
    repaired = await asyncio.to_thread(_reconcile)
    assert repaired.exit_code == 0 and "1 repaired" in repaired.stdout
    assert (await api.get(f"/api/v1/cohorts/{cohort_id}/funnel")).json() == before
    assert (await api.get(f"/api/v1/cohorts/{cohort_id}/days")).json() == days_before
    again = await asyncio.to_thread(_reconcile, "--check")
    assert again.exit_code == 0


async def test_the_migration_counts_the_members_already_there(
    kit: Kit, db_url: str, api: httpx.AsyncClient
) -> None:
    world = await _lived_a_little(kit)
    cohort_id = world["cohort"].id
    before = (await api.get(f"/api/v1/cohorts/{cohort_id}/funnel")).json()
    days = (await api.get(f"/api/v1/cohorts/{cohort_id}/days")).json()
    await kit.store.engine.dispose()
    await asyncio.to_thread(command.downgrade, alembic_config(db_url), "0009")
    await upgrade_async(db_url)
    assert (await api.get(f"/api/v1/cohorts/{cohort_id}/funnel")).json() == before
    assert (await api.get(f"/api/v1/cohorts/{cohort_id}/days")).json() == days
    rows = await kit.rows(select(funnel_days.c.members).where(funnel_days.c.cohort_id == cohort_id))
    assert sum(r.members for r in rows) == sum(line["members"] for line in before["stages"])


# ------------------------------------------------------------------ A/B variants


async def test_a_pitch_with_variants_sends_each_cohort_its_arm_and_compares_them(
    kit: Kit, api: httpx.AsyncClient
) -> None:
    from funnels.kernel.messaging import ScriptPost
    from funnels.scripts.loader import load_script_text
    from funnels.scripts.variants import cohort_arm
    from tests.support.funnel_kit import script_text

    line = '        text: "Reply 1 to join the task group."\n'
    text = script_text().replace(
        line,
        line + '        variants: [{id: story, weight: 1, text: "Reply 1 and start tomorrow."}]\n',
    )
    loaded = load_script_text(text, "ab.yaml")
    pitch = loaded.script.step("d2_pitch").pitch
    assert pitch is not None and len(pitch.variants) == 1
    cohorts = [await kit.start(chat=-100_500 - i, code=f"AB{i}", loaded=loaded) for i in range(4)]
    await kit.run_until(PITCH + timedelta(minutes=1))
    sent = {
        m.chat_id: m.message.text
        for m in kit.messenger.sent
        if isinstance(m.message, ScriptPost) and m.message.text.startswith("Reply 1")
    }
    for c in cohorts:
        arm = cohort_arm(pitch, c.code, "d2_pitch")
        assert sent[c.warmup_chat_id] == arm.text
        outcome = (await kit.step(c.id, "d2_pitch")).outcome or {}
        assert outcome["variant"] == arm.id
    answer = await api.get("/api/v1/experiments")
    assert answer.status_code == 200, answer.text
    [experiment] = answer.json()["items"]
    assert (experiment["script_id"], experiment["step_key"], experiment["kind"]) == (
        "mini-line",
        "d2_pitch",
        "pitch",
    )
    by_arm = {a["arm"]: a["cohorts"] for a in experiment["arms"]}
    expected = Counter(cohort_arm(pitch, c.code, "d2_pitch").id for c in cohorts)
    assert by_arm == {"a": expected["a"], "story": expected["story"]}
    assert experiment["verdict"] == "too_small" and "too few cohorts" in experiment["detail"]
    as_csv = await api.get("/api/v1/experiments", params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [(r["step_key"], r["arm"]) for r in rows] == [("d2_pitch", "a"), ("d2_pitch", "story")]
    none = (await api.get("/api/v1/experiments", params={"region": "NOWHERE"})).json()
    assert none["items"] == []


async def test_dates_are_written_as_dates_not_numbers(api: httpx.AsyncClient) -> None:
    for path in ("/api/v1/cohorts", "/api/v1/funnel", "/api/v1/experiments"):
        for name, value in (("to", "0"), ("from", "86400"), ("from", "1764028800"), ("to", "3/1")):
            refused = await api.get(path, params={name: value})
            body = problem(refused, 422)
            assert body["errors"][0]["field"] == f"query.{name}", (path, value)
            assert "YYYY-MM-DD" in body["detail"]
        assert (await api.get(path, params={"from": "2026-03-01"})).status_code == 200
