"""bot/polling.py end to end: ``poll`` reading getUpdates from the local Bot API server
through DirectBotAPI and feeding aiogram's dispatcher the raw updates."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.backoff import BackoffConfig

from bot import polling as polling_module
from bot.direct_api import DirectBotAPI
from bot.polling import poll
from tests.botapi import LocalBotAPI
from tests.e2e.conftest import ANN, BOB, GROUP, TOKEN
from tests.e2e.loopback import LoopbackSession, until

FAST = BackoffConfig(min_delay=0.01, max_delay=0.05, factor=1.5, jitter=0.0)
SLOW = BackoffConfig(min_delay=30.0, max_delay=60.0, factor=1.5, jitter=0.0)
KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="Grab", callback_data="grab:1")]]
)

Reaction = Callable[[str], Awaitable[None]]


class Recorder(Dispatcher):
    """aiogram's dispatcher with one message handler; records each raw update it is fed
    and each text handled (after ``react``, which may wait or raise)."""

    def __init__(self, react: Reaction | None = None) -> None:
        super().__init__()
        self.raw: list[dict[str, Any]] = []
        self.texts: list[str] = []
        self.taps: list[str] = []
        self._react = react
        self.message.register(self._on_message)
        self.callback_query.register(self._on_tap)

    async def feed_raw_update(self, bot: Bot, update: dict[str, Any], **kwargs: Any) -> Any:
        self.raw.append(update)
        return await super().feed_raw_update(bot, update, **kwargs)

    async def _on_message(self, message: Message) -> None:
        text = message.text or ""
        if self._react is not None:
            await self._react(text)
        self.texts.append(text)

    async def _on_tap(self, query: CallbackQuery) -> None:
        self.taps.append(query.data or "")


@asynccontextmanager
async def polling(
    base_url: str,
    dp: Dispatcher,
    *,
    wait: int = 0,
    backoff: BackoffConfig = FAST,
    allowed_updates: list[str] | None = None,
) -> AsyncIterator[asyncio.Task[None]]:
    """``poll`` running as a task against ``base_url``; cancelled on the way out (and its
    failure, if it died, raised)."""
    session = LoopbackSession(api=TelegramAPIServer.from_base(base_url))
    bot = Bot(TOKEN, session=session)
    direct = DirectBotAPI(bot, timeout=2.0)
    task = asyncio.create_task(poll(dp, bot, direct, allowed_updates, wait=wait, backoff=backoff))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
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
    dp = Recorder()
    said = [api.say(GROUP, ANN, f"early {n}") for n in range(5)]
    async with polling(api.base_url, dp, wait=0) as task:
        await until(lambda: len(dp.texts) == 5)
        said += [api.say(GROUP, BOB, f"later {n}") for n in range(3)]
        await until(lambda: len(dp.texts) == 8)
        await until(lambda: api.pending_updates() == [])  # confirmed by the offset
        calls = len(api.calls_of("getUpdates"))
        await until(lambda: len(api.calls_of("getUpdates")) >= calls + 3)  # and polled on
        assert not task.done()
    assert dp.raw == said  # the dicts as the server sent them, in order
    assert dp.texts == [f"early {n}" for n in range(5)] + [f"later {n}" for n in range(3)]
    assert delivered(api) == Counter(update["update_id"] for update in said)  # once each
    offsets = [call.params.get("offset") for call in api.calls_of("getUpdates")]
    assert offsets[0] is None
    assert said[-1]["update_id"] + 1 in offsets


async def test_long_polling_wakes_for_a_new_update(api: LocalBotAPI) -> None:
    dp = Recorder()
    async with polling(api.base_url, dp, wait=5):
        await asyncio.sleep(0.05)  # the first poll is now waiting on the server
        said = api.say(GROUP, ANN, "now")
        await until(lambda: dp.texts == ["now"], within=1.0)
    assert dp.raw == [said]


async def test_allowed_updates_reach_getupdates(api: LocalBotAPI) -> None:
    dp = Recorder()
    session = LoopbackSession(api=TelegramAPIServer.from_base(api.base_url))
    async with Bot(TOKEN, session=session) as bot:
        sent = await bot.send_message(GROUP, "Envelope", reply_markup=KEYBOARD)
    async with polling(api.base_url, dp, allowed_updates=["callback_query"]):
        await until(lambda: len(api.calls_of("getUpdates")) >= 1)
        api.say(GROUP, ANN, "not wanted")  # dropped by Telegram: the bot did not ask
        api.tap(GROUP, sent.message_id, BOB)
        await until(lambda: dp.taps == ["grab:1"])
    assert dp.texts == []
    assert all(call.params.get("allowed_updates") for call in api.calls_of("getUpdates"))


async def test_a_failed_fetch_is_logged_and_polling_goes_on(
    api: LocalBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="funnelbot.polling")
    dp = Recorder()
    api.break_next("getUpdates", status=502)
    api.break_next("getUpdates", status=502)
    api.say(GROUP, ANN, "after the outage")
    async with polling(api.base_url, dp) as task:
        await until(lambda: dp.texts == ["after the outage"])
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
    dp = Recorder()
    api.break_next(
        "getUpdates",
        status=429,
        body='{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 0",'
        '"parameters":{"retry_after":0}}',
    )
    api.say(GROUP, ANN, "soon")
    # The backoff alone would wait 30 s; Telegram's retry_after of 0 says go on at once.
    async with polling(api.base_url, dp, backoff=SLOW):
        await until(lambda: dp.texts == ["soon"])
    assert any("trying again in 0.0 s" in r.getMessage() for r in caplog.records)


async def test_a_failing_update_is_logged_and_later_updates_arrive(
    api: LocalBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async def react(text: str) -> None:
        if text == "boom":
            raise RuntimeError("the handler broke")

    dp = Recorder(react)
    boom = api.say(GROUP, ANN, "boom")
    api.say(GROUP, ANN, "next")
    async with polling(api.base_url, dp) as task:
        await until(lambda: dp.texts == ["next"])
        api.say(GROUP, BOB, "later")
        await until(lambda: dp.texts == ["next", "later"])
        assert not task.done()
    failures = [r for r in caplog.records if r.name == "funnelbot.polling"]
    assert [r.getMessage() for r in failures] == [f"update {boom['update_id']} failed"]
    assert failures[0].exc_info is not None
    assert isinstance(failures[0].exc_info[1], RuntimeError)
    assert delivered(api)[boom["update_id"]] == 1  # not retried


async def test_a_slow_update_does_not_hold_the_next_one(api: LocalBotAPI) -> None:
    release = asyncio.Event()

    async def react(text: str) -> None:
        if text == "slow":
            await release.wait()

    dp = Recorder(react)
    api.say(GROUP, ANN, "slow")
    api.say(GROUP, BOB, "quick")
    async with polling(api.base_url, dp):
        await until(lambda: dp.texts == ["quick"])
        api.say(GROUP, BOB, "quicker")
        await until(lambda: dp.texts == ["quick", "quicker"])
        release.set()
        await until(lambda: dp.texts == ["quick", "quicker", "slow"])


async def test_cancelling_lets_an_update_in_hand_finish(api: LocalBotAPI) -> None:
    started = asyncio.Event()

    async def react(text: str) -> None:
        started.set()
        await asyncio.sleep(0.2)

    dp = Recorder(react)
    api.say(GROUP, ANN, "claim")
    async with polling(api.base_url, dp, wait=1) as task:
        async with asyncio.timeout(2):
            await started.wait()
        task.cancel()
        async with asyncio.timeout(2):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert dp.texts == ["claim"]  # finished before poll returned


async def test_an_update_stuck_past_the_grace_does_not_hold_shutdown(
    api: LocalBotAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(polling_module, "GRACE", 0.1)
    started = asyncio.Event()
    stuck: list[asyncio.Task[Any]] = []

    async def react(text: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        stuck.append(task)
        started.set()
        await asyncio.Event().wait()  # never

    dp = Recorder(react)
    api.say(GROUP, ANN, "stuck")
    async with polling(api.base_url, dp) as task:
        async with asyncio.timeout(2):
            await started.wait()
        loop = asyncio.get_running_loop()
        begun = loop.time()
        task.cancel()
        async with asyncio.timeout(2):
            with pytest.raises(asyncio.CancelledError):
                await task
        waited = loop.time() - begun
    assert 0.09 <= waited < 1.0
    assert dp.texts == [] and not stuck[0].done()
    stuck[0].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stuck[0]


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
        async with polling(f"http://127.0.0.1:{port}", Recorder()) as task:
            await until(lambda: len(fetches) >= 3 or task.done())
            assert not task.done(), task.exception()
    finally:
        server.close()
        for writer in list(writers):
            writer.transport.abort()  # wakes the handlers still reading
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
