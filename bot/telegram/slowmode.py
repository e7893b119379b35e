"""Slow mode during talks, kept by the bot itself.

The Bot API cannot switch on Telegram's own slow mode, so while a talk asks for it the
bot deletes a member's message sent sooner than ``seconds`` after their previous one.
State lives in the process (a talk lasts minutes; a restart mid-talk only relaxes it).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SlowMode:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._delay: dict[int, float] = {}
        self._last: dict[tuple[int, int], float] = {}

    def set(self, chat_id: int, seconds: int) -> None:
        if seconds > 0:
            self._delay[chat_id] = float(seconds)
            return
        self._delay.pop(chat_id, None)
        for key in [k for k in self._last if k[0] == chat_id]:
            del self._last[key]

    def active(self, chat_id: int) -> bool:
        return chat_id in self._delay

    def too_soon(self, chat_id: int, user_id: int) -> bool:
        """Record a member's message; True when it came sooner than slow mode allows
        (the message should go; it does not reset the member's clock)."""
        delay = self._delay.get(chat_id)
        if delay is None:
            return False
        now = self._clock()
        last = self._last.get((chat_id, user_id))
        if last is not None and now - last < delay:
            return True
        self._last[(chat_id, user_id)] = now
        return False

    def move(self, old_chat_id: int, new_chat_id: int) -> None:
        if old_chat_id in self._delay:
            self._delay[new_chat_id] = self._delay.pop(old_chat_id)
