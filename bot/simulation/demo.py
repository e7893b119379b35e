"""``funnelbot demo``: a simulated month in the configured database, so that the stats
API and the dashboard have something to show before any real cohort has run.

Six regions launch a cohort a week each for four weeks (24 cohorts), through the same
simulation as ``funnelbot simulate`` (the bot's use cases and the real storage on a
virtual clock), its leaders granted in the demo's regions first. The month is placed so
that its last cohort, and the payouts after it, are over by today: every cohort is
finished and nothing is left for ``funnelbot run`` to send.

Demo data is told from real data by its regions, without a mark in the schema: their
codes begin with ``DEMO-``, a cohort in one of them is the demo's, and any other cohort
is real (one launched in no region too). A database that holds a real cohort is refused
before anything is written to it; one that holds the demo already is left as it is.
"""

from __future__ import annotations

import time as _perf
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from bot.composition import build_deps, open_store
from bot.simulation import Simulation, SimulationOptions
from funnels.deps import Deps
from funnels.kernel.refusals import Refused
from funnels.ops.cohorts import MAX_PAGE, ListCohorts
from funnels.ops.ports import CohortFilter, CohortSummary
from funnels.people.regions import AddRegion
from funnels.scripts.loader import LoadedScript

PREFIX = "DEMO-"
"""What the codes of the demo's regions begin with: the one mark of demo data."""
REGIONS = (
    ("DEMO-NE", "Northeast China"),
    ("DEMO-N", "North China"),
    ("DEMO-E", "East China"),
    ("DEMO-S", "South China"),
    ("DEMO-C", "Central China"),
    ("DEMO-SW", "Southwest China"),
)
"""Six regions, as the company of seed 003 divides its market (all on China time)."""
TIMEZONE = "Asia/Shanghai"
WEEKS = 4
COHORTS = len(REGIONS) * WEEKS
MEMBERS = 100
"""Members a cohort, by default: a month of 500-member cohorts takes a few minutes to
make on SQLite, one of 100 under a minute (most of it the 1,680 steps, whatever the
size), and it shows the same funnel."""
SETTLING = timedelta(days=7)
"""After the last cohort's end: its last day's events, then payouts retried (a payout is
parked 3 days after its first attempt); the demo month ends this long before today."""


def is_demo(cohort: CohortSummary) -> bool:
    return cohort.region is not None and cohort.region.startswith(PREFIX)


class RealCohorts(Exception):
    """The database holds cohorts that are not the demo's; the message names one."""


@dataclass(frozen=True, slots=True)
class DemoThere:
    """The database held the demo already: nothing was changed."""

    cohorts: int


@dataclass(frozen=True, slots=True)
class DemoMade:
    cohorts: int
    regions: tuple[str, ...]
    members: int
    """Members who joined, over every cohort."""
    stages: dict[str, int]
    """Members per funnel stage reached, over every cohort."""
    first_start: date
    last_start: date
    seconds: float


def first_start(today: date, total_days: int) -> date:
    """The Monday the demo month begins: the last week's cohorts (three weeks later)
    run ``total_days`` days and settle, all before ``today``."""
    latest = today - timedelta(days=7 * (WEEKS - 1) + total_days) - SETTLING
    return latest - timedelta(days=latest.weekday())


async def demo_cohorts(deps: Deps) -> int:
    """How many cohorts of the demo the database holds; :class:`RealCohorts` if it holds
    any other."""
    list_cohorts = ListCohorts(deps)
    found, before = 0, None
    while True:
        page = await list_cohorts(CohortFilter(), before, MAX_PAGE)
        real = [c for c in page.items if not is_demo(c)]
        if real:
            first = real[0]
            where = f"in region {first.region}" if first.region else "in no region"
            raise RealCohorts(
                f"the database holds real cohorts (such as {first.code}, {where}, started "
                f"{first.start_date}); the demo fills only a database without them: point "
                "FUNNELBOT_DATABASE_URL at another one, e.g. sqlite+aiosqlite:///./demo.db"
            )
        found += len(page.items)
        if page.next_before_id is None:
            return found
        before = page.next_before_id


async def _add_regions(deps: Deps) -> None:
    add = AddRegion(deps)
    for code, name in REGIONS:
        try:
            await add(code, name, TIMEZONE, weekly_target=1)
        except Refused as refused:
            if refused.code != "region_exists":  # left by a demo that was stopped
                raise


@dataclass(frozen=True)
class Demo:
    url: str
    loaded: LoadedScript
    today: date
    members: int = MEMBERS
    seed: int = 1

    def options(self) -> SimulationOptions:
        return SimulationOptions(
            cohorts=COHORTS,
            members=self.members,
            seed=self.seed,
            regions=len(REGIONS),
            first_start=first_start(self.today, self.loaded.script.total_days),
            database_url=self.url,
            region_codes=tuple(code for code, _ in REGIONS),
        )

    async def __call__(
        self, progress: Callable[[float], None] | None = None
    ) -> DemoMade | DemoThere:
        """Make the demo; :class:`RealCohorts` (nothing written) on a database with real
        cohorts, :class:`DemoThere` (nothing written) on one with the demo already."""
        started = _perf.perf_counter()
        options = self.options()
        options.check()
        async with open_store(self.url) as store:
            deps = build_deps(store)
            there = await demo_cohorts(deps)
            if there:
                return DemoThere(there)
            await _add_regions(deps)
        result = await Simulation(self.loaded, options, progress).run()
        stages = {s: n for s, n, _ in result.report.conversions()}
        return DemoMade(
            cohorts=len(result.cohort_ids),
            regions=options.region_codes,
            members=stages.get("joined", 0),
            stages=stages,
            first_start=options.first_start,
            last_start=options.first_start + timedelta(days=7 * (WEEKS - 1)),
            seconds=_perf.perf_counter() - started,
        )
