"""The dashboard over the app in-process (no browser), on SQLite and PostgreSQL: the login
with an API key and its session cookie (flags, tampering, expiry, a revoked key), the
cross-site checks on its forms, the language choice, the friendly 404s, the
Content-Security-Policy, the static assets' caching and compression, and the API's
Swagger UI served from the app's own files. What a browser shows (charts,
the language switch) is tested in ``tests/browser/``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bot.http.app import create_app
from bot.http.web.render import CSP
from bot.http.web.session import SESSION_COOKIE
from funnels.ops.keys import CreateApiKey, RevokeApiKey
from tests.support.dashboard import DASHBOARD, Seeded, seed_dashboard
from tests.support.funnel_kit import Kit

BASE = "http://funnelbot.test"
SAME_SITE = {"Origin": BASE}


def _client(kit: Kit, public_url: str | None = None) -> httpx.AsyncClient:
    app = create_app(kit.store.engine, deps=kit.deps, public_url=public_url)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=BASE)


@pytest.fixture
async def web(kit: Kit) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(kit) as client:
        yield client


@pytest.fixture
async def seeded(kit: Kit) -> Seeded:
    return await seed_dashboard(kit)


async def _login(web: httpx.AsyncClient, key: str, **headers: str) -> httpx.Response:
    return await web.post(f"{DASHBOARD}/login", data={"key": key}, headers={**SAME_SITE, **headers})


def _cookie_flags(answer: httpx.Response) -> dict[str, str]:
    """The session's ``Set-Cookie``, attribute by attribute (lower-case names)."""
    (header,) = [h for h in answer.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE)]
    parts = [p.strip() for p in header.split(";")]
    flags = {p.split("=", 1)[0].lower(): p.split("=", 1)[-1] for p in parts[1:]}
    flags["value"] = parts[0].split("=", 1)[1]
    return flags


def _field(page: str, row: str, field: str) -> str:
    """The text of ``<td data-field=field>`` in the table row marked ``row``."""
    found = re.search(rf"<tr [^>]*{row}[^>]*>(.*?)</tr>", page, re.S)
    assert found, row
    cell = re.search(rf'data-field="{field}">(.*?)</td>', found.group(1), re.S)
    assert cell, (row, field)
    return re.sub(r"<[^>]+>", "", cell.group(1)).strip()


# ------------------------------------------------------------------ logging in


async def test_a_wrong_key_is_refused_with_a_message_and_no_cookie(
    web: httpx.AsyncClient, seeded: Seeded
) -> None:
    form = await web.get(f"{DASHBOARD}/login")
    assert form.status_code == 200 and 'name="key"' in form.text
    for wrong in ("fbk_nope", "", seeded.secret + "x", "x" * 5000):
        answer = await _login(web, wrong)
        assert answer.status_code == 401
        assert "That key is not valid" in answer.text
        assert "set-cookie" not in answer.headers
    assert (await web.get(DASHBOARD)).headers["location"] == f"{DASHBOARD}/login"


async def test_the_right_key_opens_a_session_that_names_the_key_and_never_holds_it(
    web: httpx.AsyncClient, seeded: Seeded
) -> None:
    answer = await _login(web, seeded.secret)
    assert answer.status_code == 303 and answer.headers["location"] == DASHBOARD
    flags = _cookie_flags(answer)
    assert flags["path"] == DASHBOARD and flags["samesite"].lower() == "lax"
    assert "httponly" in flags and "secure" not in flags
    assert int(flags["max-age"]) == 12 * 3600
    assert seeded.secret not in flags["value"] and seeded.secret[4:12] not in flags["value"]
    assert flags["value"].startswith(f"{seeded.key.id}.")
    page = await web.get(DASHBOARD)
    assert page.status_code == 200
    assert "Signed in with the key ops-sea" in page.text
    assert [m for m in re.findall(r'data-cohort="(\w+)"', page.text)] == ["C3", "C2", "C1"]
    assert _field(page.text, 'data-cohort="C1"', "spent") == "$1.50"
    assert _field(page.text, 'data-cohort="C1"', "budget") == "$1.70"


