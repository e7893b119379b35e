"""Every cohort's figures and the live API keys, held in memory for the reads that come
many a second (a cohort's funnel, regions in a week, the funnel over a choice, leaders),
and read again from the database in the background.

Each refresh (every :data:`REFRESH` seconds) is one short transaction: the running and
paused cohorts (the ones whose figures move), the next page of a sweep through all
cohorts by id (so each is read again within about :data:`SWEEP` seconds whatever wrote
it: this process, another one, ``funnelbot stats reconcile``), the regions and the keys
that are not revoked. So what the board answers is at most a refresh behind for a cohort
that runs and a sweep behind for one that has finished, and a revoked key is refused
within a refresh. Until the first sweep has read every cohort, and whenever no refresh
has succeeded for :data:`STALE_AFTER` seconds (the database is down), the board is not
:attr:`~FiguresBoard.ready` and readers ask the database as before.

The board reads only while it is read: it starts resting, the first reader wakes it (and
is answered from the database while it fills), and it rests again once nobody has asked
for :data:`REST_AFTER` seconds. A process behind a load balancer that never serves the
dashboard, the API or ``/metrics`` spends nothing on figures.

Anything derived from one cohort's figures (an HTTP answer's bytes) can be kept with it
(:meth:`FiguresBoard.derived`): it is dropped as soon as the cohort's figures change.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from bisect import bisect_left
from collections.abc import Callable, Hashable, Sequence
from datetime import date, timedelta
from typing import Any, TypeVar

from funnels.deps import Deps
from funnels.kernel.records import ApiKeyRecord
from funnels.ops.keys import KEY_PREFIX, TOUCH_EVERY, key_hash
from funnels.ops.ports import BoardTx, CohortFigures, CohortFilter, RegionLine

log = logging.getLogger("funnelbot.board")

REFRESH = 1.0
"""Seconds between two reads of the running cohorts, the regions and the keys."""
SWEEP = 5.0
"""Seconds within which every cohort is read again."""
STALE_AFTER = 5.0
"""Seconds without a successful read after which the board is not used."""
REST_AFTER = 300.0
"""Seconds without anyone asking for the board after which it stops reading, until
it is asked again (it starts that way: a process whose figures nobody reads spends
nothing on them). Longer than Prometheus's usual scrape interval."""
FIRST_PAGE = 500
"""Cohorts per statement while the board fills (at start)."""

T = TypeVar("T")


