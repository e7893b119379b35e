"""The KPI pages in headless Chromium over :func:`tests.support.dashboard.seed_kpis`'s
world: a cohort's funnel (its charts as drawn), regions in a week and the week picker,
leaders, the tree of lines, the red flags and their count, the A/B variants and a
script as its group sees it, in English and after the language switch, and every page
on a phone's screen. Each page is kept as a screenshot in
``test-artifacts/screenshots/``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.browser.conftest import Site, Tab, served
from tests.browser.test_dashboard_browser import _cells, _chart
from tests.support.dashboard import DASHBOARD, SeededKpis

pytestmark = pytest.mark.browser


async def _count_ticks(tab: Tab) -> dict[str, list[float]]:
    """The values on the count axis of each chart drawn on the page."""
    await tab.page.wait_for_selector("canvas:not([data-drawn=true])", state="detached")
    ticks: dict[str, list[float]] = await tab.page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('canvas')].map(c => {
               const chart = Chart.getChart(c);
               const counts = chart.options.indexAxis === 'y' ? 'x' : 'y';
               return [c.id, chart.scales[counts].ticks.map(t => t.value)];
           }))"""
    )
    return ticks


@pytest.fixture
async def site(sqlite_url: str) -> AsyncIterator[Site]:
    """This module's pages need the KPI world."""
    async with served(sqlite_url, kpis=True) as serving:
        yield serving


async def test_the_kpi_pages_show_the_seeded_figures(tab: Tab) -> None:
    world = tab.site.world
    assert world is not None
    page = tab.page
    await tab.login(world.base.secret)
    assert await page.inner_text("[data-testid=flags-count]") == "3"

    await page.click("tr[data-cohort=C1] a")
    await page.wait_for_load_state()
    assert await page.inner_text("nav.tabs [aria-current=page]") == "Funnel"
    assert await _cells(tab, "tr[data-stage=sold]") == {
        "members": "2",
        "from_previous": "50%",
        "from_joined": "25%",
    }
    assert await page.inner_text("[data-figure=cost_per_sold] .value") == "$0.80"
    assert await page.inner_text("[data-figure=reply_rate] .value") == "62.5%"
    funnel = await _chart(tab, "chart-funnel")
    assert funnel["series"] == [[8, 8, 5, 5, 4, 2, 1, 0]]
    activity = await _chart(tab, "chart-days-activity")
    assert activity == {"labels": ["Day 1", "Day 3"], "series": [[0, 6], [0, 2]]}
    await page.wait_for_selector("canvas:not([data-drawn=true])", state="detached")
    colours = await page.evaluate(
        """() => [...document.querySelectorAll('canvas')].map(
               c => Chart.getChart(c).data.datasets.map(d => d.backgroundColor))"""
    )
    assert [len(c) for c in colours] == [1, 7, 2]  # the stages entered day by day: 7
    assert all(len(set(c)) == len(c) for c in colours), colours  # each its own colour
    assert await _count_ticks(tab) == {
        "chart-funnel": list(range(9)),
        "chart-days-stages": list(range(9)),
        "chart-days-activity": list(range(7)),
    }
    await tab.shot("cohort-funnel")

    await page.click("nav.tabs >> text=Script")
    await page.wait_for_load_state()
    assert await _cells(tab, "tr[data-day=warmup-1]") == {
        "messages": "4",
        "quiet": "0",
        "steps": "3",
    }
    assert await page.inner_text("[data-run=d1_welcome] [data-field=at]") == "09:00"
    await tab.shot("cohort-script")

    await page.click("nav.main-nav >> text=Regions")
    await page.wait_for_load_state()
    sea = await _cells(tab, "tr[data-region=SEA]")
    assert sea["launched"] == "4 / 5" and sea["behind"] == "Behind"
    assert await page.get_attribute("tr[data-region=SEA]", "class") == "behind"
    assert await _chart(tab, "chart-region-launches") == {
        "labels": ["LATAM", "SEA"],
        "series": [[1, 4], [1, 5]],
    }
    # Cohorts are counted whole: no 2.5 launches on the axis.
    assert await _count_ticks(tab) == {"chart-region-launches": list(range(6))}
    await tab.shot("regions")
    await page.click("[data-testid=week-after]")
    await page.wait_for_load_state()
    assert "2026-W11" in await page.inner_text("[data-testid=week]")
    assert (await _cells(tab, "tr[data-region=SEA]"))["launched"] == "0 / 5"
    await tab.shot("regions-next-week")

    await page.click("nav.main-nav >> text=Leaders")
    await page.wait_for_load_state()
    lina = await _cells(tab, f"tr[data-leader='{world.base.lina.telegram_id}']")
    assert (lina["sold"], lina["conversion"]) == ("2", "25%")
    assert "Generation 2: 1 cohort(s), 4 joined, 2 sold, 1 shopkeepers" in lina["lines"]
    await tab.shot("leaders")

    await page.click("nav.main-nav >> text=Lines")
    await page.wait_for_load_state()
    nested = await page.inner_text("li[data-cohort=C1] li[data-cohort=C4] li[data-cohort=C5] a")
    assert nested == "C5"
    assert await page.inner_text("tr[data-generation='3'] [data-field=sold]") == "1"
    await tab.shot("lines")

    await page.click("nav.main-nav >> text=A/B tests")
    await page.wait_for_load_state()
    verdict = await page.inner_text("[data-experiment=d2_pitch] [data-field=verdict]")
    assert verdict.startswith("Too few cohorts to tell")
    await tab.shot("experiments")

    await page.click("nav.main-nav >> text=Red flags")
    await page.wait_for_load_state()
    says = await page.inner_text("tr[data-flag=region_behind] [data-field=says]")
    assert says == "4 of 5 cohorts launched this week (2026-W10)."
    await tab.shot("flags")

    await page.click("nav.main-nav >> text=Scripts")
    await page.wait_for_load_state()
    await page.click("li[data-script=seven-plus-twentyone] a[lang=en]")
    await page.wait_for_load_state()
    assert (await _cells(tab, "tr[data-day=warmup-2]"))["messages"] == "8"
    await tab.shot("library-script")


