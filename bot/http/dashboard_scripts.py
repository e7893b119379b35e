"""Scripts as their groups would see them: a timeline by local day of what the bot
posts (posts, talk parts, red envelopes, the pitch, task unlocks) at their local times,
and the restraint figures per day (messages in the group, posts inside quiet hours, days
with too many steps), with the script's own warnings. For a cohort (a tab of its page:
its stored script, its dates and zone, the arm of each varied message its group gets),
and for each script of the shipped library (planned from today, in its own zone)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response

from bot.http.dashboard_cohorts import CohortPages
from bot.http.web.door import Door
from bot.http.web.render import PREFIX
from funnels.ops.preview import CohortScript, LibraryScripts
from funnels.scripts.library import LOCALES
from funnels.scripts.preview import script_days


def routes(door: Door) -> APIRouter:
    deps = door.deps
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    pages, cohort_script, library = CohortPages(door), CohortScript(deps), LibraryScripts()

    @router.get("/scripts")
    async def scripts(request: Request) -> Response:
        seen = await door.viewer(request)
        if isinstance(seen, Response):
            return seen
        return door.pages.render(
            "scripts.html", seen, page="scripts", names=library.names(), locales=LOCALES
        )

    @router.get("/scripts/{name}")
    async def library_script(request: Request, name: str, locale: str | None = None) -> Response:
        seen = await door.viewer(request)
        if isinstance(seen, Response):
            return seen
        locale = locale if locale in LOCALES else seen.words.locale
        found = library(name, locale)
        if found is None:
            return door.pages.render("error.html", seen, status=404, reason="no_script")
        zone = ZoneInfo(found.script.timezone)
        start = deps.clock.now().astimezone(zone).date()
        return door.pages.render(
            "script.html",
            seen,
            page="scripts",
            shown=found,
            days=script_days(found.script, start, zone),
            timezone=found.script.timezone,
            name=name,
            locale=locale,
            locales=LOCALES,
        )

    @router.get("/cohorts/{cohort_id}/script")
    async def the_cohorts_script(request: Request, cohort_id: str) -> Response:
        found = await pages.find(request, cohort_id)
        if isinstance(found, Response):
            return found
        seen, cohort = found
        shown = await cohort_script(cohort.id)
        if shown is None:  # gone between the two reads
            return door.pages.render("error.html", seen, status=404, reason="no_cohort")
        zone = ZoneInfo(cohort.timezone)
        return pages.render(
            seen,
            "cohort_script.html",
            cohort,
            "script",
            shown=shown,
            days=script_days(shown.script, cohort.start_date, zone, cohort.code),
            timezone=cohort.timezone,
        )

    return router