class FiguresBoard:
    def __init__(
        self,
        deps: Deps,
        *,
        every: float = REFRESH,
        sweep: float = SWEEP,
        stale_after: float = STALE_AFTER,
        rest_after: float = REST_AFTER,
        min_page: int = 50,
        time: Callable[[], float] | None = None,
    ) -> None:
        self.deps = deps
        self.every = every
        self.sweep = sweep
        self.stale_after = stale_after
        self.rest_after = rest_after
        self.min_page = min_page
        self._time = time
        self._figures: dict[int, CohortFigures] = {}
        self._derived: dict[int, dict[Hashable, Any]] = {}
        self._regions: list[RegionLine] = []
        self._keys: dict[str, ApiKeyRecord] = {}
        self._touch: dict[int, ApiKeyRecord] = {}
        self._by_start: list[tuple[date, int]] | None = None
        """(start date, id) of every cohort held, in order; None: to be sorted again."""
        self._cursor = 0
        """The sweep's place: the greatest cohort id read in this pass (0: a new pass)."""
        self._complete = False
        self._read_at: float | None = None
        self._asked_at = -math.inf
        self._asked = asyncio.Event()
        self._resting = False
        self._task: asyncio.Task[None] | None = None

    def _now(self) -> float:
        return self._time() if self._time else asyncio.get_running_loop().time()

    # ------------------------------------------------------------------ reading

    @property
    def ready(self) -> bool:
        """Every cohort read at least once, and the last read recent enough. Asking is
        what keeps the board reading: a resting board is woken (and fills again, while
        its readers ask the database)."""
        self._asked_at = self._now()
        if self._resting:
            self._asked.set()
        return (
            self._complete
            and self._read_at is not None
            and self._now() - self._read_at <= self.stale_after
        )

    def figures(self, cohort_id: int) -> CohortFigures | None:
        return self._figures.get(cohort_id)

    def chosen(
        self, choice: CohortFilter, *, ids: Sequence[int] | None = None
    ) -> list[CohortFigures]:
        """The cohorts of ``choice`` (and of ``ids``), oldest first: what
        ``Kpis.cohort_figures`` answers from the database."""
        if ids is not None:
            found = (self._figures.get(i) for i in sorted(set(ids)))
            return [c for c in found if c is not None and choice.admits(c)]
        if choice.start_from is None and choice.start_to is None:
            everyone = (self._figures[i] for i in sorted(self._figures))
            return [c for c in everyone if choice.admits(c)]
        # A range of start dates (a week's regions): through the cohorts by start date.
        if self._by_start is None:
            self._by_start = sorted((c.start_date, c.id) for c in self._figures.values())
        low = 0 if choice.start_from is None else bisect_left(self._by_start, (choice.start_from,))
        high = (
            len(self._by_start)
            if choice.start_to is None
            else bisect_left(self._by_start, (choice.start_to + timedelta(days=1),))
        )
        ids_in_range = sorted(i for _, i in self._by_start[low:high])
        return [c for c in (self._figures[i] for i in ids_in_range) if choice.admits(c)]

    def regions(self) -> list[RegionLine]:
        return list(self._regions)

    def key(self, presented: str) -> ApiKeyRecord | None:
        """The live key ``presented`` is, if any; its use is noted (at most once every
        ``TOUCH_EVERY``) and written with the next refresh."""
        if not presented.startswith(KEY_PREFIX) or len(presented) > 128:
            return None
        digest = key_hash(presented)
        record = self._keys.get(digest)
        if record is None:
            return None
        now = self.deps.clock.now()
        if record.last_used_at is None or now - record.last_used_at >= TOUCH_EVERY:
            record = dataclasses.replace(record, last_used_at=now)
            self._keys[digest] = record
            self._touch[record.id] = record
        return record

    def derived(
        self, cohort_id: int, kind: Hashable, make: Callable[[CohortFigures], T]
    ) -> T | None:
        """``make(figures)`` of the cohort, kept until its figures change; None for a
        cohort the board does not hold."""
        figures = self._figures.get(cohort_id)
        if figures is None:
            return None
        kept = self._derived.setdefault(cohort_id, {})
        if kind not in kept:
            kept[kind] = make(figures)
        return kept[kind]  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ refreshing

    async def refresh(self) -> None:
        """One read: the active cohorts, the sweep's next page, regions and keys (and
        the key uses noted since the last one written)."""
        page_size = self._page_size()
        touches = list(self._touch.values())
        async with self.deps.uow(BoardTx).transaction() as tx:
            active = await tx.kpis.cohort_figures(CohortFilter(), active_only=True)
            page = await tx.kpis.figures_page(self._cursor, page_size)
            regions = await tx.kpis.regions()
            keys = await tx.api_keys.live()
            for record in touches:
                assert record.last_used_at is not None
                await tx.api_keys.touch(record.id, record.last_used_at)
            if touches:
                await tx.commit()
        for record in touches:
            if self._touch.get(record.id) is record:
                del self._touch[record.id]
        for cohort in (*page, *active):
            self._put(cohort)
        # Cohorts in the page's range that it did not return are gone.
        upper = page[-1].id if len(page) == page_size else math.inf
        read = {c.id for c in page}
        for gone in [i for i in self._figures if self._cursor < i <= upper and i not in read]:
            self._drop(gone)
        self._cursor = 0 if upper == math.inf else int(upper)
        if self._cursor == 0:
            self._complete = True
        self._regions = regions
        self._keys = {digest: self._newer_use(digest, record) for digest, record in keys.items()}
        self._read_at = self._now()

    def _newer_use(self, digest: str, record: ApiKeyRecord) -> ApiKeyRecord:
        """The key as read, with a use noted here since (not written yet) kept."""
        held = self._keys.get(digest)
        if (
            held is not None
            and held.id == record.id
            and held.last_used_at is not None
            and (record.last_used_at is None or held.last_used_at > record.last_used_at)
        ):
            return dataclasses.replace(record, last_used_at=held.last_used_at)
        return record

    def _page_size(self) -> int:
        if not self._complete:
            return FIRST_PAGE
        refreshes = max(self.sweep / self.every, 1.0)
        return max(self.min_page, math.ceil(len(self._figures) / refreshes))

    def _put(self, cohort: CohortFigures) -> None:
        held = self._figures.get(cohort.id)
        if held != cohort:
            if held is None or held.start_date != cohort.start_date:
                self._by_start = None
            self._figures[cohort.id] = cohort
            self._derived.pop(cohort.id, None)

    def _drop(self, cohort_id: int) -> None:
        if self._figures.pop(cohort_id, None) is not None:
            self._by_start = None
        self._derived.pop(cohort_id, None)

    async def fill(self) -> None:
        """Read until every cohort has been (at start; refresh goes on from there)."""
        while not self._complete:
            await self.refresh()

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="figures-board")

    async def _run(self) -> None:
        failing = False
        while True:
            if self._now() - self._asked_at > self.rest_after:
                await self._rest()
            began = self._now()
            try:
                if self._complete:
                    await self.refresh()
                else:
                    await self.fill()
                if failing:
                    log.info("the figures board reads the database again")
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("the figures board could not read the database: %s", exc)
                failing = True
            await asyncio.sleep(max(self.every - (self._now() - began), 0.05))

    async def _rest(self) -> None:
        """Nobody asked for a while: read nothing until someone does, then everything
        again (any cohort may have changed meanwhile)."""
        self._complete, self._cursor = False, 0
        self._resting = True
        self._asked.clear()
        try:
            await self._asked.wait()
        finally:
            self._resting = False

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
