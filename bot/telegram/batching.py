"""Writing in batches what arrives in bursts: group commit, a crowd's taps on an
envelope, group chatter's message counts.

Group commit: what arrives while a write is in progress goes into the next write. A lone
item is written at once (no timer, no added wait); under a burst, the items that pile up
during one write share the next, so the database sees a handful of transactions instead
of one per item. Nothing here imports aiogram: the simulation batches the same way.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from funnels.kernel.records import ShareClaim
from funnels.warmup.envelopes import ClaimShares

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """``write`` takes the items of one batch and returns one result per item, in order;
    if it raises, every item of that batch gets the exception."""

    def __init__(self, write: Callable[[list[T]], Awaitable[list[R]]]) -> None:
        self._write = write
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._drain: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        await asyncio.sleep(0)  # the items of this loop turn join the first batch
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await self._write([item for item, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


class TapBatcher:
    """Group commit for envelope taps: the taps that arrive while a batch is being
    written go into the next one, so a storm of 500 taps costs a handful of transactions
    instead of 500, and a lone tap is written at once (no timer, no added wait)."""

    def __init__(self, claim: ClaimShares, remember: int = 20_000) -> None:
        self._claim = claim
        self._pending: dict[int, list[tuple[int, asyncio.Future[ShareClaim]]]] = {}
        self._draining: set[int] = set()
        self._remember = remember
        self._by_query: OrderedDict[str, asyncio.Future[ShareClaim]] = OrderedDict()

    async def claim(self, envelope_id: int, user_id: int, query_id: str) -> ShareClaim:
        """A re-delivered tap (same callback query, new update id) shares the first
        delivery's claim, so the member hears "you got it" rather than "already"."""
        known = self._by_query.get(query_id)
        if known is not None:
            return await asyncio.shield(known)
        future: asyncio.Future[ShareClaim] = asyncio.get_running_loop().create_future()
        self._by_query[query_id] = future
        while len(self._by_query) > self._remember:
            self._by_query.popitem(last=False)
        self._pending.setdefault(envelope_id, []).append((user_id, future))
        if envelope_id not in self._draining:
            self._draining.add(envelope_id)
            task = asyncio.create_task(self._drain(envelope_id))
            task.add_done_callback(_TASKS.discard)
            _TASKS.add(task)
        return await future

    async def _drain(self, envelope_id: int) -> None:
        try:
            await asyncio.sleep(0)  # the taps of this loop turn join the first batch
            while batch := self._pending.pop(envelope_id, None):
                try:
                    claims = await self._claim(envelope_id, [u for u, _ in batch], close=False)
                except Exception as exc:  # nothing was written: every tap hears so
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                            future.exception()  # retrieved: a re-delivery may never ask
                    self._forget_failed(batch)
                    continue
                for user_id, future in batch:
                    if not future.done():
                        future.set_result(claims[user_id])
        finally:
            self._draining.discard(envelope_id)

    def _forget_failed(self, batch: list[tuple[int, asyncio.Future[ShareClaim]]]) -> None:
        # A failed claim may be tried again by a re-delivery; do not replay the failure.
        failed = {id(future) for _, future in batch}
        for query_id in [q for q, f in self._by_query.items() if id(f) in failed]:
            del self._by_query[query_id]


_TASKS: set[asyncio.Task[None]] = set()


@dataclass
class ActivityBuffer:
    """Message counts per group and member, written in batches (never the text), with
    the updates they came from: those are marked handled when the counts are written."""

    counts: dict[int, Counter[int]] = field(default_factory=dict)
    updates: dict[int, list[int]] = field(default_factory=dict)
    _held: set[int] = field(default_factory=set)

    def add(self, chat_id: int, telegram_id: int, update_id: int | None = None) -> None:
        self.counts.setdefault(chat_id, Counter())[telegram_id] += 1
        if update_id is not None:
            self.updates.setdefault(chat_id, []).append(update_id)
            self._held.add(update_id)

    def holds(self, update_id: int) -> bool:
        """Whether the update's mark waits for these counts to be written."""
        return update_id in self._held

    def take(self) -> list[tuple[int, Counter[int], list[int]]]:
        taken = [(chat, counts, self.updates.pop(chat, [])) for chat, counts in self.counts.items()]
        self.counts = {}
        return taken

    def put_back(self, chat_id: int, counts: Counter[int], update_ids: list[int]) -> None:
        self.counts.setdefault(chat_id, Counter()).update(counts)
        self.updates.setdefault(chat_id, []).extend(update_ids)

    def written(self, update_ids: list[int]) -> None:
        self._held.difference_update(update_ids)
