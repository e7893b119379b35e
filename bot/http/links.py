"""``GET /r/{code}``: a member's tracked link. A person's click is recorded (the visitor
known by a signed first-party cookie, set here on their first visit) and locks a
first-time visitor as the member's fan; then a 302 to the task's target.

Fast by design (``scripts/bench/clicks.py``): the code's link is remembered after its
first lookup (it never changes) and the cookie key is read from the database once. A
click is stored (its fan lock and its events together: one statement on PostgreSQL)
before the redirect is answered, in group commits, so a burst of clicks costs a handful
of writes and a crash loses no click whose redirect went out; the events are counted on
the ladder in the background (:class:`~bot.http.events.EventApplier`). Event ids are deterministic,
so a click is never counted twice. If the database cannot be reached the visitor is
still redirected (the click is logged as lost). Preview fetchers and HEAD requests are
redirected and not recorded.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.http.events import EventApplier
from bot.http.front import FastRoute
from bot.telegram.batching import GroupCommit
from bot.telegram.i18n import Catalog, negotiate
from funnels.kernel.clock import Clock
from funnels.ladder.links import Click, FindLink
from funnels.ladder.visitors import VISITOR_COOKIE, VisitorSeal, is_link_preview, new_visitor_id

log = logging.getLogger("funnelbot.http")

COOKIE_MAX_AGE = 400 * 24 * 3600
"""400 days: the longest a browser keeps a cookie."""
NO_STORE = {"Cache-Control": "no-store"}


class ClickWriter:
    """Clicks stored before the redirect is answered, in group commits (the clicks that
    arrive during one write share the next, in order, so a first touch stays first);
    the applier is woken to count them."""

    def __init__(self, record: Callable[[list[Click]], Awaitable[object]], applier: EventApplier):
        self._record = record
        self._applier = applier
        self._commit: GroupCommit[Click, None] = GroupCommit(self._write)

    async def _write(self, clicks: list[Click]) -> list[None]:
        await self._record(clicks)
        return [None] * len(clicks)

    async def add(self, click: Click) -> None:
        """Store one click (with the others of its group commit)."""
        with self._applier.storing():
            await self._commit.submit(click)
        self._applier.wake()

    async def drain(self) -> None:
        """Apply what is stored now, without waiting for the applier."""
        await self._applier.apply_pending()


@dataclass
class LinkRedirects:
    """What the route needs; built by the composition root."""

    find: FindLink
    clicks: ClickWriter
    visitor_key: Callable[[], Awaitable[bytes]]
    clock: Clock
    not_found: Mapping[str, str]
    """The 404 page by locale."""
    secure_cookie: bool = False
    _seal: VisitorSeal | None = field(default=None, init=False)
    _seal_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _redirects: dict[str, list[tuple[bytes, bytes]]] = field(default_factory=dict, init=False)

    async def seal(self) -> VisitorSeal:
        if self._seal is None:
            async with self._seal_lock:
                if self._seal is None:
                    self._seal = VisitorSeal(await self.visitor_key())
        return self._seal

    def redirect_headers(self, url: str) -> list[tuple[bytes, bytes]]:
        """A redirect's headers to ``url``, built once per target."""
        headers = self._redirects.get(url)
        if headers is None:
            location = RedirectResponse(url).headers["location"]  # quoted as Starlette does
            headers = self._redirects[url] = [
                (b"location", location.encode("latin-1")),
                (b"cache-control", b"no-store"),
                (b"content-length", b"0"),
            ]
        return headers

    def cookie_header(self, value: str) -> str:
        """The visitor cookie's ``Set-Cookie`` (built by hand: it is on the hot path)."""
        secure = "; Secure" if self.secure_cookie else ""
        return (
            f"{VISITOR_COOKIE}={value}; Max-Age={COOKIE_MAX_AGE}; Path=/r"
            f"{secure}; HttpOnly; SameSite=Lax"
        )


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


def fast_route(links: LinkRedirects) -> FastRoute:
    """``GET|HEAD /r/{code}`` for the front door (:mod:`bot.http.front`): it needs
    nothing FastAPI's dependency solving and validation add (one path segment, read as
    text), so answering a click costs about what a bare FastAPI redirect does, though it
    does more (``scripts/bench/clicks.py``). Not in the OpenAPI schema: it is for
    browsers."""

    async def tracked_link(request: Request) -> Response:
        """A member's tracked link: 302 to the task's target (a plain 404 page for an
        unknown code). A person's click is recorded; preview fetchers and HEAD are not."""
        code = request.path_params["code"]
        target = await links.find(code)
        if target is None:
            page = links.not_found.get(_locale(request.headers.get("accept-language")), "")
            return HTMLResponse(page, 404, headers=NO_STORE)
        response = Response(status_code=302)
        response.raw_headers = [*links.redirect_headers(target.url)]
        if request.method == "HEAD" or is_link_preview(request.headers.get("user-agent")):
            return response
        try:
            seal = await links.seal()
            visitor = seal.open(request.cookies.get(VISITOR_COOKIE))
            if visitor is None:
                visitor = new_visitor_id()
                response.raw_headers.append(
                    (b"set-cookie", links.cookie_header(seal.seal(visitor)).encode("latin-1"))
                )
            await links.clicks.add(Click(target, visitor, links.clock.now()))
        except Exception:  # the visitor still gets where the link leads
            log.exception("could not record a click on /r/%s", code)
        return response

    return FastRoute("/r/", frozenset({"GET", "HEAD"}), tracked_link, param="code")
