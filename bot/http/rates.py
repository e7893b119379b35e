"""Per-key rate limits on the HTTP API: each API key may make ``rate`` requests a second
on average, in bursts of up to twice that (a token bucket per key, in this process). A
request past it is a 429 problem with ``Retry-After``; the figures it would have read
are not read."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from bot.http.problems import ApiProblem


class KeyRates:
    def __init__(self, rate: float, *, time_source: Callable[[], float] = time.monotonic) -> None:
        """``rate``: requests a second per key; 0 means no limit."""
        self.rate = rate
        self.burst = max(1.0, 2 * rate)
        self._time = time_source
        self._buckets: dict[int, tuple[float, float]] = {}
        """Key id -> (tokens left, when counted)."""

    def wait(self, key_id: int) -> float:
        """Take a request's token for ``key_id``: 0 when it may go ahead, else the seconds
        until it may (nothing taken)."""
        if self.rate <= 0:
            return 0.0
        now = self._time()
        tokens, at = self._buckets.get(key_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[key_id] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key_id] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def check(self, key_id: int, name: str) -> None:
        """Raise a 429 problem when the key is past its rate."""
        wait = self.wait(key_id)
        if wait > 0:
            raise ApiProblem(
                429,
                "Too many requests",
                f"the key {name} may make {self.rate:g} requests a second; "
                f"try again in {wait:.2f} s",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