async def test_the_login_goes_back_to_the_page_asked_for(
    web: httpx.AsyncClient, seeded: Seeded
) -> None:
    asked = f"{DASHBOARD}/cohorts/{seeded.main.id}/tasks"
    first = await web.get(asked)
    assert first.status_code == 303
    assert (
        first.headers["location"]
        == f"{DASHBOARD}/login?next=%2Fdashboard%2Fcohorts%2F{seeded.main.id}%2Ftasks"
    )
    answer = await web.post(
        f"{DASHBOARD}/login", data={"key": seeded.secret, "next": asked}, headers=SAME_SITE
    )
    assert answer.headers["location"] == asked
    for elsewhere in ("https://evil.example/", "//evil.example", "/dashboard/../api/v1/cohorts"):
        web.cookies.clear()
        away = await web.post(
            f"{DASHBOARD}/login", data={"key": seeded.secret, "next": elsewhere}, headers=SAME_SITE
        )
        assert away.headers["location"] == DASHBOARD


async def test_cookies_are_secure_behind_an_https_address(kit: Kit, seeded: Seeded) -> None:
    async with _client(kit, public_url="https://ops.example.com") as web:
        answer = await _login(web, seeded.secret, Origin="https://ops.example.com")
        assert answer.status_code == 303
        assert "secure" in _cookie_flags(answer)


async def test_forms_from_another_site_are_refused(web: httpx.AsyncClient, seeded: Seeded) -> None:
    for headers in ({}, {"Origin": "https://evil.example"}, {"Referer": "https://evil.example/x"}):
        answer = await web.post(f"{DASHBOARD}/login", data={"key": seeded.secret}, headers=headers)
        assert answer.status_code == 403 and "set-cookie" not in answer.headers
        assert "did not come from a page of this dashboard" in answer.text
    by_referer = await web.post(
        f"{DASHBOARD}/login", data={"key": seeded.secret}, headers={"Referer": f"{BASE}/dashboard"}
    )
    assert by_referer.status_code == 303
    kept = await web.post(f"{DASHBOARD}/logout", headers={"Origin": "https://evil.example"})
    assert kept.status_code == 403
    assert (await web.get(DASHBOARD)).status_code == 200  # still logged in
    lang = await web.post(
        f"{DASHBOARD}/language", data={"lang": "es"}, headers={"Origin": "https://evil.example"}
    )
    assert lang.status_code == 403 and "set-cookie" not in lang.headers


async def test_logout_ends_the_session(web: httpx.AsyncClient, seeded: Seeded) -> None:
    await _login(web, seeded.secret)
    answer = await web.post(f"{DASHBOARD}/logout", headers=SAME_SITE)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{DASHBOARD}/login?notice=bye"
    assert _cookie_flags(answer)["max-age"] == "0"
    assert (await web.get(DASHBOARD)).status_code == 303
    assert "You have logged out" in (await web.get(answer.headers["location"])).text


async def test_a_tampered_or_foreign_cookie_is_no_session(
    kit: Kit, web: httpx.AsyncClient, seeded: Seeded
) -> None:
    _, other_secret = await CreateApiKey(kit.deps)("other")
    value = _cookie_flags(await _login(web, seeded.secret))["value"]
    key_id, issued, mac = value.split(".")
    forged = [
        f"{int(key_id) + 1}.{issued}.{mac}",  # another key's id under this mac
        f"{key_id}.{int(issued) + 3600}.{mac}",  # a later issue time
        f"{key_id}.{issued}.{mac[:-2]}{'BB' if mac.endswith('AA') else 'AA'}",  # another mac
        f"{key_id}.{issued}",
        "garbage",
        other_secret,  # a key is not a session
    ]
    for cookie in forged:
        web.cookies.clear()
        web.cookies.set(SESSION_COOKIE, cookie, domain="funnelbot.test", path=DASHBOARD)
        answer = await web.get(DASHBOARD)
        assert answer.status_code == 303, cookie
        assert answer.headers["location"] == f"{DASHBOARD}/login?notice=ended"
        assert _cookie_flags(answer)["max-age"] == "0"


