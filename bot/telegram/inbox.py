"""The update inbox: every Telegram update is stored before Telegram hears it arrived.

Long polling confirms a batch with its next ``getUpdates`` offset and the webhook with its
200; both call :meth:`UpdateInbox.accept` first, which writes the batch (one transaction
for all the updates that arrive together) and only then returns. Each stored update is
handled from there and marked handled (marks are written in batches too). A crash between
storing and marking leaves the update ``pending``: at the next start :meth:`recover`
handles what is pending, oldest first, before anything new, and the tick
(:meth:`retry_stale`) picks up what a passing fault left behind. Handlers are safe to run
twice on the same update (joins, replies, join requests, commands), since a crash can
always fall between a handler's work and its mark.

Taps on red envelopes are not stored: they are the one kind a crowd sends in hundreds,
their claim is written before they are answered, and a tap lost in a crash is one the
member saw go unanswered, so they tap again.

Group chatter is marked handled with the message counts it adds to (see
``ActivityBuffer`` and ``RecordChatter``), in the same transaction, so counts are
neither lost nor counted twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from bot import metrics
from bot.telegram.batching import GroupCommit
from bot.telegram.routers.envelopes import Tap, TapAnswer, read_tap
from bot.telegram.updates import Json, actor_of, kind_of, passing, reason
from funnels.kernel.clock import Clock
from storage.uow import SqlStore
from storage.updates import ReceivedUpdate

log = logging.getLogger("funnelbot.inbox")


MAX_ATTEMPTS = 5
"""Handlings that end in a passing fault (the database or Telegram unreachable) before an
update is given up as failed."""


LEASE = timedelta(minutes=2)
"""How long an update stays in the hands of the process that took it; an unhandled one
whose lease ran out is taken by the next tick of any process."""


KEEP_HANDLED = timedelta(days=2)


KEEP_FAILED = timedelta(days=14)


@dataclass(frozen=True, slots=True)
class Handlers:
    """What the inbox hands updates to."""

    update: Callable[[Json], Awaitable[Any]]
    """Handle one stored update (the dispatcher)."""
    tap: Callable[[Tap], Coroutine[Any, Any, None]]
    """Claim and answer a tap on a red envelope."""
    deferred: Callable[[int], bool]
    """Whether a handled update's mark is left to the work it joined (group chatter,
    marked with the counts it adds to)."""
    settle: Callable[[Tap], Awaitable[TapAnswer]] | None = None
    """Claim a tap and word its answer without sending it (the webhook replies with it)."""
    after: Callable[[TapAnswer], Coroutine[Any, Any, None]] | None = None
    """What follows a tap's answer (the envelope closed after its last share)."""


