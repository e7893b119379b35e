"""Rewards leaving the service: ``reward.granted`` events posted to
``FUNNELBOT_PAYOUT_WEBHOOK_URL``, signed with the Standard Webhooks scheme
(``standardwebhooks``, secret ``FUNNELBOT_PAYOUT_SECRET``), and the worker that sends
them and the reward notices. The worker runs from the scheduler tick and is woken as
soon as a transaction that recorded a reward commits (:attr:`storage.uow.SqlStore.on_rewards`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp
from standardwebhooks import Webhook

from bot import metrics
from funnels.deps import Deps
from funnels.kernel.clock import Clock
from funnels.kernel.money import format_minor
from funnels.ladder.payouts import DeliverPayouts, SendResult
from funnels.ladder.rewards import SendRewardNotices

log = logging.getLogger("funnelbot.payouts")

GIVE_WAY = 5.0
"""Seconds a payout round waits at most for a burst of events to be applied before it
delivers (see :class:`PayoutWorker`)."""
TIMEOUT = 10.0
"""Seconds after which a receiver that has not answered is retried later like any
failure (at most half of it to connect)."""


class WebhookSender:
    """:class:`funnels.ladder.payouts.PayoutSender` over HTTP: one signed POST per event,
    on keep-alive connections (aiohttp: a delivery costs a fraction of the CPU of the
    higher-level clients, which shows when thousands of rewards are paid at once).

    The signature's timestamp is the time of the attempt (receivers refuse stale ones),
    read from the clock given: the system clock in the service."""

    def __init__(self, url: str, secret: str, clock: Clock, *, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.webhook = Webhook(secret)
        self.clock = clock
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=timeout / 2)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made in the running loop, on first use
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, headers={"user-agent": "funnelbot"}
            )
        return self._session

    async def send(self, webhook_id: str, body: str) -> SendResult:
        at = self.clock.now()
        headers = {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": self.webhook.sign(webhook_id, at, body),
        }
        try:
            async with self._client().post(
                self.url, data=body.encode(), headers=headers
            ) as response:
                status = response.status
                text = await response.text(errors="replace")
        except TimeoutError:
            return SendResult(False, "timed out")
        except aiohttp.ClientError as exc:
            return SendResult(False, f"{type(exc).__name__}: {exc}"[:300])
        if 200 <= status < 300:
            return SendResult(True, f"HTTP {status}")
        return SendResult(False, f"HTTP {status}: {text[:200]}".rstrip(": "))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class PayoutWorker:
    """Reward notices, then payout deliveries until nothing more is due, in a task of
    its own: woken by each scheduler tick and as soon as a reward commits. Rounds never
    overlap in one process (a wake during a round asks for one more); processes share
    the work through the payouts' leases.

    With ``give_way`` (the event applier's :meth:`~bot.http.events.EventApplier.settled`),
    a round's deliveries first wait while a burst of events is being applied, for at
    most :data:`GIVE_WAY` seconds: the members' progress and rewards come first, the
    platform hears of the rewards right after (they are queued with their credit and
    lose nothing by waiting)."""

    def __init__(
        self,
        deps: Deps,
        sender: WebhookSender | None,
        owner: str,
        *,
        batch: int = 20,
        give_way: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.notices = SendRewardNotices(deps)
        self.sender = sender
        self.deliver = (
            DeliverPayouts(deps, sender, owner=owner, batch=batch) if sender is not None else None
        )
        self.batch = batch
        self.give_way = give_way
        self._round = asyncio.Lock()
        self._woken: asyncio.Task[None] | None = None
        self._again = False
        self._stopped = False

    async def run(self) -> None:
        async with self._round:
            told = await self.notices()
            for cohort, owed, owed_minor in told.budget_used_up:
                log.warning(
                    "cohort %s: the reward budget is used up; %d rewards owed (%s %s); "
                    "raise it with: funnelbot cohort budget %s --add AMOUNT",
                    cohort.code,
                    owed,
                    format_minor(owed_minor, cohort.currency),
                    cohort.currency,
                    cohort.code,
                    extra={"cohort_id": cohort.id},
                )
            if self.deliver is not None and self.give_way is not None:
                await self.give_way(GIVE_WAY)  # once a round, before its deliveries
            while self.deliver is not None and not self._stopped:
                report = await self.deliver()
                metrics.PAYOUTS.labels("delivered").inc(report.delivered)
                metrics.PAYOUTS.labels("parked").inc(len(report.parked))
                for payout in report.parked:
                    log.warning(
                        "payout %d (%s) parked after %d attempts over 3 days; "
                        "see funnelbot payout list --parked",
                        payout.id,
                        payout.key,
                        payout.attempts,
                        extra={"payout_id": payout.id},
                    )
                if report.claimed < self.batch:
                    break

    async def tick(self) -> None:
        """The scheduler's round: a fault here is logged and leaves the steps' tick alone."""
        try:
            await self.run()
        except Exception:
            log.exception("payout round failed; the next tick tries again")

    def wake(self) -> None:
        """A reward was just committed: run a round now (or once more after the current)."""
        if self._stopped:
            return
        if self._woken is not None and not self._woken.done():
            self._again = True
            return
        try:
            self._woken = asyncio.get_running_loop().create_task(self._rounds())
        except RuntimeError:  # no loop running (a synchronous caller): the tick will do
            self._woken = None

    async def _rounds(self) -> None:
        while True:
            self._again = False
            await self.tick()
            if not self._again or self._stopped:
                return

    def stop(self) -> None:
        """No new rounds; the batch in hand finishes."""
        self._stopped = True

    async def close(self, grace: float = 2.0) -> None:
        """Stop, give a woken round ``grace`` seconds to finish (an unfinished send is
        sent again, with the same id, once its lease runs out), close the HTTP client."""
        self.stop()
        if self._woken is not None and not self._woken.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._woken), grace)
            except TimeoutError:
                self._woken.cancel()
        if self.sender is not None:
            await self.sender.close()
