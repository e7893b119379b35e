"""``GET /metrics`` on SQLite and PostgreSQL: what the service counts as it works shows
in Prometheus's text format, and the funnel per region is read from the figures board.
The registry is the process's own, so each test compares before and after."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bot import metrics
from bot.http.app import create_app
from bot.http.events import PATH as EVENTS, EventApplier, EventIntake
from bot.telegram.throttle import Limits, Throttle, Window
from funnels.cohorts.tick import TickReport
from funnels.kernel.stages import Stage
from funnels.ops.board import FiguresBoard
from funnels.people.regions import AddRegion
from tests.integration.test_events_http import sign
from tests.support.funnel_kit import Kit

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def _scrape(client: httpx.AsyncClient) -> dict[str, list[tuple[dict[str, str], float]]]:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


async def test_events_accepted_repeated_and_refused_are_counted(kit: Kit) -> None:
    deps = kit.deps
    app = create_app(kit.store.engine, intake=EventIntake(deps, SECRET, EventApplier(deps)))
    transport = httpx.ASGITransport(app=app)
    before = {o: _value("funnelbot_events_total", outcome=o) for o in ("accepted", "duplicate")}
    rejected = _value("funnelbot_events_total", outcome="rejected")
    event = {
        "id": f"m-{secrets.token_hex(4)}",
        "type": "order.paid",
        "occurred_at": (kit.clock.now() - timedelta(minutes=1)).isoformat(),
        "member": {"ref": "NOBODY1"},
    }
    body = json.dumps([event]).encode()
    async with httpx.AsyncClient(transport=transport, base_url="http://funnelbot") as client:
        for _ in range(2):  # the second is a repeat of the same id
            sent = await client.post(EVENTS, content=body, headers=sign(body, secret=SECRET))
            assert sent.status_code == 202, sent.text
        forged = await client.post(EVENTS, content=body, headers=sign(b"[]", secret=SECRET))
        assert forged.status_code == 401
        scraped = await _scrape(client)
    assert _value("funnelbot_events_total", outcome="accepted") == before["accepted"] + 1
    assert _value("funnelbot_events_total", outcome="duplicate") == before["duplicate"] + 1
    assert _value("funnelbot_events_total", outcome="rejected") == rejected + 1
    assert ({"outcome": "accepted"}, before["accepted"] + 1) in scraped["funnelbot_events_total"]


async def test_the_funnel_per_region_is_read_from_the_board(kit: Kit) -> None:
    sea = await AddRegion(kit.deps)("SEA", "South-East Asia", "Asia/Singapore", 1)
    cohort = await kit.start(region_id=sea.id)
    refs = await kit.members(3)
    await kit.force_stage(cohort.id, refs[0].user_id, Stage.REPLIED)
    board = FiguresBoard(kit.deps)
    metrics.FUNNEL.board = board
    app = create_app(kit.store.engine)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://funnelbot") as client:
            assert "funnelbot_funnel_members" not in await _scrape(client)  # not ready yet
            await board.fill()
            scraped = await _scrape(client)
    finally:
        metrics.FUNNEL.board = None
    members = {
        labels["stage"]: value
        for labels, value in scraped["funnelbot_funnel_members"]
        if labels["region"] == "SEA"
    }
    assert members["joined"] == 3 and members["replied"] == 1 and members["sold"] == 0


def test_a_ticks_steps_are_counted_by_outcome_and_lateness() -> None:
    done = _value("funnelbot_steps_total", outcome="done")
    unknown = _value("funnelbot_steps_total", outcome="unknown")
    late = _value("funnelbot_step_lateness_seconds_count")
    slow = _value("funnelbot_step_lateness_seconds_bucket", le="30.0")
    metrics.record_tick(TickReport(done=3, unknown=1, lateness=[0.2, 12.0, 45.0, 1.0]))
    assert _value("funnelbot_steps_total", outcome="done") == done + 3
    assert _value("funnelbot_steps_total", outcome="unknown") == unknown + 1
    assert _value("funnelbot_step_lateness_seconds_count") == late + 4
    assert _value("funnelbot_step_lateness_seconds_bucket", le="30.0") == slow + 3


async def test_the_throttles_waits_are_counted() -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    throttle = Throttle(Limits(private=Window(1, 1.0), margin=0), clock=lambda: now[0], sleep=sleep)
    saved = metrics.THROTTLE_WAITS.throttles
    metrics.THROTTLE_WAITS.throttles = [throttle]
    try:
        for _ in range(3):  # one a second into a private chat: the 2nd and 3rd wait
            await throttle.acquire(42)
        assert throttle.waited == 2.0
        assert _value("funnelbot_throttle_wait_seconds_total") == 2.0
    finally:
        metrics.THROTTLE_WAITS.throttles = saved