class UpdateInbox:
    def __init__(
        self,
        store: SqlStore,
        clock: Clock,
        bot_id: int,
        handlers: Handlers,
        *,
        owner: str = "funnelbot",
        lease: timedelta = LEASE,
        fast_taps: bool = True,
    ) -> None:
        """``owner`` names this process, the same over its restarts (the service uses
        its host and HTTP port), so that a restarted process takes back at once what it
        held when it died; ``lease`` should outlast the time between two activity
        flushes (the tick). ``fast_taps=False`` stores taps like any other update
        (what ``scripts/bench/grab_storm.py`` measures the fast path against)."""
        self.store = store
        self.clock = clock
        self.bot_id = bot_id
        self.handlers = handlers
        self.owner = owner
        self.lease = lease
        self.fast_taps = fast_taps
        self._in_hand: dict[int, asyncio.Task[bool]] = {}
        self._last_of: dict[int, asyncio.Task[bool]] = {}
        """Each person's latest update in hand: the next one waits for it, and is left
        for the tick too if it was (a "1" is not handled before the join it follows)."""
        self._taps: set[asyncio.Task[None]] = set()
        self._writes = GroupCommit(self._store)
        self._marks: list[int] = []
        self._failures: list[tuple[int, str]] = []
        self._marking: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ receiving

    async def accept(self, updates: Iterable[Json]) -> int:
        """Store a batch and start handling what is new; returns when the batch is
        safe in the database (raises if it could not be stored: do not confirm it).
        Taps are handled at once and not stored."""
        updates = list(updates)
        if not self.fast_taps:
            return await self._store_and_start(updates)
        if len(updates) == 1 and (tap := read_tap(updates[0])) is not None:
            # A lone tap (the webhook's one update per request): claimed and answered in
            # the caller's own task, with no second task to hand it to.
            await self.handlers.tap(tap)
            return 0
        rest = []
        for update in updates:
            tap = read_tap(update)
            if tap is None:
                rest.append(update)
            else:
                self._start_tap(tap)
        return await self._store_and_start(rest)

    async def accept_one(self, update: Json) -> Json | None:
        """One update from the webhook. A tap is claimed here and its answer returned as
        the method call for the webhook's reply (Telegram makes the call: no request of
        the bot's own, and the answer leaves with the reply); what follows it runs after.
        Anything else is :meth:`accept` ed, and None returned."""
        settle, after = self.handlers.settle, self.handlers.after
        if self.fast_taps and settle is not None and (tap := read_tap(update)) is not None:
            began = time.perf_counter()
            answer = await settle(tap)
            metrics.TAP_ANSWER.observe(time.perf_counter() - began)  # the reply goes now
            if after is not None and answer.close is not None:
                task = asyncio.create_task(after(answer))
                self._taps.add(task)
                task.add_done_callback(self._taps.discard)
            return answer.method(tap.query_id)
        await self.accept([update])
        return None

    async def _store_and_start(self, updates: list[Json]) -> int:
        received: list[ReceivedUpdate] = []
        by_id: dict[int, Json] = {}
        for update in updates:
            update_id = update.get("update_id")
            if type(update_id) is not int:  # cannot be stored, nor confirmed: dropped
                # Its fields' names only: an update holds what people wrote.
                log.error("an update without an update_id was dropped (fields %s)", sorted(update))
                continue
            by_id[update_id] = update
            received.append(ReceivedUpdate(update_id, kind_of(update), json.dumps(update)))
        if not received:
            return 0
        new = await self._writes.submit(received)
        fresh = [i for i in new if i in by_id]
        for update_id in fresh:
            self._start(update_id, by_id[update_id])
        return len(fresh)

    async def _store(self, batches: list[list[ReceivedUpdate]]) -> list[list[int]]:
        rows = [u for batch in batches for u in batch]
        now = self.clock.now()
        async with self.store.transaction() as tx:
            stored = set(
                await tx.updates.store(self.bot_id, rows, now, self.owner, now + self.lease)
            )
            await tx.commit()
        return [[u.update_id for u in batch if u.update_id in stored] for batch in batches]

    def _start_tap(self, tap: Tap) -> None:
        task = asyncio.create_task(self.handlers.tap(tap))
        self._taps.add(task)
        task.add_done_callback(self._taps.discard)

    def _start(self, update_id: int, update: Json) -> None:
        if update_id in self._in_hand:
            return
        actor = actor_of(update)
        before = self._last_of.get(actor) if actor is not None else None
        task = asyncio.create_task(self._handle(update_id, update, after=before))
        self._in_hand[update_id] = task
        if actor is not None:
            self._last_of[actor] = task
        task.add_done_callback(lambda _: self._done(update_id, actor, task))

    def _done(self, update_id: int, actor: int | None, task: asyncio.Task[bool]) -> None:
        self._in_hand.pop(update_id, None)
        if actor is not None and self._last_of.get(actor) is task:
            del self._last_of[actor]

    # ------------------------------------------------------------ handling

    async def _handle(
        self,
        update_id: int,
        update: Json,
        attempts: int = 0,
        *,
        after: asyncio.Task[bool] | None = None,
    ) -> bool:
        """Handle one update; False if it is left pending for the tick (a passing
        fault, or the same person's earlier update ``after`` was left so)."""
        if after is not None:
            await asyncio.wait([after])  # the same person's earlier update, however it ended
            if after.cancelled() or after.exception() is not None or not after.result():
                log.warning("update %s left for the tick after the one before it", update_id)
                return False
        try:
            await self.handlers.update(update)
        except Exception as exc:
            if passing(exc) and attempts + 1 < MAX_ATTEMPTS:
                # Left pending: the tick tries again once the fault has passed.
                log.warning("update %s not handled yet (%s); will try again", update_id, exc)
                return False
            # A traceback only where it helps: not for an update Telegram would not send.
            bug = not (passing(exc) or isinstance(exc, ValidationError))
            log.error("update %s failed: %s", update_id, reason(exc), exc_info=bug)
            self._failures.append((update_id, reason(exc)))
        else:
            if self.handlers.deferred(update_id):
                return True  # marked handled with the counts it added to
            self._marks.append(update_id)
        self._mark_soon()
        return True

    def _mark_soon(self) -> None:
        if self._marking is None or self._marking.done():
            self._marking = asyncio.create_task(self._write_marks())

    async def _write_marks(self) -> None:
        await asyncio.sleep(0)  # the updates finished in this loop turn join the batch
        while self._marks or self._failures:
            marks, failures = self._marks, self._failures
            self._marks, self._failures = [], []
            try:
                async with self.store.transaction() as tx:
                    now = self.clock.now()
                    await tx.updates.mark_handled(self.bot_id, marks, now)
                    await tx.updates.mark_failed(self.bot_id, failures, now)
                    await tx.commit()
            except Exception as exc:
                # Kept for the next try; if the process dies first, the updates are
                # still pending and handled again at start-up (handlers allow that).
                log.warning("could not mark %d updates: %s", len(marks) + len(failures), exc)
                self._marks[:0], self._failures[:0] = marks, failures
                return

    async def flush(self) -> None:
        """Write the marks not written yet."""
        if self._marking is not None and not self._marking.done():
            await self._marking
        if self._marks or self._failures:
            self._marking = asyncio.create_task(self._write_marks())
            await self._marking

    # ------------------------------------------------------------ recovery and stopping

    async def recover(self) -> int:
        """Handle what this process held when it last stopped, and what nobody holds any
        more, oldest first, one at a time (a join before the "1" that follows it). Run
        at start, before new updates are taken."""
        async with self.store.transaction() as tx:
            abandoned = await tx.updates.abandon_other_bots(self.bot_id, self.clock.now())
            await tx.commit()
        if abandoned:
            log.warning("%d unhandled updates belong to another bot; closed as failed", abandoned)
        handled, after, held_back = 0, -1, set[int]()
        while batch := await self._claim(restarted=True, after=after):
            handled += await self._handle_in_order(batch, held_back)
            after = batch[-1][0]
            await self.flush()
        if handled:
            log.info("handled %d updates left over from the last run", handled)
        return handled

    async def retry_stale(self) -> int:
        """Handle again the updates whose lease ran out unhandled: a passing fault left
        them, or the process that held them died (called by the tick)."""
        batch = [
            item
            for item in await self._claim()
            if item[0] not in self._in_hand and not self.handlers.deferred(item[0])
        ]
        handled = await self._handle_in_order(batch, set())
        await self.flush()
        return handled

    async def _handle_in_order(
        self, batch: list[tuple[int, Json, int]], held_back: set[int]
    ) -> int:
        """Handle claimed updates one at a time, oldest first; once one of a person's is
        left pending, their later ones are left too (``held_back``: those people).
        Returns how many were handled."""
        handled = 0
        for update_id, update, attempts in batch:
            actor = actor_of(update)
            if actor is not None and actor in held_back:
                continue
            if await self._handle(update_id, update, attempts):
                handled += 1
            elif actor is not None:
                held_back.add(actor)
        return handled

    async def _claim(
        self, *, restarted: bool = False, after: int = -1
    ) -> list[tuple[int, Json, int]]:
        """A page of pending updates, taken into this process's hands."""
        now = self.clock.now()
        async with self.store.transaction() as tx:
            pending = await tx.updates.claim(
                self.bot_id, self.owner, now, now + self.lease, restarted=restarted, after=after
            )
            await tx.commit()
        out = []
        for item in pending:
            try:
                out.append((item.update_id, json.loads(item.payload), item.attempts))
            except ValueError as exc:  # cannot happen for what accept() stored
                self._failures.append((item.update_id, f"stored update unreadable: {exc}"))
        return out

    async def prune(self) -> int:
        now = self.clock.now()
        async with self.store.transaction() as tx:
            removed = await tx.updates.prune(now - KEEP_HANDLED, now - KEEP_FAILED)
            await tx.commit()
        return removed

    @property
    def in_hand(self) -> int:
        return len(self._in_hand) + len(self._taps)

    async def drain(self, grace: float) -> bool:
        """Let the updates in hand finish, for up to ``grace`` seconds, and write their
        marks; True if all finished. Those that did not stay pending for the next start."""
        tasks = [*self._in_hand.values(), *self._taps]
        finished = True
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            finished = not late
            if late:
                log.warning(
                    "%d updates still in hand at the stop; handled at the next start", len(late)
                )
        await self.flush()
        return finished
