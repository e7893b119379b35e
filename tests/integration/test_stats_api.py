"""The stats API's door and its first routes, on SQLite and PostgreSQL: API keys (made,
listed, revoked, only their hash kept), Bearer checks, RFC 9457 problems for every
error, and the cohorts (filters, cursor pages, CSV)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app as cli_app
from funnels.deps import Deps
from funnels.kernel.refusals import Refused
from funnels.ops.keys import Authenticate, CreateApiKey, ListApiKeys, RevokeApiKey
from funnels.people.regions import AddRegion
from storage.db import create_engine
from storage.tables import api_keys
from storage.uow import SqlStore
from tests.support.api import PROBLEM, api_client, problem
from tests.support.funnel_kit import Kit

# ------------------------------------------------------------------ keys


async def test_a_key_is_shown_once_and_only_its_hash_is_kept(kit: Kit) -> None:
    record, key = await CreateApiKey(kit.deps)("dashboard")
    assert key.startswith("fbk_") and len(key) >= 40
    assert record.prefix == key[:12] and record.revoked_at is None
    stored = (await kit.rows(select(api_keys)))[0]
    assert key not in {str(v) for v in stored._mapping.values()}
    assert (await Authenticate(kit.deps)(key)) == record
    assert [k.last_used_at for k in await ListApiKeys(kit.deps)()] == [kit.clock.now()]


async def test_names_are_checked_and_unique_among_active_keys(kit: Kit) -> None:
    await CreateApiKey(kit.deps)("ci")
    with pytest.raises(Refused) as taken:
        await CreateApiKey(kit.deps)(" ci ")
    assert taken.value.code == "key_exists"
    for bad in ("", "   ", "x" * 65, "tab\there"):
        with pytest.raises(Refused) as refused:
            await CreateApiKey(kit.deps)(bad)
        assert refused.value.code == "bad_key_name"
    assert [k.name for k in await ListApiKeys(kit.deps)()] == ["ci"]


async def test_a_revoked_key_is_refused_at_once_and_its_name_is_free_again(kit: Kit) -> None:
    old, old_key = await CreateApiKey(kit.deps)("ci")
    revoked = await RevokeApiKey(kit.deps)("ci")
    assert revoked.id == old.id and revoked.revoked_at == kit.clock.now()
    assert await Authenticate(kit.deps)(old_key) is None
    with pytest.raises(Refused) as again:
        await RevokeApiKey(kit.deps)("ci")
    assert again.value.code == "unknown_key"
    new, new_key = await CreateApiKey(kit.deps)("ci")
    assert (await Authenticate(kit.deps)(new_key)) is not None
    listed = await ListApiKeys(kit.deps)()
    assert [(k.id, k.revoked_at is not None) for k in listed] == [(old.id, True), (new.id, False)]


async def test_use_is_noted_to_the_minute_not_on_every_request(kit: Kit) -> None:
    _, key = await CreateApiKey(kit.deps)("ci")
    first = kit.clock.now()
    authenticate = Authenticate(kit.deps)
    assert (await authenticate(key)) is not None
    kit.clock.advance(timedelta(seconds=30))
    assert (await authenticate(key)) is not None
    assert [k.last_used_at for k in await ListApiKeys(kit.deps)()] == [first]
    kit.clock.advance(timedelta(seconds=31))
    assert (await authenticate(key)) is not None
    assert [k.last_used_at for k in await ListApiKeys(kit.deps)()] == [kit.clock.now()]


async def test_keys_that_are_not_keys_are_refused(kit: Kit) -> None:
    _, key = await CreateApiKey(kit.deps)("ci")
    authenticate = Authenticate(kit.deps)
    for other in ("", key[:-1], key + "x", key.upper(), "fbk_" + "é" * 40, "x" * 5000):
        assert await authenticate(other) is None


def test_the_command_line_makes_lists_and_revokes_keys(cli: Kit) -> None:
    runner = CliRunner()
    made = runner.invoke(cli_app, ["apikey", "create", "ops"])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    assert key.startswith("fbk_") and "not shown again" in made.stderr
    listed = runner.invoke(cli_app, ["apikey", "list"])
    assert listed.exit_code == 0 and "ops" in listed.stdout and key not in listed.stdout
    assert key[:12] in listed.stdout and "active" in listed.stdout
    twice = runner.invoke(cli_app, ["apikey", "create", "ops"])
    assert twice.exit_code == 1 and "exists already" in twice.stderr
    gone = runner.invoke(cli_app, ["apikey", "revoke", "ops"])
    assert gone.exit_code == 0 and "revoked" in gone.stdout
    unknown = runner.invoke(cli_app, ["apikey", "revoke", "ops"])
    assert unknown.exit_code == 1 and "no key named 'ops'" in unknown.stderr
    assert "revoked" in runner.invoke(cli_app, ["apikey", "list"]).stdout


# ------------------------------------------------------------------ HTTP


async def test_no_key_a_wrong_key_and_a_revoked_key_are_401s(
    kit: Kit, api: httpx.AsyncClient
) -> None:
    bare = await api.get("/api/v1/cohorts", headers={"Authorization": ""})
    assert "apikey create" in problem(bare, 401)["detail"]
    assert bare.headers["www-authenticate"] == 'Bearer realm="funnelbot"'
    for value in ("Bearer fbk_nope", "Basic dXNlcjpwYXNz", "fbk_x", "Bearer "):
        wrong = await api.get("/api/v1/cohorts", headers={"Authorization": value})
        problem(wrong, 401)
    _, key = await CreateApiKey(kit.deps)("short-lived")
    fine = await api.get("/api/v1/cohorts", headers={"Authorization": f"Bearer {key}"})
    assert fine.status_code == 200
    await RevokeApiKey(kit.deps)("short-lived")
    revoked = await api.get("/api/v1/cohorts/1", headers={"Authorization": f"Bearer {key}"})
    assert "revoked" in problem(revoked, 401)["detail"]
    assert 'error="invalid_token"' in revoked.headers["www-authenticate"]


async def _world(kit: Kit) -> dict[str, Any]:
    """Five cohorts: three in SEA (one led by a leader, one paused), two in LATAM."""
    sea = await AddRegion(kit.deps)("SEA", "South-East Asia", "Asia/Singapore")
    latam = await AddRegion(kit.deps)("LATAM", "Latin America", "America/Bogota")
    (leader,) = await kit.users(1)
    cohorts = [
        await kit.start(chat=None, region_id=sea.id, leader=leader),
        await kit.start(chat=None, region_id=sea.id),
        await kit.start(chat=None, region_id=latam.id),
        await kit.start(chat=None, region_id=sea.id),
        await kit.start(chat=None, region_id=latam.id),
    ]
    async with kit.store.transaction() as tx:
        await tx.cohorts.set_status(cohorts[3].id, "paused", "ops asked", kit.clock.now())
        await tx.commit()
    return {"cohorts": cohorts, "leader": leader}


async def test_cohorts_newest_first_with_every_filter(kit: Kit, api: httpx.AsyncClient) -> None:
    world = await _world(kit)
    ids = [c.id for c in world["cohorts"]]
    got = (await api.get("/api/v1/cohorts")).json()
    assert [c["id"] for c in got["items"]] == ids[::-1] and got["next_cursor"] is None
    first = next(c for c in got["items"] if c["id"] == ids[0])
    assert first["region"] == "SEA" and first["code"] == world["cohorts"][0].code
    assert first["leader_telegram_id"] == world["leader"].telegram_id
    assert first["budget_minor"] == world["cohorts"][0].budget_minor

    async def chosen(**params: Any) -> list[int]:
        answer = await api.get("/api/v1/cohorts", params=params)
        assert answer.status_code == 200, answer.text
        return [c["id"] for c in answer.json()["items"]]

    assert await chosen(region="sea") == [ids[3], ids[1], ids[0]]
    assert await chosen(region="LATAM", status="running") == [ids[4], ids[2]]
    assert await chosen(status="paused") == [ids[3]]
    assert await chosen(leader=world["leader"].telegram_id) == [ids[0]]
    assert await chosen(code=world["cohorts"][2].code.lower()) == [ids[2]]
    start = world["cohorts"][0].start_date.isoformat()
    assert await chosen(**{"from": start, "to": start}) == ids[::-1]
    assert await chosen(**{"to": "2000-01-01"}) == []
    assert await chosen(region="NOWHERE") == []


async def test_pages_follow_the_cursor_and_each_cohort_comes_once(
    kit: Kit, api: httpx.AsyncClient
) -> None:
    ids = [c.id for c in (await _world(kit))["cohorts"]]
    seen: list[int] = []
    params: dict[str, Any] = {"limit": 2, "region": "SEA"}
    pages = 0
    while True:
        answer = await api.get("/api/v1/cohorts", params=params)
        body = answer.json()
        seen += [c["id"] for c in body["items"]]
        pages += 1
        if body["next_cursor"] is None:
            assert "link" not in answer.headers
            break
        assert (
            body["next_cursor"] in answer.headers["link"] and 'rel="next"' in answer.headers["link"]
        )
        params["cursor"] = body["next_cursor"]
    assert seen == [ids[3], ids[1], ids[0]] and pages == 2


async def test_csv_says_what_json_says(kit: Kit, api: httpx.AsyncClient) -> None:
    await _world(kit)
    as_json = (await api.get("/api/v1/cohorts")).json()["items"]
    answer = await api.get("/api/v1/cohorts", params={"format": "csv"})
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["id"] for r in rows] == [str(c["id"]) for c in as_json]
    assert rows[0]["code"] == as_json[0]["code"] and rows[0]["region"] == as_json[0]["region"]
    assert rows[0]["status_reason"] == (as_json[0]["status_reason"] or "")
    one = await api.get(f"/api/v1/cohorts/{as_json[0]['id']}", params={"format": "csv"})
    assert list(csv.DictReader(io.StringIO(one.text))) == rows[:1]


async def test_one_cohort_and_a_missing_one(kit: Kit, api: httpx.AsyncClient) -> None:
    cohort = (await _world(kit))["cohorts"][3]
    answer = await api.get(f"/api/v1/cohorts/{cohort.id}")
    body = answer.json()
    assert body["id"] == cohort.id and body["status"] == "paused"
    assert body["status_reason"] == "ops asked" and body["generation"] == 1
    assert body["admission"] == "requests"
    assert (
        f"no cohort {cohort.id + 100}"
        in problem(await api.get(f"/api/v1/cohorts/{cohort.id + 100}"), 404)["detail"]
    )


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/cohorts?limit=0", "query.limit"),
        ("/api/v1/cohorts?limit=501", "query.limit"),
        ("/api/v1/cohorts?status=done", "query.status"),
        ("/api/v1/cohorts?from=yesterday", "query.from"),
        ("/api/v1/cohorts?from=2026-12-01&to=2026-11-01", "query.from"),
        ("/api/v1/cohorts?leader=-4", "query.leader"),
        ("/api/v1/cohorts?format=xml", "query.format"),
        ("/api/v1/cohorts/abc", "path.cohort_id"),
        ("/api/v1/cohorts/0", "path.cohort_id"),
        ("/api/v1/cohorts/99999999999999999999", "path.cohort_id"),
    ],
)
async def test_bad_parameters_are_422s_naming_the_field(
    api: httpx.AsyncClient, path: str, field: str
) -> None:
    body = problem(await api.get(path), 422)
    assert body["detail"].startswith(field) and body["errors"][0]["field"] == field


@pytest.mark.parametrize("cursor", ["zzz", "LTE", "MA", "YWJj", "=" * 8, "9" * 40])
async def test_a_cursor_this_api_did_not_give_is_a_400(api: httpx.AsyncClient, cursor: str) -> None:
    body = problem(await api.get("/api/v1/cohorts", params={"cursor": cursor}), 400)
    assert body["errors"][0]["field"] == "query.cursor"


async def test_unknown_routes_and_methods_are_problems_too(api: httpx.AsyncClient) -> None:
    assert "/api/v1/nothing" in problem(await api.get("/api/v1/nothing"), 404)["detail"]
    wrong = await api.delete("/api/v1/cohorts")
    assert "DELETE" in problem(wrong, 405)["detail"]


async def test_openapi_documents_the_routes_their_key_and_their_problems(
    api: httpx.AsyncClient,
) -> None:
    document = (await api.get("/openapi.json")).json()
    listing = document["paths"]["/api/v1/cohorts"]["get"]
    assert {"200", "400", "401", "422"} <= set(listing["responses"])
    assert PROBLEM in listing["responses"]["401"]["content"]
    assert "text/csv; charset=utf-8" in listing["responses"]["200"]["content"]
    assert listing["security"] and "api key" in document["components"]["securitySchemes"]
    assert document["components"]["schemas"]["Cohort"]["examples"]
    assert {p["name"] for p in listing["parameters"]} >= {"region", "from", "to", "cursor"}


async def _cohorts_over(kit: Kit, url: str) -> httpx.Response:
    """``GET /api/v1/cohorts`` from an app over the database at ``url`` (a made-up key:
    the database answers first)."""
    engine = create_engine(url)
    try:
        deps = Deps(SqlStore(engine), kit.messenger, kit.clock)
        async with api_client(engine, deps, "fbk_" + "a" * 43) as client:
            return await client.get("/api/v1/cohorts")
    finally:
        await engine.dispose()


async def test_a_database_that_cannot_be_reached_is_a_503_not_a_crash(
    kit: Kit, tmp_path: Any
) -> None:
    answer = await _cohorts_over(kit, f"sqlite+aiosqlite:///{tmp_path}/missing/folder/funnel.db")
    assert "try again" in problem(answer, 503)["detail"]
    assert answer.headers["retry-after"] == "5"


# ------------------------------------------------------------------ steps


async def test_the_step_timeline_says_what_ran_how_late_and_what_is_in_doubt(
    kit: Kit, api: httpx.AsyncClient
) -> None:
    cohort = await kit.talk_in_doubt()
    statuses = await kit.statuses(cohort.id)
    answer = await api.get(f"/api/v1/cohorts/{cohort.id}/steps")
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert {i["key"]: i["status"] for i in items} == statuses
    due = [i["due_at"] for i in items]
    assert due == sorted(due)
    doubt = next(i for i in items if i["key"] == "d1_talk")
    assert doubt["status"] == "unknown" and doubt["error"] and doubt["late_seconds"] is not None
    # The tick at 10:00 started what fell due before it, as late as that.
    started = [i for i in items if i["started_at"] is not None]
    assert started and all(i["late_seconds"] >= 0 for i in started)
    assert all(i["late_seconds"] is None for i in items if i["started_at"] is None)

    async def keys(status: str) -> list[str]:
        got = await api.get(f"/api/v1/cohorts/{cohort.id}/steps", params={"status": status})
        return [i["key"] for i in got.json()["items"]]

    assert await keys("unknown") == ["d1_talk"]
    assert await keys("held") == [k for k, v in statuses.items() if v == "held"]
    as_csv = await api.get(f"/api/v1/cohorts/{cohort.id}/steps", params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["key"] for r in rows] == [i["key"] for i in items]
    assert next(r for r in rows if r["key"] == "d1_talk")["status"] == "unknown"


async def test_steps_of_a_missing_cohort_or_a_bad_status(kit: Kit, api: httpx.AsyncClient) -> None:
    cohort = await kit.start()
    assert (
        f"no cohort {cohort.id + 1}"
        in problem(await api.get(f"/api/v1/cohorts/{cohort.id + 1}/steps"), 404)["detail"]
    )
    body = problem(await api.get(f"/api/v1/cohorts/{cohort.id}/steps?status=lost"), 422)
    assert body["errors"][0]["field"] == "query.status"
    pending = await api.get(f"/api/v1/cohorts/{cohort.id}/steps", params={"status": "pending"})
    assert len(pending.json()["items"]) == len(await kit.statuses(cohort.id))


async def test_a_database_without_the_schema_is_a_logged_500_not_a_503(
    kit: Kit, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    answer = await _cohorts_over(kit, f"sqlite+aiosqlite:///{tmp_path}/never-migrated.db")
    assert "it is logged" in problem(answer, 500)["detail"]
    assert "no such table" in caplog.text


# ------------------------------------------------------------------ envelopes


async def test_envelopes_say_what_was_grabbed_and_how_fast(
    kit: Kit, api: httpx.AsyncClient
) -> None:
    from tests.support.funnel_kit import warmup_at

    cohort = await kit.start()
    refs = await kit.members(4)
    await kit.run_until(warmup_at(1, "11:00"))
    url = f"/api/v1/cohorts/{cohort.id}/envelopes"
    assert (await api.get(url)).json() == {"items": []}  # nothing opened yet
    opened = warmup_at(1, "12:00")
    await kit.tick(opened)
    envelope_id = await kit.envelope_id(cohort.id)
    kit.clock.set(opened + timedelta(seconds=5))
    await kit.tap(envelope_id, refs[0].user_id, close=False)
    kit.clock.set(opened + timedelta(seconds=9))
    await kit.tap(envelope_id, refs[1].user_id, close=False)
    (half,) = (await api.get(url)).json()["items"]
    assert (half["step_key"], half["shares"], half["claimed"]) == ("d1_envelope", 3, 2)
    assert half["grab_rate"] == round(2 / 3, 4) and half["emptied_in_seconds"] is None
    assert half["total_minor"] == 100 and half["currency"] == "USD"
    kit.clock.set(opened + timedelta(seconds=30))
    await kit.tap(envelope_id, refs[2].user_id, close=False)
    (full,) = (await api.get(url)).json()["items"]
    assert full["claimed"] == 3 and full["grab_rate"] == 1.0
    assert full["claimed_minor"] == 100 and full["emptied_in_seconds"] == 30
    rows = list(csv.DictReader(io.StringIO((await api.get(url, params={"format": "csv"})).text)))
    assert [(r["step_key"], r["emptied_in_seconds"]) for r in rows] == [("d1_envelope", "30")]
    missing = await api.get(f"/api/v1/cohorts/{cohort.id + 5}/envelopes")
    assert f"no cohort {cohort.id + 5}" in problem(missing, 404)["detail"]


# ------------------------------------------------------------------ tasks


async def test_tasks_say_who_finished_what_and_where_the_rewards_went(
    kit: Kit, api: httpx.AsyncClient
) -> None:
    from tests.support.funnel_kit import TASK_CHAT, task_at

    cohort = await kit.start()
    async with kit.store.transaction() as tx:
        await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
        await tx.commit()
    refs = await kit.admitted(cohort, 5)
    kit.clock.set(task_at(1, "12:00"))
    # Four members lock three fans each (0.50 each: the 1.70 budget pays three, owes
    # the fourth); the fifth locks one.
    for n, member in enumerate(refs):
        fans = 3 if n < 4 else 1
        at = task_at(1, "10:00")
        events = [kit.event("fan.locked", at + timedelta(minutes=i), member) for i in range(fans)]
        await kit.ingest()("platform", events)
    answer = await api.get(f"/api/v1/cohorts/{cohort.id}/tasks")
    assert answer.status_code == 200, answer.text
    items = {t["task_id"]: t for t in answer.json()["items"]}
    assert list(items) == ["invite_fans", "visitors", "first_sale"]  # the script's order
    fans = items["invite_fans"]
    assert (fans["started"], fans["completed"], fans["admitted"]) == (5, 4, 5)
    assert fans["completion_rate"] == 0.8 and fans["reward_minor"] == 50
    assert (fans["pending"], fans["pending_minor"], fans["owed"], fans["owed_minor"]) == (
        3,
        150,
        1,
        50,
    )
    assert (fans["delivered"], fans["parked"]) == (0, 0)
    assert (items["visitors"]["completed"], items["visitors"]["reward_minor"]) == (0, None)
    assert items["first_sale"]["unlocks_at"] > fans["unlocks_at"]
    as_csv = await api.get(f"/api/v1/cohorts/{cohort.id}/tasks", params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [(r["task_id"], r["completed"], r["owed"]) for r in rows] == [
        ("invite_fans", "4", "1"),
        ("visitors", "0", "0"),
        ("first_sale", "0", "0"),
    ]
    missing = await api.get(f"/api/v1/cohorts/{cohort.id + 9}/tasks")
    assert f"no cohort {cohort.id + 9}" in problem(missing, 404)["detail"]


def test_if_none_makes_a_key_only_while_none_is_active(cli: Kit) -> None:
    runner = CliRunner()
    first = runner.invoke(cli_app, ["apikey", "create", "local", "--if-none"])
    assert first.exit_code == 0 and first.stdout.strip().startswith("fbk_")
    again = runner.invoke(cli_app, ["apikey", "create", "local", "--if-none"])
    assert (again.exit_code, again.stdout) == (0, "")
    assert runner.invoke(cli_app, ["apikey", "revoke", "local"]).exit_code == 0
    fresh = runner.invoke(cli_app, ["apikey", "create", "local", "--if-none"])
    assert fresh.stdout.strip().startswith("fbk_") and fresh.stdout != first.stdout


def test_serve_hands_the_first_start_a_key_that_opens_the_api(tmp_path: Any) -> None:
    """scripts/serve as a newcomer runs it: the key it prints once lets them in."""
    import os
    import subprocess
    import time
    from pathlib import Path

    from tests.support.process import free_port

    root = Path(__file__).resolve().parents[2]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELBOT_")} | {
        "FUNNELBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/serve.db",
        "FUNNELBOT_HTTP_PORT": str(port),
    }

    def start() -> tuple[subprocess.Popen[str], str]:
        log = tmp_path / "serve.log"
        proc = subprocess.Popen(
            [str(root / "scripts" / "serve")],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return proc, log.read_text()
            except httpx.HTTPError:
                time.sleep(0.2)
        proc.terminate()
        raise AssertionError(f"scripts/serve never answered: {log.read_text()}")

    proc, printed = start()
    try:
        key = next(w for w in printed.split() if w.startswith("fbk_"))
        assert "shown this once" in printed
        listed = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/cohorts", headers={"Authorization": f"Bearer {key}"}
        )
        assert listed.status_code == 200 and listed.json() == {"items": [], "next_cursor": None}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    proc, printed = start()  # a second start: the key exists, nothing is printed
    try:
        assert "fbk_" not in printed
    finally:
        proc.terminate()
        proc.wait(timeout=20)