async def test_the_kpi_pages_switch_language(tab: Tab) -> None:
    world = tab.site.world
    assert world is not None
    page = tab.page
    await tab.login(world.base.secret)
    await tab.goto(f"{DASHBOARD}/flags")
    await page.click("button[data-lang=zh-CN]")
    await page.wait_for_load_state()
    assert await page.inner_text("h1") == "预警"
    says = await page.inner_text("tr[data-flag=region_behind] [data-field=says]")
    assert says == "本周（2026-W10）已开 4 期，目标 5 期。"
    await tab.shot("flags-zh-CN")
    await tab.goto(f"{DASHBOARD}/experiments")
    assert "期数太少" in await page.inner_text("[data-field=verdict]")
    await tab.shot("experiments-zh-CN")
    await page.click("button[data-lang=es]")
    await page.wait_for_load_state()
    await tab.goto(f"{DASHBOARD}/cohorts/{world.base.main.id}")
    assert await page.inner_text("nav.tabs [aria-current=page]") == "Embudo"
    assert await page.inner_text("[data-figure=spent] .value") == "1,60\xa0US$"
    await tab.shot("cohort-funnel-es")
    await tab.goto(f"{DASHBOARD}/regions")
    assert await page.inner_text("tr[data-region=SEA] [data-field=behind]") == "Atrasada"
    await tab.shot("regions-es")


def _every_page(world: SeededKpis) -> list[str]:
    """Each kind of page a logged-in operator can open, over the KPI world."""
    cohort = f"{DASHBOARD}/cohorts/{world.base.main.id}"
    return [
        DASHBOARD,
        cohort,
        f"{cohort}/timeline",
        f"{cohort}/tasks",
        f"{cohort}/envelopes",
        f"{cohort}/script",
        f"{DASHBOARD}/regions",
        f"{DASHBOARD}/leaders",
        f"{DASHBOARD}/lines",
        f"{DASHBOARD}/experiments",
        f"{DASHBOARD}/flags",
        f"{DASHBOARD}/scripts",
        f"{DASHBOARD}/scripts/seven-plus-twentyone?locale=es",
    ]


