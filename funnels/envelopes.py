"""Red envelopes: splitting a total into random shares, and picking the luckiest grab.

Amounts are integer minor units. An envelope is split once, when it is posted; the
shares are stored and handed out in order as members tap Grab, so the split must be
exact, reproducible from a seed (a re-run after a crash gives the same shares), and fair
whatever position a member grabs in.

Method: every share first gets ``min_share``; the remainder ``R`` is then divided by
"stars and bars": choose ``shares - 1`` distinct bar positions among ``R + shares - 1``
slots uniformly at random, and each share gets the stars between two bars. Every way of
writing ``R`` as an ordered sum of ``shares`` non-negative integers is equally likely, so
the shares are exchangeable: the first and the last grabber have the same distribution.
The WeChat "double average" method (each grab takes up to twice the current mean) is
fair only in expectation, and its variance grows with the grab position; this one needs
no caps, no rejection loops, and costs O(shares log shares).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence


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
