"""Ops actions over the HTTP API, on SQLite and PostgreSQL: pause and resume a cohort,
each recorded with the key that asked; refusals are problems and change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx

from bot.http.front import MAX_BODY_BYTES
from tests.support.api import problem
from tests.support.funnel_kit import WARMUP_CHAT, Kit, warmup_at


async def _actions(api: httpx.AsyncClient, cohort_id: int) -> list[tuple[str, str, Any]]:
    answer = await api.get(f"/api/v1/cohorts/{cohort_id}/actions")
    assert answer.status_code == 200, answer.text
    return [(a["action"], a["by"], a["detail"]) for a in answer.json()["items"]]


async def test_a_paused_cohort_runs_nothing_until_it_is_resumed(
    kit: Kit, api: httpx.AsyncClient
) -> None:
    cohort = await kit.start()
    paused = await api.post(f"/api/v1/cohorts/{cohort.id}/pause")
    assert paused.status_code == 200, paused.text
    assert (paused.json()["status"], paused.json()["status_reason"]) == (
        "paused",
        "paused_by_ops",
    )
    assert (await kit.cohort(cohort.id)).status == "paused"
    # Its first steps fall due and the tick passes them by.
    await kit.tick(warmup_at(1, "12:00"))
    assert set((await kit.statuses(cohort.id)).values()) == {"pending"}
    assert kit.messenger.sent == []

    resumed = await api.post(f"/api/v1/cohorts/{cohort.id}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "running"
    assert resumed.json()["status_reason"] is None
    await kit.tick(warmup_at(1, "12:00") + timedelta(minutes=1))
    assert "done" in set((await kit.statuses(cohort.id)).values())
    assert await _actions(api, cohort.id) == [
        ("pause", "api key ops-sea", None),
        ("resume", "api key ops-sea", "was: paused_by_ops"),
    ]


async def test_refusals_are_409s_and_record_nothing(kit: Kit, api: httpx.AsyncClient) -> None:
    cohort = await kit.start()
    not_paused = problem(await api.post(f"/api/v1/cohorts/{cohort.id}/resume"), 409)
    assert "running, not paused" in not_paused["detail"]
    assert (await api.post(f"/api/v1/cohorts/{cohort.id}/pause")).status_code == 200
    twice = problem(await api.post(f"/api/v1/cohorts/{cohort.id}/pause"), 409)
    assert "is paused" in twice["detail"]
    assert [a for a, _, _ in await _actions(api, cohort.id)] == ["pause"]
    async with kit.store.transaction() as tx:
        await tx.cohorts.set_status(cohort.id, "finished", None, kit.clock.now())
        await tx.commit()
    finished = problem(await api.post(f"/api/v1/cohorts/{cohort.id}/pause"), 409)
    assert "finished" in finished["detail"]
    assert [a for a, _, _ in await _actions(api, cohort.id)] == ["pause"]


async def test_a_resume_waits_for_the_rights_the_bot_lacks(
    kit: Kit, api: httpx.AsyncClient
) -> None:
    cohort = await kit.start()
    assert (await api.post(f"/api/v1/cohorts/{cohort.id}/pause")).status_code == 200
    kit.messenger.rights_missing[WARMUP_CHAT] = ["can_pin_messages"]
    refused = problem(await api.post(f"/api/v1/cohorts/{cohort.id}/resume"), 409)
    assert "can_pin_messages" in refused["detail"]
    assert (await kit.cohort(cohort.id)).status == "paused"
    kit.messenger.rights_missing.clear()
    assert (await api.post(f"/api/v1/cohorts/{cohort.id}/resume")).status_code == 200
    assert [a for a, _, _ in await _actions(api, cohort.id)] == ["pause", "resume"]


async def test_unknown_cohorts_bad_ids_and_no_key(kit: Kit, api: httpx.AsyncClient) -> None:
    cohort = await kit.start()
    for path in ("pause", "resume", "actions"):
        method = api.get if path == "actions" else api.post
        missing = problem(await method(f"/api/v1/cohorts/{cohort.id + 7}/{path}"), 404)
        assert f"no cohort {cohort.id + 7}" in missing["detail"]
        assert problem(await method(f"/api/v1/cohorts/x/{path}"), 422)["errors"]
    anonymous = await api.post(
        f"/api/v1/cohorts/{cohort.id}/pause", headers={"Authorization": "Bearer fbk_wrong"}
    )
    problem(anonymous, 401)
    assert (await kit.cohort(cohort.id)).status == "running"
    assert problem(await api.get(f"/api/v1/cohorts/{cohort.id}/pause"), 405)
    assert await _actions(api, cohort.id) == []


async def test_a_step_in_doubt_is_retried_and_its_held_parts_go_on(
    kit: Kit, api: httpx.AsyncClient
) -> None:
    cohort = await kit.talk_in_doubt()
    held = problem(await api.post(f"/api/v1/cohorts/{cohort.id}/steps/d1_talk.p1/retry"), 409)
    assert "waits for d1_talk" in held["detail"]
    retried = await api.post(f"/api/v1/cohorts/{cohort.id}/steps/d1_talk/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json() == {"step": "d1_talk", "resumed": ["d1_talk.p1"]}
    assert (await kit.step(cohort.id, "d1_talk")).status == "pending"
    assert (await kit.step(cohort.id, "d1_talk.p1")).status == "pending"
    again = problem(await api.post(f"/api/v1/cohorts/{cohort.id}/steps/d1_talk/retry"), 409)
    assert "is pending" in again["detail"]
    missing = problem(await api.post(f"/api/v1/cohorts/{cohort.id}/steps/d9_nope/retry"), 404)
    assert "no step d9_nope" in missing["detail"]
    assert await _actions(api, cohort.id) == [("retry", "api key ops-sea", "d1_talk")]


async def test_a_budget_is_raised_and_bad_amounts_are_422s(
    kit: Kit, api: httpx.AsyncClient
) -> None:
    cohort = await kit.start()
    url = f"/api/v1/cohorts/{cohort.id}/budget"
    for body in ({"add": "abc"}, {"add": "0"}, {"add": "-5"}, {"add": "0.001"}, {"add": ""}):
        refused = problem(await api.post(url, json=body), 422)
        assert refused["detail"].startswith("body.add"), refused
    for typo in ("1e9", "1_000", ".5"):  # a number Python reads, not an amount people write
        refused = problem(await api.post(url, json={"add": typo}), 422)
        assert refused["detail"] == f"body.add: '{typo}' is not an amount; write it like \"20.00\""
    assert problem(await api.post(url, json={}), 422)["errors"][0]["field"] == "body.add"
    assert problem(await api.post(url, json={"add": "1", "x": 1}), 422)
    assert problem(await api.post(url, content=b"{not json"), 422)
    # A body past the app's limit is refused before it is read whole, said length or not.
    huge = b'{"add": "1", "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    too_large = problem(await api.post(url, content=huge), 413)
    assert too_large["detail"] == f"the limit is {MAX_BODY_BYTES} bytes"

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length
        for start in range(0, len(huge), 8192):
            yield huge[start : start + 8192]

    assert problem(await api.post(url, content=streamed()), 413)["detail"] == too_large["detail"]
    assert (await kit.cohort(cohort.id)).budget_minor == cohort.budget_minor
    raised = await api.post(url, json={"add": "50.00"})
    assert raised.status_code == 200, raised.text
    body = raised.json()
    assert body["added_minor"] == 5000 and body["currency"] == cohort.currency
    assert body["budget_minor"] == cohort.budget_minor + 5000
    assert (await kit.cohort(cohort.id)).budget_minor == cohort.budget_minor + 5000
    assert await _actions(api, cohort.id) == [
        ("budget", "api key ops-sea", f"+50.00 {cohort.currency}")
    ]
    assert problem(
        await api.post(f"/api/v1/cohorts/{cohort.id + 3}/budget", json={"add": "1"}), 404
    )


async def test_the_command_line_s_actions_are_in_the_timeline_too(
    cli: Kit, api: httpx.AsyncClient
) -> None:
    import asyncio
    import getpass

    from typer.testing import CliRunner

    from bot.cli import app as cli_app

    cohort = await cli.talk_in_doubt()
    runner = CliRunner()

    def run(*args: str) -> None:
        done = runner.invoke(cli_app, list(args))
        assert done.exit_code == 0, done.output

    # (The commands run their own event loop: off this one.)
    await asyncio.to_thread(run, "step", "skip", cohort.code, "d1_talk")
    await asyncio.to_thread(run, "step", "retry", cohort.code, "d1_talk")
    await asyncio.to_thread(run, "cohort", "budget", cohort.code, "--add", "1.00")
    who = f"{getpass.getuser()} via the command line"
    assert await _actions(api, cohort.id) == [
        ("skip", who, "d1_talk"),
        ("retry", who, "d1_talk"),
        ("budget", who, f"+1.00 {cohort.currency}"),
    ]
    listed = (await api.get(f"/api/v1/cohorts/{cohort.id}/actions")).json()["items"]
    assert [a["api_key_id"] for a in listed] == [None, None, None]
