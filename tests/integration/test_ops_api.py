"""Ops actions over the HTTP API, on SQLite and PostgreSQL: pause and resume a cohort,
each recorded with the key that asked; refusals are problems and change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bot.http.app import create_app
from funnels.ops.keys import CreateApiKey
from tests.support.funnel_kit import WARMUP_CHAT, Kit, warmup_at

PROBLEM = "application/problem+json"


@pytest.fixture
async def api(kit: Kit) -> AsyncIterator[httpx.AsyncClient]:
    _, key = await CreateApiKey(kit.deps)("ops-sea")
    transport = httpx.ASGITransport(app=create_app(kit.store.engine, deps=kit.deps))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://funnelbot",
        headers={"Authorization": f"Bearer {key}"},
    ) as client:
        yield client


def _problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body: dict[str, Any] = answer.json()
    assert body["status"] == status and body["detail"]
    return body


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
    not_paused = _problem(await api.post(f"/api/v1/cohorts/{cohort.id}/resume"), 409)
    assert "running, not paused" in not_paused["detail"]
    assert (await api.post(f"/api/v1/cohorts/{cohort.id}/pause")).status_code == 200
    twice = _problem(await api.post(f"/api/v1/cohorts/{cohort.id}/pause"), 409)
    assert "is paused" in twice["detail"]
    assert [a for a, _, _ in await _actions(api, cohort.id)] == ["pause"]
    async with kit.store.transaction() as tx:
        await tx.cohorts.set_status(cohort.id, "finished", None, kit.clock.now())
        await tx.commit()
    finished = _problem(await api.post(f"/api/v1/cohorts/{cohort.id}/pause"), 409)
    assert "finished" in finished["detail"]
    assert [a for a, _, _ in await _actions(api, cohort.id)] == ["pause"]


async def test_a_resume_waits_for_the_rights_the_bot_lacks(
    kit: Kit, api: httpx.AsyncClient
) -> None:
    cohort = await kit.start()
    assert (await api.post(f"/api/v1/cohorts/{cohort.id}/pause")).status_code == 200
    kit.messenger.rights_missing[WARMUP_CHAT] = ["can_pin_messages"]
    refused = _problem(await api.post(f"/api/v1/cohorts/{cohort.id}/resume"), 409)
    assert "can_pin_messages" in refused["detail"]
    assert (await kit.cohort(cohort.id)).status == "paused"
    kit.messenger.rights_missing.clear()
    assert (await api.post(f"/api/v1/cohorts/{cohort.id}/resume")).status_code == 200
    assert [a for a, _, _ in await _actions(api, cohort.id)] == ["pause", "resume"]


async def test_unknown_cohorts_bad_ids_and_no_key(kit: Kit, api: httpx.AsyncClient) -> None:
    cohort = await kit.start()
    for path in ("pause", "resume", "actions"):
        method = api.get if path == "actions" else api.post
        missing = _problem(await method(f"/api/v1/cohorts/{cohort.id + 7}/{path}"), 404)
        assert f"no cohort {cohort.id + 7}" in missing["detail"]
        assert _problem(await method(f"/api/v1/cohorts/x/{path}"), 422)["errors"]
    anonymous = await api.post(
        f"/api/v1/cohorts/{cohort.id}/pause", headers={"Authorization": "Bearer fbk_wrong"}
    )
    _problem(anonymous, 401)
    assert (await kit.cohort(cohort.id)).status == "running"
    assert _problem(await api.get(f"/api/v1/cohorts/{cohort.id}/pause"), 405)
    assert await _actions(api, cohort.id) == []
