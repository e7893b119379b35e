"""Who may see the dashboard, in which language: what every dashboard route asks first.

A page calls :meth:`Door.viewer`: with a valid session whose API key is still active it
gets a :class:`~bot.http.web.render.Viewer`; otherwise a redirect to the login page
(which also drops the cookie of a session that ended, so a revoked key is logged out on
its next page). The login itself is the stats API's key check
(:class:`funnels.ops.keys.Authenticate`).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from bot.http.web.render import PREFIX, STATIC, NavItem, Pages, Viewer
from bot.http.web.session import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    Session,
    SessionSeal,
    from_this_site,
    session_key,
)
from bot.http.web.texts import LANGUAGE_COOKIE, Wording, choose_locale, load_catalog
from funnels.deps import Deps
from funnels.kernel.records import ApiKeyRecord
from funnels.ladder.links import VisitorKey
from funnels.ops.keys import Authenticate, ListApiKeys
from funnels.ops.kpis import Flag, RedFlags

LANGUAGE_MAX_AGE = timedelta(days=365)
NO_STORE = {"Cache-Control": "no-store"}

NAV: list[NavItem] = [
    NavItem("nav.cohorts", PREFIX, "cohorts"),
    NavItem("nav.regions", f"{PREFIX}/regions", "regions"),
    NavItem("nav.leaders", f"{PREFIX}/leaders", "leaders"),
    NavItem("nav.lines", f"{PREFIX}/lines", "lines"),
    NavItem("nav.experiments", f"{PREFIX}/experiments", "experiments"),
    NavItem("nav.scripts", f"{PREFIX}/scripts", "scripts"),
    NavItem("nav.flags", f"{PREFIX}/flags", "flags"),
]
"""The top navigation, in order. A new page adds its entry here (with its ``nav.*``
text in every locale file) and passes the same ``name`` as ``page=`` when it renders."""


FLAGS_FRESH = timedelta(seconds=30)
"""How long the navigation's count of red flags may be old: counting them is a handful
of queries, too many for every page; the flags page itself always counts afresh."""


class FlagCount:
    """The red flags for the navigation's badge, counted at most every
    :data:`FLAGS_FRESH` (on the app's clock)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._flags = RedFlags(deps)
        self._counted: tuple[datetime, int] | None = None

    async def fresh(self) -> list[Flag]:
        flags = await self._flags()
        self._counted = (self.deps.clock.now(), len(flags))
        return flags

    async def count(self) -> int:
        now = self.deps.clock.now()
        if self._counted is None or not (self._counted[0] <= now < self._counted[0] + FLAGS_FRESH):
            return len(await self.fresh())
        return self._counted[1]


@dataclass(slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str
    _gzipped: bytes | None = field(default=None, init=False, repr=False)

    def gzipped(self) -> bytes | None:
        """The body gzipped, for a browser that accepts it, when that is smaller (text:
        Swagger UI's 1.7 MB script goes over the wire as 0.46 MB). Compressed on first
        use (tens of milliseconds for the largest), not at every start."""
        if self._gzipped is None:
            # (mtime=0: the same bytes in every process.)
            self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gzipped if len(self._gzipped) < len(self.body) else None

    @property
    def gzipped_etag(self) -> str:
        """Another encoding is another representation: its own validator."""
        return self.etag[:-1] + '-gzip"'


_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
}


def load_assets(root: Path = STATIC) -> dict[str, Asset]:
    """Every static file by its path under ``static/``, read once: a handful of small
    files, so serving one costs a dict lookup."""
    assets = {}
    for path in sorted(root.rglob("*")):
        media_type = _TYPES.get(path.suffix)
        if media_type is None or not path.is_file():
            continue
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        assets[path.relative_to(root).as_posix()] = Asset(body, media_type, etag)
    return assets


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header takes gzip (named, or ``*``, without
    ``q=0``)."""
    for part in (accept_encoding or "").lower().split(","):
        coding, _, params = part.partition(";")
        if coding.strip() not in ("gzip", "x-gzip", "*"):
            continue
        q = params.strip().removeprefix("q=").strip() if "q=" in params else "1"
        try:
            return float(q) > 0
        except ValueError:
            return False
    return False


def assets_version(assets: dict[str, Asset]) -> str:
    """One short hash over every asset: put in their URLs, so a new release's files are
    new URLs and the old ones may be cached for good."""
    digest = hashlib.sha256()
    for name, asset in sorted(assets.items()):
        digest.update(name.encode() + asset.etag.encode())
    return digest.hexdigest()[:12]


class Door:
    """The session cookie, the language, and the key behind a request."""

    def __init__(self, deps: Deps, *, public_url: str | None = None) -> None:
        self.deps = deps
        self.public_url = public_url
        self.secure = bool(public_url and public_url.lower().startswith("https://"))
        self.catalog = load_catalog()
        self.assets = load_assets()
        self.pages = Pages(assets_version(self.assets))
        self.authenticate = Authenticate(deps)
        self._keys = ListApiKeys(deps)
        self._visitor_key = VisitorKey(deps)
        self.flags = FlagCount(deps)
        self._seal: SessionSeal | None = None
        self._seal_lock = asyncio.Lock()

    async def seal(self) -> SessionSeal:
        if self._seal is None:
            async with self._seal_lock:
                if self._seal is None:
                    self._seal = SessionSeal(session_key(await self._visitor_key()))
        return self._seal

    # ------------------------------------------------------------------ language

    def guest(self, request: Request) -> Viewer:
        """Someone not logged in (the login page, a refusal)."""
        return Viewer(self.wording(request), here=_here(request))

    def wording(self, request: Request) -> Wording:
        locale = choose_locale(
            request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language")
        )
        return Wording(self.catalog, locale)

    def remember_language(self, response: Response, locale: str) -> None:
        response.set_cookie(
            LANGUAGE_COOKIE,
            locale,
            max_age=int(LANGUAGE_MAX_AGE.total_seconds()),
            path=PREFIX,
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    # ------------------------------------------------------------------ session

    def from_this_site(self, request: Request) -> bool:
        headers = request.headers
        return from_this_site(
            headers.get("origin"), headers.get("referer"), headers.get("host"), self.public_url
        )

    async def open_session(self, key: ApiKeyRecord, response: Response) -> None:
        session = Session(key.id, self.deps.clock.now())
        response.set_cookie(
            SESSION_COOKIE,
            (await self.seal()).seal(session),
            max_age=int(SESSION_MAX_AGE.total_seconds()),
            path=PREFIX,
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def close_session(self, response: Response) -> None:
        response.delete_cookie(
            SESSION_COOKIE, path=PREFIX, secure=self.secure, httponly=True, samesite="lax"
        )

    async def active_key(self, request: Request) -> ApiKeyRecord | None:
        """The API key of the request's session, if the session is sound and the key is
        still active (asked on every page: a revoked key is out at once)."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        session = (await self.seal()).open(cookie, self.deps.clock.now())
        if session is None:
            return None
        # A handful of keys at most: reading them all is one small query.
        keys = await self._keys()
        return next(
            (k for k in keys if k.id == session.key_id and k.revoked_at is None),
            None,
        )

    async def viewer(self, request: Request) -> Viewer | Response:
        """Who is looking, or the way to the login page (the ended session dropped)."""
        key = await self.active_key(request)
        if key is not None:
            badges = {"flags": await self.flags.count()}
            return Viewer(self.wording(request), key.name, NAV, _here(request), badges)
        notice = "ended" if request.cookies.get(SESSION_COOKIE) else None
        answer = self.to_login(request, notice)
        if notice:
            self.close_session(answer)
        return answer

    def to_login(self, request: Request, notice: str | None = None) -> Response:
        query: dict[str, str] = {}
        if notice:
            query["notice"] = notice
        if request.url.path != PREFIX and request.method == "GET":
            query["next"] = _here(request)
        suffix = f"?{urlencode(query)}" if query else ""
        return RedirectResponse(f"{PREFIX}/login{suffix}", 303, headers=NO_STORE)


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def safe_next(value: str | None) -> str:
    """Where to go after a login or a language change: a dashboard address, never
    another site (``//evil.example`` and ``/dashboard/../x`` are refused)."""
    if (
        value
        and value.startswith(PREFIX)
        and "//" not in value
        and "\\" not in value
        and ".." not in value
        and value.isprintable()
        and len(value) <= 300
    ):
        rest = value[len(PREFIX) :]
        if not rest or rest[0] in "/?":
            return value
    return PREFIX