async def test_a_revoked_key_is_logged_out_at_its_next_page(
    kit: Kit, web: httpx.AsyncClient, seeded: Seeded
) -> None:
    await _login(web, seeded.secret)
    assert (await web.get(f"{DASHBOARD}/cohorts/{seeded.main.id}")).status_code == 200
    await RevokeApiKey(kit.deps)("ops-sea")
    answer = await web.get(f"{DASHBOARD}/cohorts/{seeded.main.id}")
    assert answer.status_code == 303 and "notice=ended" in answer.headers["location"]
    assert _cookie_flags(answer)["max-age"] == "0"
    again = await _login(web, seeded.secret)
    assert again.status_code == 401


async def test_a_session_expires_after_twelve_hours(
    kit: Kit, web: httpx.AsyncClient, seeded: Seeded
) -> None:
    await _login(web, seeded.secret)
    kit.clock.advance(timedelta(hours=11, minutes=59))
    assert (await web.get(DASHBOARD)).status_code == 200
    kit.clock.advance(timedelta(minutes=2))
    assert (await web.get(DASHBOARD)).status_code == 303


# ------------------------------------------------------------------ pages


async def test_an_unknown_cohort_or_page_is_a_friendly_404(
    web: httpx.AsyncClient, seeded: Seeded
) -> None:
    await _login(web, seeded.secret)
    for path in (f"/cohorts/{seeded.main.id + 50}", "/cohorts/abc", "/cohorts/0/tasks", "/nope"):
        answer = await web.get(DASHBOARD + path, headers={"Accept-Language": "es"})
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html")
        assert "Volver a las cohortes" in answer.text
    missing = await web.get(f"{DASHBOARD}/cohorts/{seeded.main.id + 50}")
    assert "No such cohort" in missing.text and missing.headers["content-security-policy"] == CSP


async def test_pages_show_the_figures_of_the_stats_use_cases(
    web: httpx.AsyncClient, seeded: Seeded
) -> None:
    await _login(web, seeded.secret)
    base = f"{DASHBOARD}/cohorts/{seeded.main.id}"
    timeline = (await web.get(f"{base}/timeline")).text
    # Two warm-up days and three task days from Mar 2: its last day is Mar 6 (it ends at
    # the midnight after, which is no date to show).
    assert "<dd>Mar 2, 2026 – Mar 6, 2026</dd>" in timeline
    assert '<dd data-field="admission">Join requests</dd>' in timeline
    assert _field(timeline, 'data-step="d1_welcome"', "late") == "0 s"
    actions = re.findall(r'data-action="(\w+)".*?data-field="by">([^<]+)<', timeline, re.S)
    assert actions == [
        ("pause", "by the API key ops-sea"),
        ("resume", "by ana on the command line"),
    ]
    # The actions sit among the steps by time: after the envelope, before the pitch.
    order = re.findall(r'data-(?:step|action)="([\w.]+)"', timeline)
    assert order.index("d1_envelope") < order.index("pause") < order.index("d2_pitch")
    tasks = (await web.get(f"{base}/tasks")).text
    assert _field(tasks, 'data-task="invite_fans"', "rate") == "80%"
    assert _field(tasks, 'data-task="invite_fans"', "owed") == "$1.50 (3)"
    assert _field(tasks, 'data-task="invite_fans"', "pending") == "$0.50 (1)"
    envelopes = (await web.get(f"{base}/envelopes")).text
    assert _field(envelopes, 'data-envelope="d1_envelope"', "rate") == "100%"
    assert _field(envelopes, 'data-envelope="d1_envelope"', "empty") == "30 s"
    assert _field(envelopes, 'data-envelope="d1_envelope"', "total") == "$1.00"


