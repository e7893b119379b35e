"""Small helpers for end-to-end tests on loopback: aiogram's session without its TLS
drain wait, waiting for a condition that has no event to wait on, and timing a wait."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from aiogram.client.session.aiohttp import AiohttpSession


class LoopbackSession(AiohttpSession):
    """aiogram's session, minus the 250 ms it waits on close for TLS connections to drain
    (plain HTTP on loopback has none); it adds up over a file of short tests."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


async def until(
    condition: Callable[[], bool] | Callable[[], Awaitable[bool]], within: float = 2.0
) -> None:
    """Wait until ``condition()`` holds (it may be a coroutine function), looking every
    5 ms; ``TimeoutError`` after ``within`` seconds. (The conditions are other objects'
    state, with no event to wait on.)"""
    async with asyncio.timeout(within):
        while True:
            held = condition()
            if inspect.isawaitable(held):
                held = await held
            if held:
                return
            await asyncio.sleep(0.005)


async def seconds_taken(awaitable: Awaitable[object]) -> float:
    """How long ``awaitable`` took to finish, on the loop's clock."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    await awaitable
    return loop.time() - started
