"""``/dashboard``: what ops read in a browser, behind a login with the stats API's keys,
in zh-CN, es and en. Rendered here from templates and assets shipped in the package
(``bot/http/web/``), no CDN.

This module is the door: logging in and out, the language switch, the static files, a
friendly 404, and ``/docs`` (Swagger UI over the API, from the same static files). The
pages themselves are one routes module per area, each included below
(``dashboard_cohorts``: the cohort list and one cohort's timeline, tasks and envelopes;
``dashboard_funnel``: a cohort's funnel and days; ``dashboard_kpis``: regions, leaders,
the tree of lines and the red flags; ``dashboard_experiments``: A/B variants;
``dashboard_scripts``: scripts as their groups see them). A new area follows the same
pattern: a ``routes(door)`` module, its templates extending ``base.html``, its texts in
``web/locales/*.yaml``, and an entry in :data:`bot.http.web.door.NAV`.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import RedirectResponse, Response

from bot.http import (
    dashboard_cohorts,
    dashboard_experiments,
    dashboard_funnel,
    dashboard_kpis,
    dashboard_scripts,
)
from bot.http.web.door import NO_STORE, Door, accepts_gzip, safe_next
from bot.http.web.render import PREFIX
from bot.telegram.i18n import SUPPORTED
from funnels.deps import Deps

FORM_LIMIT = 4096
"""A login form holds one key: anything longer is not one."""
NOTICES = {"ended": "login.notice_ended", "bye": "login.notice_bye"}
ASSET_CACHE = "public, max-age=31536000, immutable"
"""For an asset asked for by the version in its URL (``?v=``): that URL never changes."""
ASSET_REVALIDATE = "public, max-age=3600"


async def _form(request: Request) -> dict[str, str]:
    """A url-encoded form's fields (the first value of each); empty when the body is
    too large or not a form."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def _redirect(to: str) -> RedirectResponse:
    return RedirectResponse(to, 303, headers=NO_STORE)


def routes(deps: Deps, *, public_url: str | None = None) -> APIRouter:
    """The dashboard's routes; ``public_url`` is the address people reach the service
    at (an ``https`` one makes the cookies ``Secure``; forms posted from it pass)."""
    door = Door(deps, public_url=public_url)
    router = APIRouter(include_in_schema=False)

    def refused(request: Request) -> Response:
        viewer = door.guest(request)
        return door.pages.render("error.html", viewer, status=403, reason="forbidden")

    @router.get(f"{PREFIX}/login")
    async def login_form(
        request: Request, notice: str | None = None, next: str | None = None
    ) -> Response:
        if await door.active_key(request) is not None:
            return _redirect(safe_next(next))
        viewer = door.guest(request)
        message = NOTICES.get(notice or "")
        return door.pages.render(
            "login.html", viewer, page="login", notice=message, error=None, next=safe_next(next)
        )

    @router.post(f"{PREFIX}/login")
    async def login(request: Request) -> Response:
        if not door.from_this_site(request):
            return refused(request)
        form = await _form(request)
        key = await door.authenticate(form.get("key", "").strip())
        target = safe_next(form.get("next"))
        if key is None:
            viewer = door.guest(request)
            return door.pages.render(
                "login.html",
                viewer,
                status=401,
                page="login",
                notice=None,
                error="login.wrong_key",
                next=target,
            )
        answer = _redirect(target)
        await door.open_session(key, answer)
        return answer

    @router.post(f"{PREFIX}/logout")
    async def logout(request: Request) -> Response:
        if not door.from_this_site(request):
            return refused(request)
        answer = _redirect(f"{PREFIX}/login?notice=bye")
        door.close_session(answer)
        return answer

    @router.post(f"{PREFIX}/language")
    async def language(request: Request) -> Response:
        """The language switch: remembered in a cookie, then back to the page."""
        if not door.from_this_site(request):
            return refused(request)
        form = await _form(request)
        answer = _redirect(safe_next(form.get("next")))
        if form.get("lang") in SUPPORTED:
            door.remember_language(answer, form["lang"])
        return answer

    @router.get(PREFIX + "/static/{name:path}")
    async def static(request: Request, name: str, v: str | None = None) -> Response:
        asset = door.assets.get(name)
        if asset is None:
            return Response(status_code=404, headers=NO_STORE)
        versioned = v is not None and v == door.pages.asset_version
        headers = {
            "ETag": asset.etag,
            "Cache-Control": ASSET_CACHE if versioned else ASSET_REVALIDATE,
            "X-Content-Type-Options": "nosniff",
        }
        body = asset.body
        if (gzipped := asset.gzipped()) is not None:
            headers["Vary"] = "Accept-Encoding"
            if accepts_gzip(request.headers.get("accept-encoding")):
                body = gzipped
                headers["ETag"] = asset.gzipped_etag
                headers["Content-Encoding"] = "gzip"
        if request.headers.get("if-none-match") == headers["ETag"]:
            headers.pop("Content-Encoding", None)
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=asset.media_type, headers=headers)

    @router.get("/docs")
    async def api_docs() -> Response:
        """Swagger UI over ``/openapi.json``, its script and styles served from here
        (FastAPI's own page loads them from a CDN, which a network may block)."""
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="funnelbot API",
            swagger_js_url=door.pages.asset_url("vendor/swagger-ui-bundle.js"),
            swagger_css_url=door.pages.asset_url("vendor/swagger-ui.css"),
            swagger_favicon_url=door.pages.asset_url("favicon.svg"),
        )

    # One router per area of pages; a new area is included here, before the catch-all.
    router.include_router(dashboard_cohorts.routes(door))
    router.include_router(dashboard_funnel.routes(door))
    router.include_router(dashboard_kpis.routes(door))
    router.include_router(dashboard_experiments.routes(door))
    router.include_router(dashboard_scripts.routes(door))

    @router.get(PREFIX + "/{rest:path}")
    async def nothing_here(request: Request, rest: str) -> Response:
        """Any other dashboard address: a page that says so, in the reader's language."""
        seen = await door.viewer(request)
        if isinstance(seen, Response):
            return seen
        return door.pages.render("error.html", seen, status=404, reason="no_page")

    return router