async def test_the_cohort_list_filters_and_pages(web: httpx.AsyncClient, seeded: Seeded) -> None:
    await _login(web, seeded.secret)

    async def codes(**params: Any) -> list[str]:
        page = await web.get(DASHBOARD, params=params)
        assert page.status_code == 200
        return re.findall(r'data-cohort="(\w+)"', page.text)

    assert await codes(region="sea") == ["C3", "C1"]
    assert await codes(region="SEA", status="paused") == ["C3"]
    assert await codes(status="finished") == []
    assert await codes(status="bogus", before="x") == ["C3", "C2", "C1"]  # ignored, not a 422
    assert await codes(before=str(seeded.paused.id)) == ["C2", "C1"]


async def test_the_cohort_list_leads_page_by_page_and_back_to_the_newest(
    web: httpx.AsyncClient, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.http.dashboard_cohorts.PAGE_SIZE", 2)
    await _login(web, seeded.secret)
    first = (await web.get(DASHBOARD, params={"region": "", "status": "running"})).text
    assert re.findall(r'data-cohort="(\w+)"', first) == ["C2", "C1"]
    assert 'data-testid="next-page"' not in first
    page = (await web.get(DASHBOARD)).text
    assert re.findall(r'data-cohort="(\w+)"', page) == ["C3", "C2"]
    following = re.search(r'rel="next" data-testid="next-page" href="([^"]+)"', page)
    assert following and "← Newest" not in page
    older = (await web.get(following.group(1).replace("&amp;", "&"))).text
    assert re.findall(r'data-cohort="(\w+)"', older) == ["C1"]
    assert 'data-testid="next-page"' not in older and "← Newest" in older


async def test_every_page_carries_the_csp_and_no_inline_script(
    web: httpx.AsyncClient, seeded: Seeded
) -> None:
    login = await web.get(f"{DASHBOARD}/login")
    await _login(web, seeded.secret)
    base = f"{DASHBOARD}/cohorts/{seeded.main.id}"
    pages = [login] + [
        await web.get(p) for p in (DASHBOARD, base, f"{base}/tasks", f"{base}/envelopes")
    ]
    for page in pages:
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == CSP
        assert "default-src 'self'" in CSP and "unsafe-inline" not in CSP
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["x-content-type-options"] == "nosniff"
        for tag in re.findall(r"<script\b[^>]*>", page.text):
            assert "src=" in tag or 'type="application/json"' in tag, tag
        assert not re.search(r"\son[a-z]+=", page.text), "an inline event handler"
        assert "style=" not in page.text and "<style" not in page.text


# ------------------------------------------------------------------ language


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "Log in to the dashboard"),
        ("fr-FR,fr;q=0.9", "Log in to the dashboard"),
        ("es-MX,es;q=0.9,en;q=0.5", "Entrar al panel"),
        ("zh-TW,zh;q=0.9", "登录看板"),
        ("fr;q=1, en;q=0.2, es;q=0.8", "Entrar al panel"),
        ("es;q=0, en", "Log in to the dashboard"),
    ],
)
async def test_the_language_follows_the_browser_then_falls_back_to_english(
    web: httpx.AsyncClient, accept: str | None, expected: str
) -> None:
    headers = {"Accept-Language": accept} if accept else {}
    page = await web.get(f"{DASHBOARD}/login", headers=headers)
    assert expected in page.text


async def test_the_language_switch_is_remembered_over_the_browser(
    web: httpx.AsyncClient,
) -> None:
    answer = await web.post(
        f"{DASHBOARD}/language",
        data={"lang": "zh-CN", "next": f"{DASHBOARD}/login"},
        headers=SAME_SITE,
    )
    assert answer.status_code == 303 and answer.headers["location"] == f"{DASHBOARD}/login"
    page = await web.get(f"{DASHBOARD}/login", headers={"Accept-Language": "es"})
    assert '<html lang="zh-CN">' in page.text and "登录看板" in page.text
    unknown = await web.post(f"{DASHBOARD}/language", data={"lang": "fr"}, headers=SAME_SITE)
    assert unknown.status_code == 303 and "set-cookie" not in unknown.headers


