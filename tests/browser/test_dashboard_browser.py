"""The dashboard as ops use it, in headless Chromium: logging in with an API key (a wrong
one refused with a message), the cohort pages with the seeded figures in their tables
and charts, the language switch, a revoked key and logging out; and the API's Swagger
UI. Each page visited is kept as a screenshot in ``test-artifacts/screenshots/``."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from funnels.ops.keys import RevokeApiKey
from tests.browser.conftest import Tab
from tests.support.dashboard import DASHBOARD

pytestmark = pytest.mark.browser


async def _cells(tab: Tab, row: str) -> dict[str, str]:
    """The ``data-field`` cells of the table row ``row`` (a CSS selector), by field."""
    cells: dict[str, str] = await tab.page.eval_on_selector(
        row,
        """tr => Object.fromEntries([...tr.querySelectorAll('[data-field]')]
            .map(td => [td.dataset.field, td.innerText.trim()]))""",
    )
    return cells


async def _chart(tab: Tab, canvas: str) -> dict[str, object]:
    """What Chart.js drew on the canvas ``canvas``: its labels and each series' values."""
    await tab.page.wait_for_selector(f"#{canvas}[data-drawn=true]")
    drawn: dict[str, object] = await tab.page.evaluate(
        """id => {
            const chart = Chart.getChart(id);
            return {labels: chart.data.labels,
                    series: chart.data.datasets.map(d => d.data)};
        }""",
        canvas,
    )
    return drawn


async def test_a_wrong_key_is_refused_with_a_message(tab: Tab) -> None:
    await tab.goto(DASHBOARD)
    assert tab.page.url.endswith(f"{DASHBOARD}/login")
    await tab.shot("login")
    await tab.login("fbk_not-a-key-at-all")
    error = tab.page.locator("[data-testid=error]")
    assert "That key is not valid" in await error.inner_text()
    assert await tab.page.context.cookies() == []
    await tab.shot("login-refused")


async def test_the_right_key_opens_the_pages_with_the_seeded_figures(tab: Tab) -> None:
    seeded = tab.site.seeded
    await tab.login(seeded.secret)
    page = tab.page
    assert page.url.endswith(DASHBOARD)
    assert await page.inner_text("[data-testid=who]") == "Signed in with the key ops-sea"
    (cookie,) = await page.context.cookies()
    assert (
        cookie["httpOnly"] and cookie["sameSite"] == "Lax" and seeded.secret not in cookie["value"]
    )
    rows = await page.eval_on_selector_all("tr[data-cohort]", "rs => rs.map(r => r.dataset.cohort)")
    assert rows == ["C3", "C2", "C1"]
    assert await _cells(tab, "tr[data-cohort=C1]") == {"spent": "$1.50", "budget": "$1.70"}
    await tab.shot("cohorts")

    await page.select_option("select[name=status]", "paused")
    await page.click(".filters button[type=submit]")
    await page.wait_for_load_state()
    rows = await page.eval_on_selector_all("tr[data-cohort]", "rs => rs.map(r => r.dataset.cohort)")
    assert rows == ["C3"]
    await tab.shot("cohorts-paused")

    await tab.goto(DASHBOARD)
    await page.click("tr[data-cohort=C1] a")
    await page.wait_for_load_state()
    assert await page.inner_text("h1") == "Cohort C1 Running"
    assert await page.inner_text("nav.tabs [aria-current=page]") == "Funnel"
    await page.click("nav.tabs >> text=Timeline")
    await page.wait_for_load_state()
    assert (await _cells(tab, "tr[data-step=d1_envelope]"))["late"] == "0 s"
    assert await page.inner_text("tr[data-action=pause] [data-field=by]") == (
        "by the API key ops-sea"
    )
    assert await page.inner_text("tr[data-action=resume] [data-field=by]") == (
        "by ana on the command line"
    )
    await tab.shot("cohort-timeline")

    await page.click("nav.tabs >> text=Tasks")
    await page.wait_for_load_state()
    fans = await _cells(tab, "tr[data-task=invite_fans]")
    assert fans["started"] == "5" and fans["completed"] == "4 / 5" and fans["rate"] == "80%"
    assert fans["reward"] == "$0.50" and fans["pending"] == "$0.50 (1)"
    assert fans["owed"] == "$1.50 (3)" and fans["delivered"] == "$0.00 (0)"
    assert await page.inner_text("[data-way=owed] .value") == "$1.50"
    chart = await _chart(tab, "chart-task-completion")
    assert chart == {
        "labels": ["Invite three fans", "Two distinct visitors", "First sale"],
        "series": [[0.8, 0, 0]],
    }
    await tab.shot("cohort-tasks")

    await page.click("nav.tabs >> text=Red envelopes")
    await page.wait_for_load_state()
    envelope = await _cells(tab, "tr[data-envelope=d1_envelope]")
    assert envelope == {
        "total": "$1.00",
        "grabbed": "$1.00",
        "shares": "3 / 3",
        "rate": "100%",
        "empty": "30 s",
    }
    assert await _chart(tab, "chart-envelope-grab-rate") == {
        "labels": ["d1_envelope"],
        "series": [[1]],
    }
    assert await _chart(tab, "chart-envelope-time-to-empty") == {
        "labels": ["d1_envelope"],
        "series": [[30]],
    }
    await tab.shot("cohort-envelopes")

    await tab.goto(f"{DASHBOARD}/cohorts/{seeded.main.id + 99}")
    assert await page.inner_text("h1") == "No such cohort"
    await tab.shot("cohort-missing")


