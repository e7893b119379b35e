"""The dashboard in a real browser: Debian's Chromium (``apt-get install chromium``),
driven by Playwright for Python, which launches it by path (no browser download), against
the app served by uvicorn on a free loopback port over a seeded SQLite database.

Without Playwright or ``/usr/bin/chromium`` these tests skip and say which is missing;
under ``CI=true`` they fail instead (``.ci/run`` installs Chromium when it can). Every
page a test visits is written as a screenshot to ``test-artifacts/screenshots/``
(git-ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn

from bot.http.app import create_app
from bot.telegram.offline import RecordingMessenger
from funnels.deps import Deps
from funnels.kernel.clock import ManualClock
from storage.db import create_engine
from storage.uow import SqlStore
from tests.support.availability import unavailable
from tests.support.dashboard import DASHBOARD, Seeded, SeededKpis, seed_dashboard, seed_kpis
from tests.support.funnel_kit import Kit, load, warmup_at
from tests.support.loopback import until

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_ANSWER_STATUS = "Failed to load resource: the server responded with a status of"
"""How Chromium logs a page answered with 401 or 404 (a refused login, a missing
cohort): the tests expect those; any other console error is a fault."""
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


class _Server(uvicorn.Server):
    """uvicorn in the test's own event loop, leaving the test runner's signals alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Site:
    """The served dashboard and the world behind it."""

    url: str
    kit: Kit
    seeded: Seeded
    world: SeededKpis | None = None


@dataclass
class Tab:
    """A browser page, with what went wrong in it (script errors, CSP refusals) and a
    screenshot helper."""

    page: Page
    site: Site
    name: str
    problems: list[str] = field(default_factory=list)

    async def goto(self, path: str) -> Any:
        return await self.page.goto(self.site.url + path)

    async def shot(self, what: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.name}--{what}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    async def login(self, key: str) -> None:
        await self.goto(DASHBOARD)
        await self.page.fill("#key", key)
        await self.page.click("button[type=submit].primary")
        await self.page.wait_for_load_state()


def _chromium_installed() -> bool:
    return CHROMIUM.exists()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("Playwright is not installed (pip install -e '.[dev]')")
    if not _chromium_installed():
        unavailable(f"Chromium is not at {CHROMIUM} (apt-get install -y chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@contextlib.asynccontextmanager
async def served(sqlite_url: str, kpis: bool = False) -> AsyncIterator[Site]:
    """The app as ``funnelbot run`` builds it (stats, ops and the dashboard), served by
    uvicorn on a free loopback port over the seeded world (``kpis``: with what the KPI
    pages show, :func:`~tests.support.dashboard.seed_kpis`)."""
    engine = create_engine(sqlite_url)
    store = SqlStore(engine)
    clock = ManualClock(warmup_at(1, "08:00"))
    messenger = RecordingMessenger()
    kit = Kit(store, clock, messenger, Deps(store, messenger, clock), load())
    world = await seed_kpis(kit) if kpis else None
    seeded = world.base if world else await seed_dashboard(kit)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(engine, deps=kit.deps, public_url=f"http://127.0.0.1:{port}")
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = _Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started, within=10)
        yield Site(f"http://127.0.0.1:{port}", kit, seeded, world)
    finally:
        server.should_exit = True
        await serving
        sock.close()
        await engine.dispose()


@pytest.fixture
async def site(sqlite_url: str) -> AsyncIterator[Site]:
    """The dashboard over :func:`~tests.support.dashboard.seed_dashboard`'s world."""
    async with served(sqlite_url) as serving:
        yield serving


@pytest.fixture
async def tab(browser: Browser, site: Site, request: pytest.FixtureRequest) -> AsyncIterator[Tab]:
    """A fresh browser context (no cookies) in English, watching for script errors and
    Content-Security-Policy refusals: a page that needs an inline script fails here."""
    context = await browser.new_context(
        locale="en-US", extra_http_headers={"Accept-Language": "en-US,en;q=0.9"}
    )
    page = await context.new_page()
    name = re.sub(r"\W+", "-", request.node.name).strip("-")
    opened = Tab(page, site, name)
    page.on("pageerror", lambda error: opened.problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            opened.problems.append(f"console {message.type}: {message.text}")
            if message.type == "error" and not message.text.startswith(_ANSWER_STATUS)
            else None
        ),
    )
    try:
        yield opened
    finally:
        await context.close()
    assert opened.problems == [], opened.problems
