"""The scripts ops read as their groups would see them (:mod:`funnels.scripts.preview`):
a cohort's own script (the text it started with, stored with it) or a script of the
shipped library, with the warnings its checks raise (quiet hours, crowded days,
repeated texts, …)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from funnels.deps import Deps
from funnels.ops.ports import CohortFilter, KpisTx
from funnels.scripts.checks import Check, check
from funnels.scripts.library import LOCALES, available_scripts, script_path
from funnels.scripts.loader import ScriptError, load_script
from funnels.scripts.model import Script


@dataclass(frozen=True, slots=True)
class ShownScript:
    script: Script
    warnings: list[Check]


def shown(script: Script) -> ShownScript:
    return ShownScript(script, [c for c in check(script) if c.severity == "warning"])


class CohortScript:
    """The script a cohort runs, as it was when the cohort started."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, cohort_id: int) -> ShownScript | None:
        scripts = self.deps.scripts
        async with self.deps.uow(KpisTx).transaction() as tx:
            found = await tx.kpis.cohort_figures(CohortFilter(), ids=[cohort_id])
            if not found:
                return None
            script_hash = found[0].script_hash
            bodies = (
                {} if scripts.known(script_hash) else await tx.kpis.script_bodies([script_hash])
            )
        script = scripts.by_hash(
            script_hash, partial(bodies.__getitem__, script_hash), f"cohort {cohort_id}"
        )
        return shown(script)


class LibraryScripts:
    """The shipped library's scripts by name and locale, read once each."""

    def __init__(self) -> None:
        self._read: dict[tuple[str, str], ShownScript] = {}

    def names(self) -> list[str]:
        return available_scripts()

    def __call__(self, name: str, locale: str) -> ShownScript | None:
        """The script ``name`` in ``locale`` (or its only version); None when there is
        no such script or it does not load."""
        if locale not in LOCALES or name not in self.names():
            return None
        key = (name, locale)
        if key not in self._read:
            try:
                self._read[key] = shown(load_script(script_path(name, locale)).script)
            except (FileNotFoundError, ScriptError):
                return None
        return self._read[key]
