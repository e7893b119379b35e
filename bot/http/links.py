"""``GET /r/{code}``: a member's tracked link. A person's click is recorded (the visitor
known by a signed first-party cookie, set here on their first visit) and locks a
first-time visitor as the member's fan; then a 302 to the task's target.

Fast by design: the code's link is remembered after its first lookup (it never
changes), the cookie key is read from the database once, and the clicks that arrive
while one batch is being written share the next (group commit): a burst of clicks costs
a handful of transactions, and each click is stored before its redirect is sent. Preview
fetchers and HEAD requests are redirected and not recorded; a click that cannot be
recorded (the database is down) is still redirected: a lost count is better than a
broken link in a member's post.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.telegram.batching import GroupCommit
from bot.telegram.i18n import Catalog, negotiate
from funnels.kernel.clock import Clock
from funnels.ladder.events import IngestResult
from funnels.ladder.links import Click, FindLink
from funnels.ladder.visitors import VISITOR_COOKIE, VisitorSeal, is_link_preview, new_visitor_id

log = logging.getLogger("funnelbot.http")

COOKIE_MAX_AGE = 400 * 24 * 3600
"""400 days: the longest a browser keeps a cookie."""
NO_STORE = {"Cache-Control": "no-store"}


@dataclass
class LinkRedirects:
    """What the route needs; built by the composition root."""

    find: FindLink
    record: Callable[[list[Click]], Awaitable[list[IngestResult]]]
    """Writes a batch of clicks (one result per click)."""
    visitor_key: Callable[[], Awaitable[bytes]]
    clock: Clock
    not_found: Mapping[str, str]
    """The 404 page by locale."""
    secure_cookie: bool = False
    _batches: GroupCommit[Click, IngestResult] | None = field(default=None, init=False)
    _seal: VisitorSeal | None = field(default=None, init=False)
    _seal_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def seal(self) -> VisitorSeal:
        if self._seal is None:
            async with self._seal_lock:
                if self._seal is None:
                    self._seal = VisitorSeal(await self.visitor_key())
        return self._seal

    async def count(self, click: Click) -> None:
        if self._batches is None:
            self._batches = GroupCommit(self.record)
        await self._batches.submit(click)


def not_found_pages(catalog: Catalog) -> dict[str, str]:
    """A plain, small page per locale for a code that leads nowhere."""
    pages = {}
    for locale in catalog.locales:
        title = html.escape(catalog.text(locale, "links.not_found_title"))
        body = html.escape(catalog.text(locale, "links.not_found"))
        pages[locale] = (
            f'<!doctype html><html lang="{locale}"><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title><h1>{title}</h1><p>{body}</p></html>"
        )
    return pages


def _locale(accept_language: str | None) -> str:
    first = (accept_language or "").split(",", 1)[0].split(";", 1)[0].strip()
    return negotiate(first or None)


def routes(links: LinkRedirects | None) -> APIRouter:
    router = APIRouter()
    if links is None:
        return router

    @router.api_route("/r/{code}", methods=["GET", "HEAD"], response_class=RedirectResponse)
    async def tracked_link(code: str, request: Request) -> Response:
        """A member's tracked link: 302 to the task's target (a plain 404 page for an
        unknown code). A person's click is recorded; preview fetchers and HEAD are not."""
        target = await links.find(code)
        if target is None:
            page = links.not_found.get(_locale(request.headers.get("accept-language")), "")
            return HTMLResponse(page, 404, headers=NO_STORE)
        response = RedirectResponse(target.url, 302, headers=NO_STORE)
        if request.method == "HEAD" or is_link_preview(request.headers.get("user-agent")):
            return response
        try:
            seal = await links.seal()
            visitor = seal.open(request.cookies.get(VISITOR_COOKIE))
            if visitor is None:
                visitor = new_visitor_id()
                response.set_cookie(
                    VISITOR_COOKIE,
                    seal.seal(visitor),
                    max_age=COOKIE_MAX_AGE,
                    path="/r",
                    secure=links.secure_cookie,
                    httponly=True,
                    samesite="lax",
                )
            await links.count(Click(target, visitor, links.clock.now()))
        except Exception:  # the visitor still gets where the link leads
            log.exception("could not record a click on /r/%s", code)
        return response

    return router
