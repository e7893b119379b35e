"""The dashboard's parts on their own, without I/O: the session seal, the cross-site
check, the choice of language, where a form may send the browser back to, whether a
browser takes gzip, the timeline's
order and wording, and the locale files against every text the templates ask for."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.http.dashboard_cohorts import STATUSES, TABS, author_text, outcome_text, timeline
from bot.http.dashboard_experiments import interval_box, verdict_says
from bot.http.dashboard_kpis import FLAG_KINDS, chosen_week, flag_says, next_weeks
from bot.http.web.door import NAV, accepts_gzip, safe_next
from bot.http.web.render import ROOT
from bot.http.web.session import SESSION_MAX_AGE, Session, SessionSeal, from_this_site
from bot.http.web.texts import Wording, choose_locale, load_catalog
from funnels.kernel.records import OpsActionRecord, PlanKind
from funnels.kernel.stages import Stage
from funnels.ops.cohorts import PAYOUT_STATES, StepLine
from funnels.ops.experiments import ArmFigures, Experiment
from funnels.ops.kpis import Flag

_KEY_IN_CODE = r'"((?:login|tasks|envelopes|funnel|regions|flag|verdict)\.[a-z_.]+)(?<!\.html)"'
NOW = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
KEY = b"k" * 32


def test_a_sealed_session_opens_only_unchanged_and_in_time() -> None:
    seal = SessionSeal(KEY)
    cookie = seal.seal(Session(7, NOW))
    assert seal.open(cookie, NOW + timedelta(hours=1)) == Session(7, NOW)
    assert seal.open(cookie, NOW + SESSION_MAX_AGE + timedelta(seconds=1)) is None
    assert seal.open(cookie, NOW - timedelta(hours=1)) is None  # issued in the future
    assert SessionSeal(b"x" * 32).open(cookie, NOW) is None  # another installation
    key_id, issued, mac = cookie.split(".")
    for forged in (
        f"8.{issued}.{mac}",
        f"{key_id}.{int(issued) - 1}.{mac}",
        f"{key_id}.{issued}.",
        f"-7.{issued}.{mac}",
        f"{key_id}.{issued}.{mac}.x",
        "",
        "é" * 10,
        cookie + "0" * 80,
    ):
        assert seal.open(forged, NOW) is None, forged
    with pytest.raises(ValueError):
        SessionSeal(b"short")


@pytest.mark.parametrize(
    ("origin", "referer", "host", "public", "passes"),
    [
        ("http://ops.local:8080", None, "ops.local:8080", None, True),
        ("https://OPS.example.com", None, "127.0.0.1:8080", "https://ops.example.com", True),
        ("https://ops.example.com", None, "ops.example.com", None, True),  # TLS ends at a proxy
        ("https://evil.example", None, "ops.local:8080", None, False),
        ("https://evil.example", "http://ops.local:8080/dashboard", "ops.local:8080", None, False),
        (None, "http://ops.local:8080/dashboard", "ops.local:8080", None, True),
        ("null", "http://ops.local:8080/dashboard", "ops.local:8080", None, True),
        ("null", None, "ops.local:8080", None, False),
        (None, None, "ops.local:8080", None, False),
        ("javascript:alert(1)", None, "ops.local:8080", None, False),
        ("http://ops.local:8080.evil.example", None, "ops.local:8080", None, False),
    ],
)
def test_only_forms_posted_from_this_site_pass(
    origin: str | None, referer: str | None, host: str, public: str | None, passes: bool
) -> None:
    assert from_this_site(origin, referer, host, public) is passes


@pytest.mark.parametrize(
    ("chosen", "accept", "locale"),
    [
        ("es", "zh-CN", "es"),
        (None, "zh-CN,zh;q=0.9", "zh-CN"),
        (None, "zh-Hant-TW", "zh-CN"),
        (None, "en-GB;q=0.3, es-AR;q=0.7", "es"),
        (None, "de, fr;q=0.9", "en"),
        (None, "es;q=0, zh;q=0.1", "zh-CN"),
        (None, "es;q=bogus, en", "en"),
        ("klingon", "", "en"),
        (None, None, "en"),
    ],
)
def test_the_locale_is_the_switch_then_the_browser_then_english(
    chosen: str | None, accept: str | None, locale: str
) -> None:
    assert choose_locale(chosen, accept) == locale


@pytest.mark.parametrize(
    ("asked", "goes"),
    [
        ("/dashboard/cohorts/4/tasks", "/dashboard/cohorts/4/tasks"),
        ("/dashboard?region=SEA&status=paused", "/dashboard?region=SEA&status=paused"),
        ("/dashboard", "/dashboard"),
        ("/dashboardx", "/dashboard"),
        ("//evil.example/dashboard", "/dashboard"),
        ("/dashboard//evil.example", "/dashboard"),
        ("https://evil.example/dashboard", "/dashboard"),
        ("/dashboard/../api/v1/cohorts", "/dashboard"),
        ("/dashboard/\\evil", "/dashboard"),
        ("/dashboard/\nx", "/dashboard"),
        (None, "/dashboard"),
    ],
)
def test_forms_send_the_browser_back_inside_the_dashboard_only(
    asked: str | None, goes: str
) -> None:
    assert safe_next(asked) == goes


def _step(key: str, due: datetime) -> StepLine:
    return StepLine(key, "post", "warmup", 1, None, due, "done", 1, due, 0, None, None)


def _action(action: str, at: datetime, by: str, key_id: int | None) -> OpsActionRecord:
    return OpsActionRecord(1, 1, key_id, by, action, None, at)


def test_the_timeline_puts_actions_among_steps_by_time() -> None:
    steps = [_step("a", NOW), _step("b", NOW + timedelta(hours=2))]
    actions = [
        _action("pause", NOW + timedelta(hours=1), "api key ops", 3),
        _action("resume", NOW + timedelta(hours=2), "ana via the command line", None),
    ]
    rows = timeline(steps, actions)
    names = [r.step.key if r.step else r.action.action for r in rows if r.step or r.action]
    assert names == ["a", "pause", "b", "resume"]  # a step before an action at its time


def test_who_did_an_action_is_said_in_the_readers_language() -> None:
    catalog = load_catalog()
    zh, en = Wording(catalog, "zh-CN"), Wording(catalog, "en")
    by_key = _action("pause", NOW, "api key ops-sea", 3)
    by_cli = _action("retry", NOW, "ana via the command line", None)
    assert author_text(en, by_key) == "by the API key ops-sea"
    assert author_text(zh, by_cli) == "操作者：ana（命令行）"
    assert author_text(en, _action("pause", NOW, "someone else", None)) == "someone else"


def test_an_outcome_is_one_short_line_without_the_lateness() -> None:
    assert outcome_text({"late_seconds": 4, "message_ids": [811, 812]}) == "message_ids: 811, 812"
    assert outcome_text(None) == ""
    assert len(outcome_text({"x": "y" * 500})) == 120


def test_every_text_the_templates_and_pages_ask_for_is_in_every_locale() -> None:
    catalog = load_catalog()  # the same keys in every locale, checked as it loads
    asked: set[str] = set()
    for template in Path(ROOT / "templates").glob("*.html"):
        asked |= set(re.findall(r"""\bt\(\s*["']([a-z0-9_.]+)["']""", template.read_text()))
    for source in (
        ROOT / "door.py",
        ROOT.parent / "dashboard.py",
        ROOT.parent / "dashboard_cohorts.py",
        ROOT.parent / "dashboard_funnel.py",
        ROOT.parent / "dashboard_kpis.py",
        ROOT.parent / "dashboard_experiments.py",
        ROOT.parent / "dashboard_scripts.py",
    ):
        asked |= set(re.findall(_KEY_IN_CODE, source.read_text()))
    asked |= {item.label for item in NAV} | {tab.label for tab in TABS}
    asked |= {f"tab.{tab.name}" for tab in TABS}
    asked |= {f"status.{s}" for s in STATUSES} | {f"payout.{w}" for w in PAYOUT_STATES}
    asked |= {f"kind.{k.value}" for k in PlanKind}
    asked |= {f"stage.{s.label}" for s in Stage} | {"nav.flags_count"}
    asked |= {f"flag.{k}" for k in FLAG_KINDS} | {f"flag.{k}.says" for k in FLAG_KINDS}
    asked |= {f"script.stage_day.{s}" for s in ("warmup", "tasks")}
    for verdict in ("better", "worse", "no_difference", "too_few_cohorts", "no_members"):
        asked.add(f"verdict.{verdict}")
    for step in ("pending", "running", "done", "skipped", "failed", "unknown", "held"):
        asked.add(f"step.{step}")
    for action in ("pause", "resume", "retry", "skip", "budget"):
        asked.add(f"action.{action}")
    for reason in ("no_page", "no_cohort", "no_script", "forbidden"):
        asked |= {f"error.{reason}.title", f"error.{reason}.text"}
    asked = {key for key in asked if not key.endswith(".")}  # built from a value: see above
    missing = sorted(key for key in asked if not catalog.has(key))
    assert missing == []
    assert len(asked) > 60


def test_figures_are_written_the_way_each_language_writes_them() -> None:
    catalog = load_catalog()
    es, zh, en = (Wording(catalog, loc) for loc in ("es", "zh-CN", "en"))
    assert es.money(150, "USD") == "1,50\xa0US$" and en.money(150, "USD") == "$1.50"
    assert en.money(1500, "JPY") == "¥1,500" and en.money(None, "USD") == "–"
    assert en.percent(2 / 3) == "66.7%" and es.percent(0.5) == "50%" and en.percent(None) == "–"
    assert en.duration(41) == "41 s" and en.duration(125) == "2 min 5 s"
    assert zh.duration(3 * 3600 + 20 * 60) == "3 小时 20 分" and en.duration(None) == "–"
    assert zh("tasks.rewards_count", count=3) == "3 笔奖励"
    assert es("tasks.rewards_count", count=1) == "1 recompensa"


def _experiment(
    verdict: str, leader: str | None, *arms: tuple[str, int, float | None]
) -> Experiment:
    figures = [ArmFigures(a, 1, n, 100 * n, 0, r, None, None) for a, n, r in arms]
    return Experiment("s", "d7_pitch", "pitch", "replied", figures, verdict, leader, "")


def test_a_verdict_is_said_from_its_figures_in_the_readers_language() -> None:
    catalog = load_catalog()
    en, es, zh = (Wording(catalog, loc) for loc in ("en", "es", "zh-CN"))
    better = _experiment("better", "story", ("a", 6, 0.3), ("story", 6, 0.42))
    assert verdict_says(en, better) == "Arm story gets more replies than a: 42% against 30%."
    assert verdict_says(es, better).startswith("La variante story recibe más respuestas")
    same = _experiment("no_difference", None, ("a", 6, 0.3), ("story", 6, 0.31))
    assert verdict_says(zh, same) == "没有哪个版本与 a 的差别超出偶然范围。"
    few = _experiment("too_small", None, ("a", 2, 0.3), ("story", 6, 0.4))
    assert verdict_says(en, few) == ("Too few cohorts to tell: arm a has fewer than 5 cohorts.")
    wide = _experiment("too_small", None, ("a", 6, 0.3), ("story", 6, 0.4))
    assert "more than 5%" in verdict_says(en, wide)
    empty = _experiment("too_small", None, ("a", 6, 0.3), ("story", 6, None))
    assert verdict_says(en, empty) == "Too few cohorts to tell: arm story has no members yet."
    assert interval_box(0.2, 0.4, 0.3) == {"x": 20.0, "width": 20.0, "at": 30.0}
    assert interval_box(None, None, 0.5) == {"x": 50.0, "width": 0.0, "at": 50.0}


def test_a_flag_is_said_from_its_figures_in_the_readers_language() -> None:
    catalog = load_catalog()
    en, zh = Wording(catalog, "en"), Wording(catalog, "zh-CN")
    low = Flag("low_reply", 1, "C1", "SEA", 0.075, "", 15, 200)
    assert flag_says(en, low, "2026-W10") == (
        "15 of 200 members replied to the pitch (7.5%, under 10%)."
    )
    spent = Flag("budget_low", 1, "C1", "SEA", 0.92, "", 4600, 5000, "USD")
    assert flag_says(en, spent, "2026-W10") == "92% of the budget spent: $46.00 of $50.00."
    behind = Flag("region_behind", None, None, "SEA", 2, "", 2, 3)
    assert flag_says(zh, behind, "2026-W10") == "本周（2026-W10）已开 2 期，目标 3 期。"
    parked = Flag("payouts_parked", 9, "C9", None, 3, "", 1500, None, "USD")
    assert flag_says(en, parked, "2026-W10") == "3 payouts parked after failed deliveries ($15.00)."
    unknown = Flag("unknown_steps", 4, "C4", None, 1, "")
    assert flag_says(en, unknown, "2026-W10").startswith("1 step whose send")
    new = Flag("something_new", None, None, None, 1, "as the use case wrote it")
    assert flag_says(en, new, "2026-W10") == "as the use case wrote it"


def test_the_week_picker_steps_a_week_and_ignores_what_is_not_a_week() -> None:
    assert next_weeks("2026-W01") == ("2025-W52", "2026-W02")
    assert next_weeks("2026-W53") == ("2026-W52", "2027-W01")
    assert chosen_week("2026-W11", "2026-W10") == "2026-W11"
    for bad in (None, "", "2026-W54", "week", "2026-11"):
        assert chosen_week(bad, "2026-W10") == "2026-W10"


@pytest.mark.parametrize(
    ("header", "takes"),
    [
        ("gzip, deflate, br, zstd", True),
        ("br;q=1.0, gzip;q=0.8, *;q=0.1", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("*", True),
        ("identity", False),
        ("br, zstd", False),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("gzip;q=nonsense", False),
        ("", False),
        (None, False),
    ],
)
def test_a_browser_takes_gzip_only_where_it_says_so(header: str | None, takes: bool) -> None:
    assert accepts_gzip(header) is takes
