"""The dashboard's KPI pages over the app in-process (no browser), on SQLite and
PostgreSQL, against the world of :func:`tests.support.dashboard.seed_kpis`: a cohort's
funnel and days, regions in a week, leaders, the tree of lines, the red flags (and their
count in the navigation), the A/B variants and scripts as their groups see them; their
404s and their language."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from funnels.scripts.variants import cohort_arm
from tests.integration.test_dashboard import _client, _field, _login
from tests.support.dashboard import DASHBOARD, SeededKpis, seed_kpis
from tests.support.funnel_kit import Kit


@pytest.fixture
async def world(kit: Kit) -> SeededKpis:
    return await seed_kpis(kit)


@pytest.fixture
async def web(kit: Kit, world: SeededKpis) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(kit) as client:
        await _login(client, world.base.secret)
        yield client


def _rows(page: str, attribute: str) -> list[str]:
    return re.findall(rf'<tr [^>]*{attribute}="([\w-]+)"', page)


async def _page(web: httpx.AsyncClient, path: str, **headers: str) -> str:
    answer = await web.get(DASHBOARD + path, headers=headers)
    assert answer.status_code == 200, (path, answer.status_code)
    return answer.text


async def test_the_funnel_tab_is_the_cohorts_first_page(
    web: httpx.AsyncClient, world: SeededKpis
) -> None:
    page = await _page(web, f"/cohorts/{world.base.main.id}")
    tabs = re.findall(r'<nav class="tabs".*?</nav>', page, re.S)[0]
    assert re.findall(r">([^<]+)</a>", tabs) == [
        "Funnel",
        "Timeline",
        "Tasks",
        "Red envelopes",
        "Script",
    ]
    members = {s: _field(page, f'data-stage="{s}"', "members") for s in ("joined", "sold")}
    assert members == {"joined": "8", "sold": "2"}
    assert _field(page, 'data-stage="replied"', "from_previous") == "62.5%"
    assert _field(page, 'data-stage="sold"', "from_previous") == "50%"
    assert _field(page, 'data-stage="sold"', "from_joined") == "25%"
    assert _field(page, 'data-stage="joined"', "from_previous") == "–"
    figures = dict(
        re.findall(
            r'data-figure="(\w+)">\s*<span class="label">[^<]*</span>\s*'
            r'<span class="value">([^<]+)</span>',
            page,
        )
    )
    assert figures == {
        "joined": "8",
        "reply_rate": "62.5%",
        "spent": "$1.60",
        "cost_per_sold": "$0.80",  # 1.60 over two who sold
    }
    assert _rows(page, "data-day") == ["1", "3"]
    assert _field(page, 'data-day="1"', "joined") == "8"
    assert _field(page, 'data-day="3"', "sold") == "2"
    assert _field(page, 'data-day="3"', "messages") == "6"
    assert _field(page, 'data-day="3"', "writers") == "2"
    for chart in ("chart-funnel", "chart-days-stages", "chart-days-activity"):
        assert f'id="{chart}-data"' in page
    assert '"data": [8, 8, 5, 5, 4, 2, 1, 0]' in page
    timeline = await _page(web, f"/cohorts/{world.base.main.id}/timeline")
    assert 'data-step="d1_welcome"' in timeline
    spanish = await _page(web, f"/cohorts/{world.base.main.id}", **{"Accept-Language": "es"})
    assert "Tasa de respuesta" in spanish and "1,60\xa0US$" in spanish
    assert _field(spanish, 'data-stage="replied"', "from_previous") == "62,5%"


async def test_regions_in_a_week_against_their_target(
    web: httpx.AsyncClient, world: SeededKpis
) -> None:
    page = await _page(web, "/regions")  # the clock's week: 2026-W10
    assert "Week 2026-W10: Mar 2, 2026 – Mar 8, 2026" in page
    assert _rows(page, "data-region") == ["LATAM", "SEA"]
    assert re.search(r'<tr data-region="SEA" class="behind">', page)
    assert not re.search(r'<tr data-region="LATAM" class="behind">', page)
    sea = {
        f: _field(page, 'data-region="SEA"', f)
        for f in ("launched", "fill", "joined", "reply_rate", "admitted", "sold", "shopkeepers")
    }
    assert sea == {
        "launched": "4 / 5",
        "fill": "7%",  # 14 joined in 200 places
        "joined": "14 / 200",
        "reply_rate": "57.1%",  # 8 of 14
        "admitted": "8",  # 5 in C1; those who sold in C4 and C5 got there through it
        "sold": "5",
        "shopkeepers": "2",
    }
    assert _field(page, 'data-region="LATAM"', "launched") == "1 / 1"
    assert 'href="/dashboard/regions?week=2026-W09"' in page
    assert 'href="/dashboard/regions?week=2026-W11"' in page
    assert '"labels": ["LATAM", "SEA"]' in page and '"data": [1, 4]' in page
    later = await _page(web, "/regions?week=2026-W11")
    assert _field(later, 'data-region="SEA"', "launched") == "0 / 5"
    assert 'data-testid="this-week"' in later
    assert "Week 2026-W10" in await _page(web, "/regions?week=2026-W99")  # not a week: this one
    zh = await _page(web, "/regions", **{"Accept-Language": "zh-CN"})
    assert "落后" in zh and "2026-W10 周" in zh


async def test_leaders_and_the_lines_their_graduates_grew(
    web: httpx.AsyncClient, world: SeededKpis
) -> None:
    page = await _page(web, "/leaders")
    lina = world.base.lina.telegram_id
    assert _rows(page, "data-leader")[0] == str(lina)  # the most sold first
    row = f'data-leader="{lina}"'
    figures = {
        f: _field(page, row, f)
        for f in ("cohorts", "joined", "replied", "admitted", "sold", "shopkeepers", "conversion")
    }
    assert figures == {
        "cohorts": "1",
        "joined": "8",
        "replied": "5",
        "admitted": "5",
        "sold": "2",
        "shopkeepers": "1",
        "conversion": "25%",
    }
    assert re.findall(r"<li data-generation=\"\d\">([^<]+)</li>", _field_html(page, row)) == [
        "Generation 2: 1 cohort(s), 4 joined, 2 sold, 1 shopkeepers",
        "Generation 3: 1 cohort(s), 2 joined, 1 sold, 0 shopkeepers",
    ]
    assert _field(page, 'data-leader="none"', "cohorts") == "5"
    latam = await _page(web, "/leaders?region=latam")
    assert _rows(latam, "data-leader") == ["none"]


def _field_html(page: str, row: str) -> str:
    found = re.search(rf"<tr [^>]*{row}[^>]*>(.*?)</tr>", page, re.S)
    assert found
    return found.group(1)


async def test_the_tree_of_lines_nests_each_line_under_its_parent(
    web: httpx.AsyncClient, world: SeededKpis
) -> None:
    page = await _page(web, "/lines")
    nested = re.findall(r'<li data-cohort="(\w+)" data-generation="(\d)">|(</ul>)', page)
    order = [(c, g) if c else "end" for c, g, end in nested]
    assert order[:5] == [("C1", "1"), ("C4", "2"), ("C5", "3"), "end", "end"]
    tree = re.search(r'data-testid="tree">(.*)</section>', page, re.S)
    assert tree
    c1 = re.search(r'data-line="C1">(.*?)</ul>\s*</li>\s*</ul>', tree.group(1), re.S)
    assert c1 and 'data-cohort="C4"' in c1.group(1)
    assert "The whole line: 3 cohorts, 14 joined, 5 sold, 2 shopkeepers" in page
    generations = {g: _field(page, f'data-generation="{g}"', "joined") for g in ("1", "2", "3")}
    assert generations == {"1": "38", "2": "4", "3": "2"}
    assert _field(page, 'data-generation="2"', "shopkeepers") == "1"
    sea = await _page(web, "/lines?region=SEA")
    assert re.findall(r'<li data-cohort="(\w+)"', sea) == ["C1", "C4", "C5", "C3"]


async def test_red_flags_in_the_readers_language_and_their_count_on_every_page(
    web: httpx.AsyncClient, world: SeededKpis
) -> None:
    page = await _page(web, "/flags")
    flags = re.findall(r'data-flag="(\w+)" data-flag-cohort="(\w*)" data-flag-region="(\w*)"', page)
    assert sorted(flags) == [
        ("budget_low", "C1", "SEA"),
        ("low_reply", "AB3", ""),
        ("region_behind", "", "SEA"),
    ]
    assert _field(page, 'data-flag="budget_low"', "says") == (
        "94.1% of the budget spent: $1.60 of $1.70."
    )
    assert _field(page, 'data-flag="budget_low"', "figure") == "94.1%"
    assert _field(page, 'data-flag="low_reply"', "says") == (
        "0 of 10 members replied to the pitch (0%, under 10%)."
    )
    assert _field(page, 'data-flag="region_behind"', "says") == (
        "4 of 5 cohorts launched this week (2026-W10)."
    )
    assert f'href="/dashboard/cohorts/{world.base.main.id}"' in page
    for path in ("", "/leaders", f"/cohorts/{world.base.main.id}/tasks"):
        other = await _page(web, path)
        assert re.search(r'data-testid="flags-count"[^>]*>3</span>', other), path
    es = await _page(web, "/flags", **{"Accept-Language": "es"})
    assert "Presupuesto casi agotado" in es
    assert "Gastado el 94,1% del presupuesto: 1,60\xa0US$ de 1,70\xa0US$." in es


async def test_ab_variants_with_their_arms_and_a_plain_verdict(
    web: httpx.AsyncClient, world: SeededKpis
) -> None:
    page = await _page(web, "/experiments")
    assert re.findall(r'data-experiment="(\w+)" data-verdict="(\w+)"', page) == [
        ("d2_pitch", "too_small")
    ]
    pitch = world.ab_script.script.step("d2_pitch").pitch
    assert pitch is not None
    drawn = Counter(cohort_arm(pitch, c.code, "d2_pitch").id for c in world.ab)
    replied = {c.code: n for c, n in zip(world.ab, (4, 2, 0), strict=True)}
    for arm in ("a", "story"):
        theirs = [c for c in world.ab if cohort_arm(pitch, c.code, "d2_pitch").id == arm]
        row = f'data-arm="{arm}"'
        assert _field(page, row, "cohorts") == str(drawn[arm])
        assert _field(page, row, "members") == str(10 * drawn[arm])
        assert _field(page, row, "replied") == str(sum(replied[c.code] for c in theirs))
    small = sorted(arm for arm in ("a", "story") if drawn[arm] < 5)
    verdict = re.search(r'data-field="verdict">([^<]+)<', page)
    assert verdict and verdict.group(1) == (
        f"Too few cohorts to tell: arms {', '.join(small)} have fewer than 5 cohorts."
    )
    assert '<svg class="interval"' in page
    zh = await _page(web, "/experiments", **{"Accept-Language": "zh-CN"})
    assert "期数太少，还看不出来" in zh


async def test_a_script_as_the_group_sees_it_with_its_restraint_figures(
    web: httpx.AsyncClient, world: SeededKpis
) -> None:
    page = await _page(web, f"/cohorts/{world.base.main.id}/script")
    assert _rows(page, "data-day") == ["warmup-1", "warmup-2", "tasks-1", "tasks-2"]
    assert _field(page, 'data-day="warmup-1"', "messages") == "4"
    assert _field(page, 'data-day="warmup-1"', "quiet") == "0"
    assert _field(page, 'data-day="tasks-1"', "messages") == "1"
    runs = re.findall(r'data-run="([\w.]+)">\s*<time data-field="at">([\d:]+)</time>', page)
    assert runs[:4] == [
        ("d1_welcome", "09:00"),
        ("d1_talk", "10:00"),
        ("d1_talk.p1", "10:02"),
        ("d1_envelope", "12:00"),
    ]
    assert "Welcome to the group." in page and "1.00 USD in 3 shares" in page
    arm_page = await _page(web, f"/cohorts/{world.ab[0].id}/script")
    pitch = world.ab_script.script.step("d2_pitch").pitch
    assert pitch is not None
    arm = cohort_arm(pitch, world.ab[0].code, "d2_pitch")
    assert f"this group: {arm.id}" in arm_page and arm.text in arm_page
    library = await _page(web, "/scripts")
    assert 'href="/dashboard/scripts/seven-plus-twentyone?locale=zh-CN"' in library
    seven = await _page(web, "/scripts/seven-plus-twentyone?locale=en")
    assert _rows(seven, "data-day")[:2] == ["warmup-1", "warmup-2"]
    assert _field(seven, 'data-day="warmup-2"', "messages") == "8"
    assert "Daniel" in seven
    zh = await _page(
        web, "/scripts/seven-plus-twentyone?locale=zh-CN", **{"Accept-Language": "zh-CN"}
    )
    assert "预热第 1 天" in zh


async def test_unknown_pages_of_the_new_areas_are_friendly_404s(
    web: httpx.AsyncClient, world: SeededKpis
) -> None:
    for path in (
        f"/cohorts/{world.base.main.id + 500}",
        f"/cohorts/{world.base.main.id + 500}/script",
        "/cohorts/x/script",
        "/scripts/nope",
        "/scripts/..%2Fsecrets",
        "/regions/extra",
    ):
        answer = await web.get(DASHBOARD + path, headers={"Accept-Language": "es"})
        assert answer.status_code == 404, path
        assert "Volver a las cohortes" in answer.text
    assert "No such script" in (await web.get(f"{DASHBOARD}/scripts/nope")).text
    web.cookies.clear()
    for path in ("/regions", "/leaders", "/lines", "/flags", "/experiments", "/scripts"):
        answer = await web.get(DASHBOARD + path)
        assert answer.status_code == 303 and "/dashboard/login" in answer.headers["location"]
