"""Delivering credited rewards to the platform: the outbox of ``reward.granted`` events.

Each credit queues its event in the credit's own transaction (:mod:`funnels.ladder.rewards`);
:class:`DeliverPayouts` sends what is due after commit, through a :class:`PayoutSender`
(the service's signed webhook). Rows are claimed with a lease, so processes delivering
side by side never send one row at the same time; a row whose deliverer died is claimed
again when its lease runs out. Every attempt carries the same id (the ledger entry's
idempotency key) and body, so a receiver that saw it already can tell. A 2xx answer
marks the row delivered; anything else is retried with capped exponential backoff and
jitter (:class:`Backoff`) for up to three days from the first attempt, then the row is
parked: kept, listed for ops (:class:`PayoutsNeedingAttention`), retried on their word
(:class:`RetryParked`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from funnels.deps import Deps
from funnels.kernel.records import PayoutRecord, PayoutStatus
from funnels.kernel.refusals import Refused
from funnels.ladder.ports import LadderTx


@dataclass(frozen=True, slots=True)
class SendResult:
    delivered: bool
    """The receiver answered 2xx."""
    detail: str
    """What happened, for the row's ``last_error`` (``HTTP 503``, ``timed out``…)."""


class PayoutSender(Protocol):
    """Where reward events go (the service: a signed POST to the platform)."""

    async def send(self, webhook_id: str, body: str) -> SendResult:
        """Deliver one event; never raises for the receiver's faults."""
        ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """When to try again after a failed attempt: ``first`` after the first failure,
    doubling each time up to ``cap``, each wait shortened by a random part of up to
    ``jitter`` (so rows that failed together spread out), for ``window`` from the first
    attempt; the last attempt falls at the window's end, after which the row is parked."""

    first: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=6)
    window: timedelta = timedelta(days=3)
    jitter: float = 0.5

    def delay(self, attempts: int, draw: float) -> timedelta:
        """The wait after ``attempts`` failed attempts (1 or more); ``draw`` in [0, 1)."""
        doublings = min(max(attempts - 1, 0), 40)  # 2**40 times anything passes any cap
        full = min(self.first.total_seconds() * 2**doublings, self.cap.total_seconds())
        return timedelta(seconds=full * (1 - self.jitter * draw))

    def next_attempt(
        self, attempts: int, first_attempt_at: datetime, failed_at: datetime, draw: float
    ) -> datetime | None:
        """When to try a row again, or None: the window is over, park it."""
        deadline = first_attempt_at + self.window
        if failed_at >= deadline:
            return None
        return min(failed_at + self.delay(attempts, draw), deadline)


@dataclass
class DeliveryReport:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    parked: list[PayoutRecord] = field(default_factory=list)


class DeliverPayouts:
    """Send the payout events that are due, a batch at a time (call again while
    ``claimed`` equals the batch size)."""

    def __init__(
        self,
        deps: Deps,
        sender: PayoutSender,
        *,
        owner: str,
        backoff: Backoff | None = None,
        lease: timedelta = timedelta(minutes=2),
        batch: int = 20,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.deps = deps
        self.sender = sender
        self.owner = owner[:64]
        self.backoff = backoff or Backoff()
        self.lease = lease
        self.batch = batch
        self.draw = draw

    async def __call__(self) -> DeliveryReport:
        report = DeliveryReport()
        now = self.deps.clock.now()
        async with self.deps.uow(LadderTx).transaction() as tx:
            claimed = await tx.payouts.claim_due(now, self.owner, now + self.lease, self.batch)
            await tx.commit()
        report.claimed = len(claimed)
        if not claimed:
            return report
        results = await asyncio.gather(
            *(self.sender.send(p.key, p.body or "") for p in claimed), return_exceptions=True
        )
        at = self.deps.clock.now()
        delivered = {
            p.id
            for p, r in zip(claimed, results, strict=True)
            if isinstance(r, SendResult) and r.delivered
        }
        async with self.deps.uow(LadderTx).transaction() as tx:
            report.delivered = await tx.payouts.delivered(sorted(delivered), self.owner, at)
            for payout, result in zip(claimed, results, strict=True):
                if payout.id not in delivered:
                    await self._failed(tx, payout, result, at, report)
            await tx.commit()
        return report

    async def _failed(
        self,
        tx: LadderTx,
        payout: PayoutRecord,
        result: SendResult | BaseException,
        at: datetime,
        report: DeliveryReport,
    ) -> None:
        error = result.detail if isinstance(result, SendResult) else repr(result)
        first = payout.first_attempt_at or at
        retry_at = self.backoff.next_attempt(payout.attempts, first, at, self.draw())
        if retry_at is None:
            if await tx.payouts.park(payout.id, self.owner, at, error):
                report.parked.append(payout)
        elif await tx.payouts.retry_later(payout.id, self.owner, retry_at, error):
            report.retried += 1


# ---------------------------------------------------------------- for ops

OPEN: tuple[PayoutStatus, ...] = ("owed", "pending", "parked")


@dataclass(frozen=True, slots=True)
class PayoutLine:
    payout: PayoutRecord
    cohort_code: str
    telegram_id: int | None


class PayoutsNeedingAttention:
    """Payouts not delivered yet (owed, pending, parked), or only the parked ones,
    oldest first: at most ``limit`` of them, and how many there are in all."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, *, parked_only: bool, limit: int) -> tuple[list[PayoutLine], int]:
        statuses: Sequence[PayoutStatus] = ("parked",) if parked_only else OPEN
        async with self.deps.uow(LadderTx).transaction() as tx:
            rows = await tx.payouts.listing(statuses, limit)
            total = await tx.payouts.count(statuses)
            codes: dict[int, str] = {}
            lines = []
            for row in rows:
                if row.cohort_id not in codes:
                    cohort = await tx.cohorts.get(row.cohort_id)
                    codes[row.cohort_id] = cohort.code if cohort else "?"
                member = await tx.users.ref(row.user_id)
                lines.append(
                    PayoutLine(row, codes[row.cohort_id], member.telegram_id if member else None)
                )
        return lines, total


class RetryParked:
    """Put parked payouts back in the queue, due now, with a new three-day window: one
    by its id, or all of them. The same id and body go out again."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, payout_id: int | None) -> list[int]:
        now = self.deps.clock.now()
        async with self.deps.uow(LadderTx).transaction() as tx:
            if payout_id is not None:
                payout = await tx.payouts.get(payout_id)
                if payout is None:
                    raise Refused("no_payout", id=payout_id)
                if payout.status != "parked":
                    raise Refused("not_parked", id=payout_id, status=payout.status)
            ids = await tx.payouts.retry_parked(None if payout_id is None else [payout_id], now)
            await tx.commit()
        return ids
