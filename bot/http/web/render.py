"""How a dashboard page is made: Jinja2 templates shipped in the package, the context
every page shares, and the headers every dashboard answer carries.

Pages are HTML with no inline script or style: a chart's figures travel as JSON in a
``<script type="application/json">`` block (Jinja's ``tojson`` escapes ``<``, ``>`` and
``&``, so no figure can close the block) and ``static/dashboard.js`` draws them with the
vendored Chart.js. That lets the Content-Security-Policy allow the site itself and
nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from bot.http.web.texts import Wording

ROOT = Path(__file__).parent
STATIC = ROOT / "static"
PREFIX = "/dashboard"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # Pages show live figures to one logged-in operator: never from a cache.
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class NavItem:
    """A link of the top navigation: its text key and address."""

    label: str
    href: str
    name: str
    """What the page that is open says it is, to mark its link."""


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart as ``static/dashboard.js`` draws it: one series or more over shared
    labels. ``scale`` says how to write the values: ``number`` (a count: its axis steps
    in whole numbers), ``percent`` (a value of 0 to 1) or ``seconds``."""

    id: str
    title: str
    labels: list[str]
    series: list[Mapping[str, Any]]
    kind: str = "bar"
    scale: str = "number"
    horizontal: bool = False

    def spec(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "labels": self.labels,
            "series": list(self.series),
            "scale": self.scale,
            "horizontal": self.horizontal,
        }


@dataclass
class Viewer:
    """Who is looking: their locale's wording, and the key they logged in with (None on
    the login page)."""

    words: Wording
    key_name: str | None = None
    nav: list[NavItem] = field(default_factory=list)
    here: str = PREFIX
    """The address of the page, to come back to after a language change."""
    badges: dict[str, int] = field(default_factory=dict)
    """A count beside a navigation link, by the link's ``name`` (the red flags)."""


class Pages:
    """Renders templates into answers with the dashboard's headers."""

    def __init__(self, asset_version: str) -> None:
        self.env = Environment(
            loader=FileSystemLoader(ROOT / "templates"),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.asset_version = asset_version
        self.env.globals["prefix"] = PREFIX
        self.env.globals["asset"] = self.asset_url

    def asset_url(self, name: str) -> str:
        """A static file's URL with this release's version in it (cached for good)."""
        return f"{PREFIX}/static/{name}?v={self.asset_version}"

    def render(
        self,
        template: str,
        viewer: Viewer,
        *,
        status: int = 200,
        page: str = "",
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        body = self.env.get_template(template).render(
            t=viewer.words,
            lang=viewer.words.locale,
            viewer=viewer,
            page=page,
            **context,
        )
        return HTMLResponse(body, status, headers={**PAGE_HEADERS, **(headers or {})})
