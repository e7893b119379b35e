"""Per-key rate limits on the HTTP API: each API key may make ``rate`` requests a second
on average, in bursts of up to twice that. A request past it is a 429 problem with
``Retry-After``; the figures it would have read are not read.

:class:`KeyRates` counts in this process (a token bucket per key). With Redis
(``FUNNELBOT_REDIS_URL``), :class:`SharedKeyRates` counts in Redis, so that a key behind
a load balancer gets its rate across all processes, not that rate in each one; while
Redis cannot be reached, each process counts alone again (:mod:`bot.outage`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.http.problems import ApiProblem
from bot.outage import RedisOutage

if TYPE_CHECKING:  # (Redis is imported only where it is used: see bot/composition.py)
    from redis.asyncio import Redis

log = logging.getLogger("funnelbot.http")


class KeyRates:
    """The limits counted in this process."""

    def __init__(self, rate: float, *, time_source: Callable[[], float] = time.monotonic) -> None:
        """``rate``: requests a second per key; 0 means no limit."""
        self.rate = rate
        self.burst = max(1.0, 2 * rate)
        self._time = time_source
        self._buckets: dict[int, tuple[float, float]] = {}
        """Key id -> (tokens left, when counted)."""

    def wait_here(self, key_id: int) -> float:
        """Take a request's token for ``key_id`` from this process's bucket: 0 when it
        may go ahead, else the seconds until it may (nothing taken)."""
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

    async def wait(self, key_id: int) -> float:
        """Take a request's token for ``key_id``: 0 when it may go ahead, else the seconds
        until it may (nothing taken)."""
        return self.wait_here(key_id)

    async def check(self, key_id: int, name: str) -> None:
        """Raise a 429 problem when the key is past its rate."""
        wait = await self.wait(key_id)
        if wait > 0:
            raise ApiProblem(
                429,
                "Too many requests",
                f"the key {name} may make {self.rate:g} requests a second; "
                f"try again in {wait:.2f} s",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )


# The generic cell rate algorithm, on Redis's clock: the key holds the time at which its
# bucket would be full again (its "theoretical arrival time"). A request may go when that
# time, one interval later, is at most a burst ahead of now.
# KEYS: the API key's cell. ARGV: seconds a request (1 / rate), the burst (requests).
# Returns the seconds to wait as a string (0: go ahead, counted), Lua numbers being integers.
# The time is stored to the microsecond: tostring keeps 14 digits, a tenth of a millisecond
# of an epoch time, coarser than one request's interval at the highest rates allowed.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local after = tat + interval
local wait = after - now - burst * interval
if wait > 0 then return tostring(wait) end
local keep = math.ceil((after - now) * 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.6f', after), 'PX', keep)
return '0'
"""


class SharedKeyRates(KeyRates):
    """The limits counted in Redis, for all the processes that share it: one atomic
    script a request. While Redis cannot be reached, this process's own buckets."""

    def __init__(
        self,
        redis: Redis,
        rate: float,
        *,
        prefix: str = "funnelbot:api-rate",
        time_source: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(rate, time_source=time_source)
        self._take = redis.register_script(_TAKE)
        self._prefix = prefix
        self._outage = RedisOutage(
            log,
            "Redis unreachable (%s): API key rates are counted per process",
            "Redis answers again: API key rates are shared",
            time_source=time_source,
        )

    async def wait(self, key_id: int) -> float:
        if self.rate <= 0:
            return 0.0
        if self._outage.skip():
            return self.wait_here(key_id)
        try:
            wait = await self._take(
                keys=[f"{self._prefix}:{key_id}"], args=[1.0 / self.rate, self.burst]
            )
        except self._outage.faults as exc:
            self._outage.failed(exc)
            return self.wait_here(key_id)
        self._outage.answered()
        return float(wait)
