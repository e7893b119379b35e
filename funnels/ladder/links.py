"""Tracked links that lock fans (the seed's 锁粉).

Each member gets, the first time it is needed, a short unguessable code per task whose
script declares a target (``link: {target: …}``); ``GET /r/{code}`` redirects there. A
click by a visitor is a ``link.clicked`` event for the link's member; a visitor's first
click on any member's link in a cohort locks the visitor as that member's fan
(``fan.locked``), and later clicks never move the lock. Both are stored as events, in
the same atomic write as the lock, with deterministic ids (``click:<code>:<visitor>``,
``fan:<cohort>:<visitor>``), so a repeated click is a duplicate, counted once; they are
applied to the ladder like any other event (:class:`~funnels.ladder.events.ApplyEvents`).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.codes import LINK_CODE_LENGTH, is_code
from funnels.kernel.records import (
    CohortRecord,
    EventIfHolder,
    FanLockRequest,
    IncomingEvent,
    MemberRef,
    TrackedLinkRecord,
)
from funnels.ladder.ports import LinksTx
from funnels.ladder.progress import task_group_of
from funnels.scripts.model import Task

SOURCE = "links"
"""The event source of clicks and fan locks."""
VISITOR_KEY = "visitor_cookie"
"""The installation secret that signs visitor cookies."""


@dataclass(frozen=True, slots=True)
class TaskLink:
    """One of a member's links: the task it is for and its code."""

    task_id: str
    title: str
    code: str


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """What a code leads to: the link and the task's target address."""

    link: TrackedLinkRecord
    url: str


@dataclass(frozen=True, slots=True)
class Click:
    """A counted click: a person's browser (not a preview fetcher) opened the link."""

    target: LinkTarget
    visitor: str
    at: datetime


def _open_tasks_with_links(
    deps: Deps, cohort: CohortRecord, done: set[str], now: datetime
) -> list[Task]:
    if now > cohort.ends_at:
        return []
    unlocks = deps.scripts.unlock_times(cohort)
    return [
        t
        for t in deps.scripts.get(cohort).tasks.ladder
        if t.link is not None and unlocks[t.id] <= now and t.id not in done
    ]


class MyLinks:
    """``/mylink``: the member's links in their task group, one per open task that has
    a target, made on first need. None when the member is in no task group."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, member: Actor) -> list[TaskLink] | None:
        now = self.deps.clock.now()
        async with self.deps.uow(LinksTx).transaction() as tx:
            found = await task_group_of(tx, member)
            if found is None:
                return None
            user, cohort = found
            progress = await tx.tasks.for_member(cohort.id, user.user_id)
            done = {t for t, row in progress.items() if row.completed_at is not None}
            tasks = _open_tasks_with_links(self.deps, cohort, done, now)
            if not tasks:
                return []
            codes = await tx.tracked_links.ensure(
                cohort.id, user.user_id, [t.id for t in tasks], now
            )
            await tx.commit()
        return [TaskLink(t.id, t.title, codes[t.id]) for t in tasks]


class LinkFor:
    """The code of a member's link for one task of their task group (made on first
    need), for views such as ``/tasks``; None when the member is in no task group, or
    the task has no target or is not unlocked yet."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, member: Actor, task_id: str) -> str | None:
        async with self.deps.uow(LinksTx).transaction() as tx:
            found = await task_group_of(tx, member)
        return await TaskLinkCode(self.deps)(found[1], found[0], task_id) if found else None


class TaskLinkCode:
    """The code of ``member``'s link for ``task_id`` in ``cohort`` (made on first need);
    None when the task has no target or is not open."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, cohort: CohortRecord, member: MemberRef, task_id: str) -> str | None:
        now = self.deps.clock.now()
        if task_id not in {t.id for t in _open_tasks_with_links(self.deps, cohort, set(), now)}:
            return None
        async with self.deps.uow(LinksTx).transaction() as tx:
            codes = await tx.tracked_links.ensure(cohort.id, member.user_id, [task_id], now)
            await tx.commit()
        return codes[task_id]


class FindLink:
    """What a code leads to. A link never changes once made (its cohort keeps the exact
    script it started with), so answers are remembered: a busy link costs no query.
    Codes of the wrong shape are refused without asking the database."""

    def __init__(self, deps: Deps, remember: int = 100_000) -> None:
        self.deps = deps
        self._remember = remember
        self._known: OrderedDict[str, LinkTarget] = OrderedDict()

    async def __call__(self, code: str) -> LinkTarget | None:
        known = self._known.get(code)
        if known is not None:
            return known
        if not is_code(code, LINK_CODE_LENGTH):
            return None
        async with self.deps.uow(LinksTx).transaction() as tx:
            link = await tx.tracked_links.by_code(code)
            cohort = await tx.cohorts.get(link.cohort_id) if link else None
        if link is None or cohort is None:
            return None
        task = self.deps.scripts.get(cohort).task(link.task_id)
        if task.link is None:  # a link is only made for a task with a target
            return None
        found = self._known[code] = LinkTarget(link, task.link.target)
        while len(self._known) > self._remember:
            self._known.popitem(last=False)
        return found


class RecordClicks:
    """Counted clicks, in a batch, atomically: lock first-time visitors as fans (first
    touch wins) and store ``link.clicked`` and ``fan.locked`` as pending events of
    the links' members, which are applied to the ladder from there. Returns how many
    events were new.

    ``fan.locked`` goes to the member who holds the lock whenever one of that member's
    links is clicked by the visitor, under one id per cohort and visitor: the first time
    it is new, afterwards a duplicate."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, clicks: Sequence[Click]) -> int:
        if not clicks:
            return 0
        locks: list[FanLockRequest] = []
        events: list[EventIfHolder] = []
        for click in clicks:
            link = click.target.link
            lock = FanLockRequest(link.cohort_id, click.visitor, link.user_id, link.code)
            locks.append(lock)
            events.append(
                EventIfHolder(
                    IncomingEvent(
                        f"click:{link.code}:{click.visitor}",
                        "link.clicked",
                        click.at,
                        member_ref=link.member_ref,
                        data={"visitor": click.visitor, "task": link.task_id, "code": link.code},
                    )
                )
            )
            events.append(
                EventIfHolder(
                    IncomingEvent(
                        f"fan:{link.cohort_id}:{click.visitor}",
                        "fan.locked",
                        click.at,
                        member_ref=link.member_ref,
                        data={"visitor": click.visitor},
                    ),
                    holder=lock,
                )
            )
        # The locks and the events in one statement (atomic by itself).
        async with self.deps.uow(LinksTx).one_statement() as tx:
            stored = await tx.tracked_links.lock_fans_and_store(
                locks, SOURCE, events, self.deps.clock.now()
            )
            await tx.commit()
        return stored


class VisitorKey:
    """The installation's key for visitor cookies: made by the first process that needs
    it and kept in the database, so every process and every restart signs alike."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self) -> bytes:
        async with self.deps.uow(LinksTx).transaction() as tx:
            value = await tx.tracked_links.secret(
                VISITOR_KEY, secrets.token_urlsafe(32), self.deps.clock.now()
            )
            await tx.commit()
        return value.encode("ascii")
