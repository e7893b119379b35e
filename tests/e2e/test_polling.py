"""bot/telegram/polling.py end to end: the ``Poller`` reading getUpdates from the local Bot API
server through DirectBotAPI and handing each raw batch to ``accept``; a batch is
confirmed (the next offset) only after ``accept`` returned."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.telegram import TelegramAPIServer
from aiogram.utils.backoff import BackoffConfig

from bot.telegram.direct_api import DirectBotAPI
from bot.telegram.polling import Poller
from tests.botapi import LocalBotAPI
from tests.e2e.conftest import ANN, BOB, GROUP, TOKEN
from tests.support.loopback import LoopbackSession, until

FAST = BackoffConfig(min_delay=0.01, max_delay=0.05, factor=1.5, jitter=0.0)
SLOW = BackoffConfig(min_delay=30.0, max_delay=60.0, factor=1.5, jitter=0.0)

Json = dict[str, Any]


class Accepted:
    """An ``accept`` that records each batch; ``react`` may wait or raise first."""

    def __init__(self, react: Callable[[list[Json]], Awaitable[None]] | None = None) -> None:
        self.batches: list[list[Json]] = []
        self._react = react

    async def __call__(self, updates: list[Json]) -> None:
        if self._react is not None:
            await self._react(updates)
        self.batches.append(updates)

    @property
    def updates(self) -> list[Json]:
        return [u for batch in self.batches for u in batch]

    @property
    def texts(self) -> list[str]:
        return [u["message"]["text"] for u in self.updates if "message" in u]


@asynccontextmanager
async def polling(
    base_url: str,
    accept: Accepted,
    *,
    wait: int = 0,
    backoff: BackoffConfig = FAST,
    allowed_updates: list[str] | None = None,
) -> AsyncIterator[tuple[Poller, asyncio.Task[None]]]:
    """A poller running as a task against ``base_url``; stopped on the way out (and its
    failure, if it died, raised)."""
    session = LoopbackSession(api=TelegramAPIServer.from_base(base_url))
    bot = Bot(TOKEN, session=session)
    direct = DirectBotAPI(bot, timeout=2.0)
    poller = Poller(direct, accept, allowed_updates, wait=wait, backoff=backoff)
    task = asyncio.create_task(poller.run())
    try:
        yield poller, task
    finally:
        poller.stop()
        async with asyncio.timeout(5):
            await task
        await direct.close()
        await session.close()


def delivered(api: LocalBotAPI) -> Counter[int]:
    """How many times getUpdates handed out each update."""
    return Counter(
        update["update_id"]
        for call in api.calls_of("getUpdates")
        if call.ok
        for update in call.result
    )


async def test_updates_arrive_raw_in_order_and_each_once(api: LocalBotAPI) -> None:
    accept = Accepted()
    said = [api.say(GROUP, ANN, f"early {n}") for n in range(5)]
    async with polling(api.base_url, accept, wait=0) as (_, task):
        await until(lambda: len(accept.texts) == 5)
        said += [api.say(GROUP, BOB, f"later {n}") for n in range(3)]
        await until(lambda: len(accept.texts) == 8)
        await until(lambda: api.pending_updates() == [])  # confirmed by the offset
        calls = len(api.calls_of("getUpdates"))
        await until(lambda: len(api.calls_of("getUpdates")) >= calls + 3)  # and polled on
        assert not task.done()
    assert accept.updates == said  # the dicts as the server sent them, in order
    assert delivered(api) == Counter(update["update_id"] for update in said)  # once each
    offsets = [call.params.get("offset") for call in api.calls_of("getUpdates")]
    assert offsets[0] is None
    assert said[-1]["update_id"] + 1 in offsets


async def test_a_batch_is_confirmed_only_after_it_was_accepted(api: LocalBotAPI) -> None:
    """Until ``accept`` returns, the next getUpdates does not carry the offset that
    confirms the batch: a crash meanwhile leaves it with Telegram."""
    release = asyncio.Event()

    async def slow(updates: list[Json]) -> None:
        await release.wait()

    accept = Accepted(slow)
    said = api.say(GROUP, ANN, "hold on")
    async with polling(api.base_url, accept, wait=0):
        await until(lambda: len(api.calls_of("getUpdates")) >= 1)
        await asyncio.sleep(0.05)
        assert len(api.calls_of("getUpdates")) == 1  # no next fetch while storing
        assert api.pending_updates() == [said]  # not confirmed
        release.set()
        await until(lambda: api.pending_updates() == [])
    assert accept.updates == [said]


async def test_a_batch_that_cannot_be_stored_is_fetched_again(
    api: LocalBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="funnelbot.polling")
    failures = [RuntimeError("the database is gone")]

    async def flaky(updates: list[Json]) -> None:
        if failures:
            raise failures.pop()

    accept = Accepted(flaky)
    said = api.say(GROUP, ANN, "keep me")
    async with polling(api.base_url, accept):
        await until(lambda: accept.updates == [said])
        await until(lambda: api.pending_updates() == [])
    assert delivered(api)[said["update_id"]] == 2  # handed out again, not lost
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors and "could not store updates" in errors[0]
    assert "the database is gone" in errors[0]


async def test_long_polling_wakes_for_a_new_update(api: LocalBotAPI) -> None:
    accept = Accepted()
    async with polling(api.base_url, accept, wait=5):
        await asyncio.sleep(0.05)  # the first poll is now waiting on the server
        said = api.say(GROUP, ANN, "now")
        await until(lambda: accept.texts == ["now"], within=1.0)
    assert accept.updates == [said]


async def test_a_stop_cuts_a_long_poll_short(api: LocalBotAPI) -> None:
    accept = Accepted()
    async with polling(api.base_url, accept, wait=30) as (poller, task):
        await asyncio.sleep(0.1)  # the first poll is now waiting on the server (for 30 s)
        loop = asyncio.get_running_loop()
        begun = loop.time()
        poller.stop()
        async with asyncio.timeout(2):
            await task
        assert loop.time() - begun < 1.0
    assert accept.batches == []


async def test_allowed_updates_reach_getupdates(api: LocalBotAPI) -> None:
    accept = Accepted()
    async with polling(api.base_url, accept, allowed_updates=["callback_query"]):
        await until(lambda: len(api.calls_of("getUpdates")) >= 1)
        api.say(GROUP, ANN, "not wanted")  # dropped by Telegram: the bot did not ask
        await asyncio.sleep(0.05)
    assert accept.texts == []
    assert all(call.params.get("allowed_updates") for call in api.calls_of("getUpdates"))


async def test_a_failed_fetch_is_logged_and_polling_goes_on(
    api: LocalBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="funnelbot.polling")
    accept = Accepted()
    api.break_next("getUpdates", status=502)
    api.break_next("getUpdates", status=502)
    api.say(GROUP, ANN, "after the outage")
    async with polling(api.base_url, accept) as (_, task):
        await until(lambda: accept.texts == ["after the outage"])
        assert not task.done()
    errors = [r for r in caplog.records if r.name == "funnelbot.polling" and r.levelname == "ERROR"]
    assert len(errors) == 2
    assert all("could not fetch updates" in r.getMessage() for r in errors)
    assert all("HTTP 502" in r.getMessage() for r in errors)
    assert any(r.getMessage() == "fetching updates again" for r in caplog.records)
    assert [call.error_code for call in api.calls_of("getUpdates")][:3] == [502, 502, None]


async def test_a_flood_wait_is_waited_as_telegram_says_not_by_backoff(
    api: LocalBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="funnelbot.polling")
    accept = Accepted()
    api.break_next(
        "getUpdates",
        status=429,
        body='{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 0",'
        '"parameters":{"retry_after":0}}',
    )
    api.say(GROUP, ANN, "soon")
    # The backoff alone would wait 30 s; Telegram's retry_after of 0 says go on at once.
    async with polling(api.base_url, accept, backoff=SLOW):
        await until(lambda: accept.texts == ["soon"])
    assert any("trying again in 0.0 s" in r.getMessage() for r in caplog.records)


async def test_a_stop_during_a_backoff_does_not_wait_it_out(api: LocalBotAPI) -> None:
    api.break_next("getUpdates", status=502)
    async with polling(api.base_url, Accepted(), backoff=SLOW) as (poller, task):
        await until(lambda: len(api.calls_of("getUpdates")) >= 1)
        await asyncio.sleep(0.02)  # now in its 30 s pause
        poller.stop()
        async with asyncio.timeout(1):
            await task


async def test_polling_survives_a_reply_that_is_not_http() -> None:
    """A server (or something in between) answering getUpdates with bytes that are not
    HTTP is a failed fetch like any other: logged, retried."""
    fetches: list[int] = []
    handlers: set[asyncio.Task[Any]] = set()
    writers: set[asyncio.StreamWriter] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                fetches.append(1)
                if len(fetches) == 1:
                    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
                    await reader.read()
                    return
                body = b'{"ok":true,"result":[]}'
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            writers.discard(writer)
            handlers.discard(task)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with polling(f"http://127.0.0.1:{port}", Accepted()) as (_, task):
            await until(lambda: len(fetches) >= 3 or task.done())
            assert not task.done(), task.exception()
    finally:
        server.close()
        for writer in list(writers):
            writer.transport.abort()  # wakes the handlers still reading
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
