"""Fault drills: Redis gone and back, behind a proxy this test cuts and mends, and a Redis
that hangs. The shared throttle, slow mode and API key rates fall back to each process's
own (saying so once), keep working meanwhile, ask Redis again only every few seconds, and
share again once Redis answers (saying that too). Bounded: a few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from bot.http.rates import SharedKeyRates
from bot.outage import RETRY_AFTER
from bot.telegram.shared_throttle import SharedThrottle
from bot.telegram.slowmode import SharedSlowMode
from bot.telegram.throttle import Limits, Window
from tests.support.ticks import Ticks

GROUP, ANA = -100555, 777
KEY = 41


class Proxy:
    """A TCP proxy to Redis that can be cut (every connection dropped, new ones refused)
    and mended."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.links: set[asyncio.StreamWriter] = set()

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.links |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.links:
            writer.close()
        self.links.clear()
        await self.server.wait_closed()

    async def mend(self) -> None:
        await self.start(self.port)


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[Proxy]:
    url = urlsplit(redis_url)
    proxy = Proxy(url.hostname or "127.0.0.1", url.port or 6379)
    await proxy.start()
    yield proxy
    with contextlib.suppress(Exception):
        await proxy.cut()


async def test_redis_gone_and_back(
    proxy: Proxy, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    through = urlsplit(redis_url)._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    redis = Redis.from_url(through, socket_connect_timeout=0.5, socket_timeout=0.5)
    ticks = Ticks()  # when the parts ask Redis again
    throttle = SharedThrottle(redis, Limits(private=Window(1, 0.2), margin=0), time_source=ticks)
    slow = SharedSlowMode(redis, refresh=0, clock=ticks)
    rates = SharedKeyRates(redis, 0.5, time_source=ticks)  # bursts of 1
    try:
        assert await rates.wait(KEY) == 0.0
        await throttle.acquire(7)
        await slow.set(GROUP, 30)
        assert not await slow.too_soon(GROUP, ANA)
        assert await slow.too_soon(GROUP, ANA)

        await proxy.cut()  # Redis gone: both keep working, per process
        async with asyncio.timeout(5):
            await throttle.acquire(7)
            await throttle.acquire(7)
            await slow.set(GROUP, 30)  # the talk goes on in this process
            assert not await slow.too_soon(GROUP, ANA + 1)
            assert await slow.too_soon(GROUP, ANA + 1)
            assert await rates.wait(KEY) == 0.0  # this process's own bucket, full
            assert await rates.wait(KEY) > 0  # and limited
        text = caplog.text
        assert text.count("rate limits are kept per process") == 1  # once per outage
        assert text.count("slow mode is kept in this process") == 1
        assert text.count("API key rates are counted per process") == 1

        await proxy.mend()  # and back: shared again, and said so
        ticks.now += RETRY_AFTER  # once the parts ask Redis again
        async with asyncio.timeout(5):
            for _ in range(20):
                with contextlib.suppress(Exception):
                    await throttle.acquire(7)
                    if "Redis answers again" in caplog.text:
                        break
                await asyncio.sleep(0.1)
            assert await slow.too_soon(GROUP, ANA)  # Redis still holds her last message
            assert await rates.wait(KEY + 1) == 0.0  # counted in Redis again
            assert await rates.wait(KEY + 1) > 0
        assert "slow mode is shared again" in caplog.text
        assert "API key rates are shared" in caplog.text
        assert caplog.text.count("rate limits are kept per process") == 1
    finally:
        await throttle.close()


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that takes connections and never answers: a Redis that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_redis_that_hangs_delays_one_call_per_retry_not_each(
    silent_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    ticks = Ticks()
    hung = Redis.from_url(f"redis://127.0.0.1:{silent_port}/0", socket_timeout=0.2)
    few = Limits(private=Window(100, 1.0), overall=Window(1000, 1.0), margin=0)
    throttle = SharedThrottle(hung, few, time_source=ticks)
    slow = SharedSlowMode(hung, refresh=0, clock=ticks)
    rates = SharedKeyRates(hung, 1000, time_source=ticks)
    parts: dict[str, Callable[[int], Awaitable[object]]] = {
        "throttle": throttle.acquire,
        "slow mode": lambda n: slow.too_soon(GROUP, n),
        "key rates": rates.wait,
    }
    loop = asyncio.get_running_loop()
    try:
        for name, call in parts.items():
            ticks.now += RETRY_AFTER  # (each part's first call asks Redis)
            started = loop.time()
            await call(1)  # waits for Redis's timeout, then works alone
            assert loop.time() - started >= 0.2, name
            started = loop.time()
            for n in range(2, 22):
                await call(n)
            assert loop.time() - started < 0.15, name  # Redis is not asked meanwhile
            ticks.now += RETRY_AFTER
            started = loop.time()
            await call(30)
            assert loop.time() - started >= 0.2, name  # then asked again
    finally:
        await hung.aclose()
    assert caplog.text.count("Redis unreachable") == 2  # the throttle's and the rates'
    assert caplog.text.count("Redis is out of reach") == 1  # slow mode's
