"""Red envelopes: pre-split shares, claimed durably before a tap is answered, and closed
once (all shares gone or expired) with a summary."""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Sequence

from funnels.deps import Deps
from funnels.kernel.messaging import DeliveryError, EnvelopeOffer, EnvelopeSummary
from funnels.kernel.money import to_minor
from funnels.kernel.records import CohortRecord, LedgerCredit, ShareClaim
from funnels.kernel.stages import Stage
from funnels.scripts.model import Script
from funnels.warmup.ports import WarmupTx


def split(total: int, shares: int, min_share: int, rng: random.Random) -> list[int]:
    """Split ``total`` into ``shares`` random amounts, each at least ``min_share``.

    The result sums to ``total`` exactly and is the same for the same ``rng`` state.
    Raises ``ValueError`` if the split is impossible.
    """
    if shares < 1:
        raise ValueError(f"an envelope needs at least 1 share, not {shares}")
    if min_share < 0:
        raise ValueError(f"the minimum share cannot be negative ({min_share})")
    if total < 0:
        raise ValueError(f"the envelope total cannot be negative ({total})")
    if shares * min_share > total:
        raise ValueError(
            f"{shares} shares of at least {min_share} need {shares * min_share} "
            f"minor units, but the envelope holds only {total}"
        )
    remainder = total - shares * min_share
    slots = remainder + shares - 1
    # random.sample over a range does not materialise it, so large totals stay cheap.
    bars = sorted(rng.sample(range(slots), shares - 1))
    amounts: list[int] = []
    previous = -1
    for bar in bars:
        amounts.append(min_share + bar - previous - 1)
        previous = bar
    amounts.append(min_share + slots - 1 - previous)
    return amounts


def envelope_seed(cohort_id: int, step_id: str) -> int:
    """A seed for one envelope of one cohort, the same in every process and run.

    Built with SHA-256 because ``hash()`` of a string changes with PYTHONHASHSEED.
    """
    digest = hashlib.sha256(f"funnelbot-envelope:{cohort_id}:{step_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def luckiest(amounts: Sequence[int]) -> int:
    """Index of the largest share; the earliest one wins a tie."""
    if not amounts:
        raise ValueError("an envelope with no shares has no luckiest grab")
    best = 0
    for index, amount in enumerate(amounts):
        if amount > amounts[best]:
            best = index
    return best


class OpenEnvelope:
    """An envelope step falls due: its shares are split (the same way in every process
    and run, so a retry opens the same envelope), its total reserved from the budget, and
    the offer posted with a Grab button."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, cohort: CohortRecord, script: Script, step_id: str, chat: int
    ) -> dict[str, object]:
        spec = script.step(step_id).red_envelope
        if spec is None:
            raise DeliveryError(f"step {step_id!r} is not a red envelope", definite=True)
        total = to_minor(spec.total, cohort.currency)
        amounts = split(
            total,
            spec.shares,
            to_minor(spec.min_share, cohort.currency),
            random.Random(envelope_seed(cohort.id, step_id)),
        )
        now = self.deps.clock.now()
        async with self.deps.uow(WarmupTx).transaction() as tx:
            envelope = await tx.envelopes.by_step(cohort.id, step_id)
            if envelope is None:
                if not await tx.cohorts.reserve(cohort.id, total):
                    raise DeliveryError(
                        "the cohort budget cannot cover this envelope", definite=True
                    )
                envelope = await tx.envelopes.open(
                    cohort.id, step_id, cohort.currency, amounts, now, now + spec.expires_in
                )
            elif envelope.message_id is None:
                # Opened before, never posted (the Bot API was out of reach, say): the
                # time to grab counts from the post that goes out now.
                envelope = (
                    await tx.envelopes.reopen(envelope.id, now, now + spec.expires_in) or envelope
                )
            await tx.commit()
        offer = EnvelopeOffer(
            envelope.id,
            envelope.total_minor,
            envelope.currency,
            envelope.shares,
            envelope.expires_at,
            spec.text,
            cohort.locale,
            cohort.timezone,
        )
        message_id = await self.deps.messenger.send(chat, offer)
        async with self.deps.uow(WarmupTx).transaction() as tx:
            await tx.envelopes.set_message(envelope.id, chat, message_id)
            await tx.commit()
        return {"message_id": message_id, "envelope_id": envelope.id}


class ClaimShares:
    """Taps on an envelope's Grab button, a batch at a time: every claim is written (with
    its ledger entry) in one transaction before any tap is answered. Under a storm the bot
    groups the taps that arrive together, so the database sees one write per batch."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.close = CloseEnvelope(deps)

    async def __call__(
        self, envelope_id: int, user_ids: Sequence[int], *, close: bool = True
    ) -> dict[int, ShareClaim]:
        """``close=False``: the caller closes the envelope after the last share itself
        (the bot answers the taps first; the summary edit may wait for a send slot)."""
        now = self.deps.clock.now()
        async with self.deps.uow(WarmupTx).transaction() as tx:
            claims = await tx.envelopes.claim_many(envelope_id, user_ids, now)
            won = {u: c for u, c in claims.items() if c.outcome == "claimed"}
            if not won:
                return claims
            await tx.ledger.credit_many(
                [
                    LedgerCredit(
                        f"envelope:{envelope_id}:{user_id}",
                        user_id,
                        claim.cohort_id,
                        "envelope",
                        claim.step_key or "",
                        claim.amount_minor,
                        claim.currency or "",
                    )
                    for user_id, claim in won.items()
                ],
                now,
            )
            # Grabbing is taking part: the member is engaged.
            quiet = [u for u, c in won.items() if c.stage is not None and c.stage < Stage.ENGAGED]
            cohort_id = next(iter(won.values())).cohort_id
            if quiet and cohort_id is not None:
                await tx.members.advance_many(cohort_id, quiet, Stage.ENGAGED, now)
            await tx.commit()
        if close and any(c.last_share for c in won.values()):
            await self.close(envelope_id)
        return claims


