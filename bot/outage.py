"""What a process does while the Redis it shares with the other processes does not
answer: each part works alone (its per-process fallback), says so once per outage, and
asks Redis again only every :data:`RETRY_AFTER` seconds, so that a Redis that hangs
costs one call its timeout in that time rather than every call; it says so when Redis
answers again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

RETRY_AFTER = 5.0
"""Seconds a part works alone after Redis failed to answer before it asks Redis again."""
REDIS_TIMEOUT = 1.0
"""Seconds the service's Redis clients wait to connect, and for an answer."""


class RedisOutage:
    """One part's view of Redis: :meth:`skip` while it works alone, :meth:`failed` after
    a call that did not get an answer, :meth:`answered` after one that did. ``alone`` is
    the warning logged once an outage begins (``%s``: the error), ``back`` the line logged
    once Redis answers again."""

    def __init__(
        self,
        log: logging.Logger,
        alone: str,
        back: str,
        *,
        time_source: Callable[[], float] = time.monotonic,
    ) -> None:
        # Imported here: only the processes that share Redis load its client.
        from redis.exceptions import RedisError

        self.faults: tuple[type[Exception], ...] = (RedisError, OSError)
        """What a call to Redis raises when Redis does not answer."""
        self._log, self._alone, self._back = log, alone, back
        self._time = time_source
        self.down = False
        self._alone_until = 0.0

    def skip(self) -> bool:
        """Whether to work alone without asking Redis (it failed less than
        :data:`RETRY_AFTER` seconds ago)."""
        return self.down and self._time() < self._alone_until

    def failed(self, exc: BaseException) -> None:
        self._alone_until = self._time() + RETRY_AFTER
        if not self.down:
            self.down = True
            self._log.warning(self._alone, exc)

    def answered(self) -> None:
        if self.down:
            self.down = False
            self._log.info(self._back)