async def test_the_language_switch_changes_the_texts(tab: Tab) -> None:
    seeded = tab.site.seeded
    await tab.goto(DASHBOARD)
    await tab.page.click("button[data-lang=es]")
    await tab.page.wait_for_load_state()
    assert await tab.page.inner_text("h1") == "Entrar al panel"
    await tab.shot("login-es")
    await tab.login(seeded.secret)
    page = tab.page
    await tab.goto(f"{DASHBOARD}/cohorts/{seeded.main.id}/envelopes")
    assert await page.get_attribute("html", "lang") == "es"
    assert await page.inner_text("h1") == "Cohorte C1 En curso"
    assert await page.inner_text("nav.tabs [aria-current=page]") == "Sobres rojos"
    envelope = await _cells(tab, "tr[data-envelope=d1_envelope]")
    assert envelope["total"] == "1,00\xa0US$" and envelope["rate"] == "100%"
    await tab.shot("cohort-envelopes-es")

    await page.click("button[data-lang=zh-CN]")
    await page.wait_for_load_state()
    assert page.url.endswith(f"{DASHBOARD}/cohorts/{seeded.main.id}/envelopes")
    assert await page.get_attribute("html", "lang") == "zh-CN"
    assert await page.inner_text("h1") == "期次 C1 进行中"
    assert await page.inner_text("nav.tabs [aria-current=page]") == "红包"
    assert (await _cells(tab, "tr[data-envelope=d1_envelope]"))["empty"] == "30 秒"
    await tab.shot("cohort-envelopes-zh-CN")
    await tab.goto(f"{DASHBOARD}/cohorts/{seeded.main.id}/tasks")
    assert await page.inner_text("[data-way=owed] .label") == "欠付"
    await tab.shot("cohort-tasks-zh-CN")
    await tab.goto(f"{DASHBOARD}/cohorts/{seeded.main.id}/timeline")
    assert await page.inner_text("tr[data-action=pause] [data-field=by]") == (
        "操作者：API 密钥 ops-sea"
    )
    await tab.shot("cohort-timeline-zh-CN")
    await tab.goto(DASHBOARD)
    assert await page.inner_text("h1") == "期次"
    await tab.shot("cohorts-zh-CN")


async def test_a_revoked_key_is_logged_out_at_once(tab: Tab) -> None:
    seeded = tab.site.seeded
    await tab.login(seeded.secret)
    await tab.goto(f"{DASHBOARD}/cohorts/{seeded.main.id}")
    assert await tab.page.inner_text("h1") == "Cohort C1 Running"
    await RevokeApiKey(tab.site.kit.deps)("ops-sea")
    await tab.page.reload()
    assert "/dashboard/login" in tab.page.url
    notice = await tab.page.inner_text("[data-testid=notice]")
    assert "its key was revoked" in notice
    assert await tab.page.context.cookies() == []
    await tab.shot("revoked")
    await tab.login(seeded.secret)
    assert "That key is not valid" in await tab.page.inner_text("[data-testid=error]")


async def test_logout_ends_the_session(tab: Tab) -> None:
    await tab.login(tab.site.seeded.secret)
    await tab.page.click("[data-testid=logout]")
    await tab.page.wait_for_load_state()
    assert "You have logged out" in await tab.page.inner_text("[data-testid=notice]")
    assert await tab.page.context.cookies() == []
    await tab.shot("logged-out")
    await tab.goto(f"{DASHBOARD}/cohorts/{tab.site.seeded.main.id}")
    assert "/dashboard/login" in tab.page.url


async def test_the_api_docs_render_from_the_app_alone(tab: Tab) -> None:
    """Swagger UI at ``/docs`` lists the API's routes, and every file it loads comes
    from the app (none from a CDN)."""
    hosts: set[str] = set()
    tab.page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    await tab.goto("/docs")
    await tab.page.wait_for_selector(".opblock")
    paths = await tab.page.eval_on_selector_all(
        ".opblock-summary-path", "spans => spans.map(s => s.dataset.path)"
    )
    assert "/api/v1/cohorts" in paths and "/api/v1/events" in paths
    assert hosts == {urlsplit(tab.site.url).netloc}
    await tab.shot("api-docs")