class CloseEnvelope:
    """Close an envelope once (all shares gone or expired) and edit it to its summary."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, envelope_id: int) -> bool:
        now = self.deps.clock.now()
        async with self.deps.uow(WarmupTx).transaction() as tx:
            envelope = await tx.envelopes.close(envelope_id, now)
            if envelope is None:
                return False
            cohort = await tx.cohorts.get(envelope.cohort_id)
            assert cohort is not None
            unclaimed = envelope.total_minor - envelope.claimed_minor
            if unclaimed:
                await tx.cohorts.release(envelope.cohort_id, unclaimed)
            lucky = await tx.envelopes.luckiest(envelope_id)
            name = await tx.users.name(lucky[0]) if lucky else None
            await tx.commit()
        if envelope.chat_id is not None and envelope.message_id is not None:
            summary = EnvelopeSummary(
                envelope.id,
                envelope.claimed,
                envelope.shares,
                envelope.claimed_minor,
                envelope.total_minor,
                envelope.currency,
                lucky[0] if lucky else None,
                name,
                lucky[1] if lucky else 0,
                cohort.locale,
            )
            # The money is settled either way; a stale button only says "closed".
            with contextlib.suppress(DeliveryError):
                await self.deps.messenger.edit(envelope.chat_id, envelope.message_id, summary)
        return True


class CloseFullEnvelopes:
    """Close envelopes whose every share is taken but that are still open.

    The tap that takes the last share closes its envelope right after answering; a
    process that dies in between would leave it open (no summary, the Grab button still
    shown) until its scheduled close at expiry. The tick runs this every time; a full
    envelope closes once whoever gets there first (:class:`CloseEnvelope` is a
    compare-and-set on ``closed_at``).
    """

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, limit: int = 50) -> list[int]:
        async with self.deps.uow(WarmupTx).transaction() as tx:
            full = await tx.envelopes.full_and_open(limit)
        close = CloseEnvelope(self.deps)
        return [envelope_id for envelope_id in full if await close(envelope_id)]
