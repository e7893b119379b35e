"""An asyncio server for tests on a loop of its own, in a thread: for synchronous tests,
and beside processes whose start blocks the test's own loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def served_in_thread(
    start: Callable[[], Awaitable[T]], stop: Callable[[], Awaitable[object]]
) -> Iterator[T]:
    """``start()`` in a new loop in a thread, what it returns while the block runs, then
    ``stop()`` there and the thread ended."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield asyncio.run_coroutine_threadsafe(_run(start), loop).result(10)
    finally:
        asyncio.run_coroutine_threadsafe(_run(stop), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _run(step: Callable[[], Awaitable[T]]) -> T:
    return await step()