# ------------------------------------------------------------------ assets


async def test_assets_are_served_by_the_app_with_cache_headers(web: httpx.AsyncClient) -> None:
    page = (await web.get(f"{DASHBOARD}/login")).text
    css = re.search(r'href="(/dashboard/static/dashboard\.css\?v=\w+)"', page)
    assert css
    versioned = await web.get(css.group(1))
    assert versioned.status_code == 200 and versioned.headers["content-type"].startswith("text/css")
    assert versioned.headers["cache-control"] == "public, max-age=31536000, immutable"
    etag = versioned.headers["etag"]
    again = await web.get(css.group(1), headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.content
    plain = await web.get(f"{DASHBOARD}/static/vendor/chart.umd.min.js")
    assert plain.status_code == 200 and b"Chart.js v4" in plain.content[:200]
    assert plain.headers["cache-control"] == "public, max-age=3600"
    assert plain.headers["content-type"].startswith("text/javascript")
    licence = await web.get(f"{DASHBOARD}/static/vendor/chart.js.LICENSE.md")
    assert licence.status_code == 200 and "MIT License" in licence.text
    assert (await web.get(f"{DASHBOARD}/static/nope.js")).status_code == 404
    # The pages name their icon (else every browser asks for /favicon.ico, a 404).
    icon = re.search(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)"', page)
    assert icon and icon.group(1).startswith(f"{DASHBOARD}/static/favicon.svg?v=")
    served = await web.get(icon.group(1))
    assert served.status_code == 200 and served.headers["content-type"] == "image/svg+xml"
    assert served.content.startswith(b"<svg") and b"<script" not in served.content
    for outside in ("../web/session.py", "vendor/../../render.py", "%2e%2e/render.py"):
        answer = await web.get(f"{DASHBOARD}/static/{outside}")
        assert answer.status_code in (303, 404) and b"import" not in answer.content


async def test_text_assets_go_gzipped_to_a_browser_that_takes_it(web: httpx.AsyncClient) -> None:
    path = f"{DASHBOARD}/static/vendor/swagger-ui-bundle.js"
    plain = await web.get(path, headers={"Accept-Encoding": "identity"})
    packed = await web.get(path, headers={"Accept-Encoding": "gzip, deflate"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert int(packed.headers["content-length"]) < int(plain.headers["content-length"]) / 3
    assert packed.content == plain.content  # (as the client decodes it)
    assert plain.headers["vary"] == packed.headers["vary"] == "Accept-Encoding"
    assert packed.headers["etag"] != plain.headers["etag"]
    again = await web.get(
        path, headers={"Accept-Encoding": "gzip", "If-None-Match": packed.headers["etag"]}
    )
    assert again.status_code == 304 and "content-encoding" not in again.headers
    # The other encoding's validator does not match this one.
    other = await web.get(
        path, headers={"Accept-Encoding": "gzip", "If-None-Match": plain.headers["etag"]}
    )
    assert other.status_code == 200
    declined = await web.get(path, headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in declined.headers


async def test_the_api_docs_are_served_from_the_app_itself(web: httpx.AsyncClient) -> None:
    """``/docs`` loads Swagger UI from this app (FastAPI's own page would load it from a
    CDN, which a network may block); ``/redoc`` (a CDN too) is not served."""
    docs = await web.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert "'/openapi.json'" in docs.text
    loads = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert len(loads) == 3, loads  # the script, the styles, the icon
    for url in loads:
        assert url.startswith(f"{DASHBOARD}/static/"), url
        assert (await web.get(url)).status_code == 200, url
    assert (await web.get("/openapi.json")).json()["info"]["title"] == "funnelbot"
    assert (await web.get("/redoc")).status_code == 404
