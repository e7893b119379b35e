"""Telegram's flood limits on sends and edits, over real (perf_counter) time.

- one group or supergroup: at most ``group_per_window`` in any sliding ``group_window`` s;
- one private chat: at most one every ``private_interval`` s;
- all chats together: at most ``global_per_second`` in any sliding second.

A call over a limit is refused with 429 and ``retry_after`` = the whole seconds until a
slot frees (at least 1). ``None`` switches a limit off.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class FloodLimits:
    group_per_window: int | None = 20
    group_window: float = 60.0
    private_interval: float | None = 1.0
    global_per_second: int | None = 30


class FloodLimiter:
    def __init__(self, limits: FloodLimits | None) -> None:
        self.limits = limits
        self._groups: dict[int, deque[float]] = {}
        self._private_last: dict[int, float] = {}
        self._global: deque[float] = deque()

    def retry_after(self, chat_id: int, is_group: bool, now: float) -> int | None:
        """Seconds to wait before a send into ``chat_id`` is allowed; None when it is now."""
        limits = self.limits
        if limits is None:
            return None
        wait = 0.0
        if is_group and limits.group_per_window is not None:
            window = self._groups.setdefault(chat_id, deque())
            _prune(window, now - limits.group_window)
            if len(window) >= limits.group_per_window:
                wait = max(wait, window[0] + limits.group_window - now)
        if not is_group and limits.private_interval is not None:
            last = self._private_last.get(chat_id)
            if last is not None and now - last < limits.private_interval:
                wait = max(wait, last + limits.private_interval - now)
        if limits.global_per_second is not None:
            _prune(self._global, now - 1.0)
            if len(self._global) >= limits.global_per_second:
                wait = max(wait, self._global[0] + 1.0 - now)
        if wait <= 0:
            return None
        return max(1, math.ceil(wait))

    def record(self, chat_id: int, is_group: bool, now: float) -> None:
        if self.limits is None:
            return
        if is_group:
            self._groups.setdefault(chat_id, deque()).append(now)
        else:
            self._private_last[chat_id] = now
        self._global.append(now)


def _prune(window: deque[float], older_than: float) -> None:
    while window and window[0] <= older_than:
        window.popleft()