PHONE = {"width": 320, "height": 640}
"""The narrowest phone screen still common (CSS pixels)."""

_CROWDED_CELLS = """() => [...document.querySelectorAll('table.data td:not(.text)')]
    .filter(td => {
        // The cell's text as laid out: its line boxes' tops, apart by a line or more.
        const range = document.createRange();
        range.selectNodeContents(td);
        const size = parseFloat(getComputedStyle(td).fontSize);
        const tops = [...range.getClientRects()].filter(r => r.width > 0)
            .map(r => r.top).sort((a, b) => a - b);
        return tops.some((top, i) => i > 0 && top - tops[i - 1] > 0.8 * size);
    })
    .map(td => td.innerText.trim())"""


async def test_on_a_phone_no_page_scrolls_sideways_and_table_cells_keep_one_line(
    tab: Tab,
) -> None:
    """At 320 pixels, in the language with the longest words: the navigation, tabs,
    pickers and charts fit the screen (only a table scrolls, in its frame), and a
    table's dates, codes and figures are never broken over lines; only running text
    wraps."""
    world = tab.site.world
    assert world is not None
    page = tab.page
    await page.set_viewport_size(PHONE)
    await tab.login(world.base.secret)
    await page.click("button[data-lang=es]")
    await page.wait_for_load_state()
    wide: dict[str, int] = {}
    crowded: dict[str, list[str]] = {}
    for path in _every_page(world):
        answer = await tab.goto(path)
        assert answer.status == 200, path
        await page.wait_for_selector("canvas:not([data-drawn=true])", state="detached")
        width = await page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            wide[path] = width
        if cells := await page.evaluate(_CROWDED_CELLS):
            crowded[path] = cells
    await tab.shot("phone-cohort-funnel-es")
    assert wide == {}
    assert crowded == {}


async def _accessibility_problems(tab: Tab) -> list[str]:
    """What axe-core finds wrong on the page as it is now: each rule broken, with how
    many elements break it and the first of them."""
    from axe_playwright_python.async_playwright import Axe

    await tab.page.wait_for_selector("canvas:not([data-drawn=true])", state="detached")
    found = (await Axe().run(tab.page)).response["violations"]
    return [f"{v['id']} ×{len(v['nodes'])}: {v['nodes'][0]['html'][:120]}" for v in found]


@pytest.mark.parametrize(
    ("language", "screen"),
    [
        ("en", {"width": 1280, "height": 800}),
        ("zh-CN", {"width": 1280, "height": 800}),
        ("es", PHONE),
    ],
    ids=["en-desktop", "zh-CN-desktop", "es-phone"],
)
async def test_every_page_passes_the_accessibility_check(
    tab: Tab, language: str, screen: dict[str, int]
) -> None:
    """axe-core's rules (WCAG 2.x A and AA among them: contrast, names, labels, links
    told apart by more than colour, a scrolling table reachable by keyboard) on the
    login page, a refused login, every page an operator opens and a missing cohort."""
    world = tab.site.world
    assert world is not None
    page = tab.page
    await page.set_viewport_size(screen)
    problems: dict[str, list[str]] = {}
    await tab.goto(DASHBOARD)
    await page.click(f"button[data-lang={language}]")
    await page.wait_for_load_state()
    problems["login"] = await _accessibility_problems(tab)
    await tab.login("fbk_not-a-key-at-all")
    problems["login refused"] = await _accessibility_problems(tab)
    await tab.login(world.base.secret)
    for path in [*_every_page(world), f"{DASHBOARD}/cohorts/{world.base.main.id + 99}"]:
        await tab.goto(path)
        problems[path] = await _accessibility_problems(tab)
    await tab.shot(f"accessibility-{language}")
    assert {where: found for where, found in problems.items() if found} == {}
