"""bot/telegram/direct_api.py end to end: answers and getUpdates over its own kept-alive
connections, against the local Bot API server and, for what that server cannot do (close
idle connections, answer ``Connection: close``, never answer, count connections), against
a tiny scriptable HTTP server written here."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from aiogram import Bot
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramNetworkError
from aiogram.methods import AnswerCallbackQuery
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.telegram.direct_api import DirectBotAPI, UpdatesRefused
from tests.botapi import LocalBotAPI
from tests.botapi.model import QUERY_TOO_OLD
from tests.e2e.conftest import ANN, BOB, GROUP, TOKEN
from tests.support.loopback import LoopbackSession, until

KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="Grab", callback_data="grab:1")]]
)
OK = b'{"ok":true,"result":true}'
NO_UPDATES = b'{"ok":true,"result":[]}'


@asynccontextmanager
async def clients(
    base_url: str, *, connections: int = 100, call_timeout: float = 10.0
) -> AsyncIterator[tuple[Bot, DirectBotAPI]]:
    """aiogram's Bot at ``base_url`` and a DirectBotAPI over it (``call_timeout`` is its
    ``timeout``)."""
    session = LoopbackSession(api=TelegramAPIServer.from_base(base_url))
    bot = Bot(TOKEN, session=session)
    direct = DirectBotAPI(bot, connections=connections, timeout=call_timeout)
    try:
        yield bot, direct
    finally:
        await direct.close()
        await session.close()


# ---------------------------------------------------------------- the local Bot API


async def envelope(bot: Bot) -> int:
    """A bot message with a callback button in the group; its message id."""
    sent = await bot.send_message(GROUP, "A red envelope!", reply_markup=KEYBOARD)
    return sent.message_id


def tap(api: LocalBotAPI, message_id: int, user: int = ANN) -> str:
    """A member taps the button; the callback query's id."""
    query_id: str = api.tap(GROUP, message_id, user)["callback_query"]["id"]
    return query_id


async def test_answer_with_non_ascii_text_and_alert_is_recorded_exactly(
    api: LocalBotAPI,
) -> None:
    async with clients(api.base_url) as (bot, direct):
        message_id = await envelope(bot)
        first, second = tap(api, message_id, ANN), tap(api, message_id, BOB)
        await direct.answer_callback(first, "恭喜发财！你抢到了 8.88 元 🧧", alert=True)
        await direct.answer_callback(second)
    answers = api.callback_answers
    assert answers[first][:2] == ("恭喜发财！你抢到了 8.88 元 🧧", True)
    assert answers[second][:2] == (None, False)
    calls = api.calls_of("answerCallbackQuery")
    assert [call.ok for call in calls] == [True, True]  # one call each: no fallback


async def test_a_second_answer_raises_bad_request_with_telegrams_description(
    api: LocalBotAPI,
) -> None:
    async with clients(api.base_url) as (bot, direct):
        query_id = tap(api, await envelope(bot))
        await direct.answer_callback(query_id, "Yours")
        with pytest.raises(TelegramBadRequest) as caught:
            await direct.answer_callback(query_id, "Again", alert=True)
    assert caught.value.message == f"Bad Request: {QUERY_TOO_OLD}"
    assert QUERY_TOO_OLD in str(caught.value)
    method = caught.value.method
    assert isinstance(method, AnswerCallbackQuery)
    assert (method.callback_query_id, method.text, method.show_alert) == (query_id, "Again", True)
    assert api.callback_answers[query_id][:2] == ("Yours", False)
    # The refusal is final: it is not sent again through aiogram.
    assert [call.ok for call in api.calls_of("answerCallbackQuery")] == [True, False]


async def test_an_unknown_query_is_refused_not_retried(api: LocalBotAPI) -> None:
    async with clients(api.base_url) as (_, direct):
        with pytest.raises(TelegramBadRequest, match="query is too old"):
            await direct.answer_callback("123456789")
    assert len(api.calls_of("answerCallbackQuery")) == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (502, "<html>502 Bad Gateway</html>"),
        (400, "<html>400 Bad Request (a proxy's page)</html>"),
        (
            429,
            '{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 0",'
            '"parameters":{"retry_after":0}}',
        ),
        (500, '{"ok":false,"error_code":500,"description":"Internal Server Error"}'),
    ],
    ids=["502-page", "400-page", "429-json", "500-json"],
)
async def test_an_answer_that_is_neither_success_nor_refusal_goes_through_aiogram(
    api: LocalBotAPI, status: int, body: str
) -> None:
    async with clients(api.base_url) as (bot, direct):
        query_id = tap(api, await envelope(bot))
        api.break_next("answerCallbackQuery", status=status, body=body)
        await direct.answer_callback(query_id, "Sorry, all gone", alert=True)
    assert api.callback_answers[query_id][:2] == ("Sorry, all gone", True)
    calls = api.calls_of("answerCallbackQuery")
    assert [(call.ok, call.error_code) for call in calls] == [(False, status), (True, None)]


async def test_many_concurrent_answers_over_few_connections_are_all_recorded(
    api: LocalBotAPI,
) -> None:
    async with clients(api.base_url, connections=5) as (bot, direct):
        message_id = await envelope(bot)
        for user_id in range(2000, 2200):
            api.add_user(user_id, f"Member{user_id}")
            api.set_member(GROUP, user_id, "member")
        queries = {tap(api, message_id, user_id): f"#{user_id}" for user_id in range(2000, 2200)}
        async with asyncio.timeout(5):
            await asyncio.gather(*(direct.answer_callback(q, t) for q, t in queries.items()))
    answers = api.callback_answers
    assert {q: answers[q].text for q in queries} == queries
    calls = api.calls_of("answerCallbackQuery")
    assert len(calls) == 200 and all(call.ok for call in calls)


async def test_get_updates_returns_the_raw_updates_queued(api: LocalBotAPI) -> None:
    async with clients(api.base_url) as (bot, direct):
        said = [api.say(GROUP, ANN, "first"), api.say(GROUP, BOB, "二")]
        message_id = await envelope(bot)
        tapped = api.tap(GROUP, message_id, BOB)
        updates = await direct.get_updates(None, 0)
    assert updates == [*said, tapped]
    assert [u["message"]["text"] for u in updates[:2]] == ["first", "二"]
    assert updates[2]["callback_query"]["data"] == "grab:1"
    assert all(isinstance(u["update_id"], int) for u in updates)


async def test_get_updates_honours_the_offset(api: LocalBotAPI) -> None:
    async with clients(api.base_url) as (_, direct):
        first = api.say(GROUP, ANN, "one")
        second = api.say(GROUP, ANN, "two")
        assert await direct.get_updates(None, 0) == [first, second]
        assert await direct.get_updates(None, 0) == [first, second]  # not confirmed yet
        offset = second["update_id"] + 1
        assert await direct.get_updates(offset, 0) == []
        assert api.pending_updates() == []  # confirmed: the server dropped them
        third = api.say(GROUP, BOB, "three")
        assert await direct.get_updates(offset, 0) == [third]
        assert await direct.get_updates(offset - 1, 0) == [third]  # an older offset
    params = [call.params.get("offset") for call in api.calls_of("getUpdates")]
    assert params == [None, None, offset, offset, offset - 1]


async def test_get_updates_long_polls_until_an_update_arrives(api: LocalBotAPI) -> None:
    async with clients(api.base_url) as (_, direct):
        polling = asyncio.create_task(direct.get_updates(None, 5))
        await asyncio.sleep(0.05)
        assert not polling.done()  # waiting on the server for an update
        said = api.say(GROUP, ANN, "wake up")
        async with asyncio.timeout(2):
            assert await polling == [said]


async def test_get_updates_passes_allowed_updates(api: LocalBotAPI) -> None:
    async with clients(api.base_url) as (bot, direct):
        message_id = await envelope(bot)
        assert await direct.get_updates(None, 0, ["callback_query"]) == []
        api.say(GROUP, ANN, "filtered out")  # Telegram drops what the bot did not ask for
        tapped = api.tap(GROUP, message_id, ANN)
        assert await direct.get_updates(None, 0) == [tapped]


async def test_get_updates_refused_on_a_page_that_is_not_the_bot_apis(api: LocalBotAPI) -> None:
    async with clients(api.base_url) as (_, direct):
        said = api.say(GROUP, ANN, "kept")
        api.break_next("getUpdates", status=502)
        with pytest.raises(UpdatesRefused) as caught:
            await direct.get_updates(None, 0)
        assert (caught.value.status, caught.value.retry_after) == (502, None)
        assert "502 Bad Gateway" in caught.value.description
        assert await direct.get_updates(None, 0) == [said]  # the connection still works


async def test_get_updates_refused_with_telegrams_description_and_retry_after(
    api: LocalBotAPI,
) -> None:
    flood = {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }
    conflict = {"ok": False, "error_code": 409, "description": "Conflict: terminated"}
    async with clients(api.base_url) as (_, direct):
        api.break_next("getUpdates", status=429, body=json.dumps(flood))
        api.break_next("getUpdates", status=409, body=json.dumps(conflict))
        with pytest.raises(UpdatesRefused) as flooded:
            await direct.get_updates(None, 0)
        with pytest.raises(UpdatesRefused) as conflicted:
            await direct.get_updates(None, 0)
    assert (flooded.value.status, flooded.value.retry_after) == (429, 7)
    assert flooded.value.description == "Too Many Requests: retry after 7"
    assert (conflicted.value.status, conflicted.value.retry_after) == (409, None)
    assert conflicted.value.description == "Conflict: terminated"


# ---------------------------------------------------------------- a scriptable raw server


@dataclass
class Seen:
    """One request the raw server read."""

    conn: int  # which connection (1, 2, ... in the order they were opened)
    method: str
    headers: dict[str, str]
    body: bytes

    @property
    def via_aiogram(self) -> bool:
        return "aiogram" in self.headers.get("user-agent", "")


class RawServer:
    """A tiny HTTP/1.1 server that answers every request with ``{"ok":true,"result":true}``
    (getUpdates with no updates), keeping the connection alive, unless scripted otherwise."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.connections = 0
        self.open = 0
        self.max_open = 0
        self.ended: set[int] = set()  # connections over (closed by the client, or by us)
        self.delay = 0.0  # before each reply
        self.connection_close = False  # reply with "Connection: close", then close
        self.drop_after_reply = False  # after a reply, close quietly (an idle timeout)
        self.hang = 0  # the next this many requests not from aiogram never get a reply
        self.garbage: bytes | None = None  # reply with these bytes instead of HTTP
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def direct_requests(self) -> list[Seen]:
        return [seen for seen in self.requests if not seen.via_aiogram]

    def aiogram_requests(self) -> list[Seen]:
        return [seen for seen in self.requests if seen.via_aiogram]

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # wakes the handlers still reading
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        conn = self.connections
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            await self._converse(conn, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.ended.add(conn)
            self.open -= 1
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _converse(
        self, conn: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve requests until the connection ends; returns once the client has closed
        it (or the server closed it with ``Connection: close``)."""
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            target = lines[0].split()[1]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name:
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            seen = Seen(conn, target.rsplit("/", 1)[-1], headers, body)
            self.requests.append(seen)
            if self.hang and not seen.via_aiogram:
                self.hang -= 1
                await reader.read()  # until the client gives up and closes
                return
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.garbage is not None and not seen.via_aiogram:
                writer.write(self.garbage)
                await reader.read()
                return
            close = self.connection_close
            reply = NO_UPDATES if seen.method.lower() == "getupdates" else OK
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n%s\r\n%s"
                % (len(reply), b"Connection: close\r\n" if close else b"", reply)
            )
            await writer.drain()
            if close:
                return
            if self.drop_after_reply:
                # Close our side as a server's idle timeout does, and see the client
                # notice: it closes too once it has read the end of the stream.
                writer.write_eof()
                await reader.read()
                return


@pytest.fixture
async def raw() -> AsyncIterator[RawServer]:
    async with RawServer() as server:
        yield server


async def test_answers_reuse_one_kept_alive_connection(raw: RawServer) -> None:
    async with clients(raw.base_url) as (_, direct):
        for n in range(5):
            await direct.answer_callback(f"q{n}", "ok")
    assert [seen.conn for seen in raw.requests] == [1] * 5
    assert not raw.aiogram_requests()
    seen = raw.requests[0]
    assert seen.method == "answerCallbackQuery"
    assert json.loads(seen.body) == {"callback_query_id": "q0", "show_alert": False, "text": "ok"}
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["host"] == f"127.0.0.1:{raw.port}"


async def test_a_connection_the_server_closed_while_idle_is_replaced(raw: RawServer) -> None:
    raw.drop_after_reply = True
    async with clients(raw.base_url) as (_, direct):
        await direct.answer_callback("q1")
        await until(lambda: 1 in raw.ended)  # the client saw it closed
        await direct.answer_callback("q2")
        await until(lambda: 2 in raw.ended)
        await direct.answer_callback("q3")
    assert [(seen.conn, seen.via_aiogram) for seen in raw.requests] == [
        (1, False),
        (2, False),
        (3, False),
    ]


async def test_connection_close_replies_are_never_reused(raw: RawServer) -> None:
    raw.connection_close = True
    async with clients(raw.base_url) as (_, direct):
        for n in range(4):
            await direct.answer_callback(f"q{n}")
        assert await direct.get_updates(None, 0) == []
    assert [seen.conn for seen in raw.requests] == [1, 2, 3, 4, 5]
    assert not raw.aiogram_requests()


async def test_no_more_connections_than_allowed(raw: RawServer) -> None:
    raw.delay = 0.01  # replies overlap, so the answers queue for the two connections
    async with clients(raw.base_url, connections=2) as (_, direct):
        async with asyncio.timeout(3):
            await asyncio.gather(*(direct.answer_callback(f"q{n}") for n in range(20)))
    assert len(raw.direct_requests()) == 20
    assert not raw.aiogram_requests()
    assert raw.max_open <= 2
    assert raw.connections == 2
    assert sorted(json.loads(seen.body)["callback_query_id"] for seen in raw.requests) == sorted(
        f"q{n}" for n in range(20)
    )


async def test_a_silent_server_times_out_into_aiogram_and_is_not_reused(raw: RawServer) -> None:
    raw.hang = 1
    async with clients(raw.base_url, call_timeout=0.2) as (_, direct):
        async with asyncio.timeout(2):
            await direct.answer_callback("q1", "late", alert=True)
        hung = raw.requests[0]
        assert not hung.via_aiogram
        fallback = raw.aiogram_requests()
        assert [seen.method.lower() for seen in fallback] == ["answercallbackquery"]
        assert b"q1" in fallback[0].body
        await until(lambda: hung.conn in raw.ended)  # given up on: closed
        await direct.answer_callback("q2")
    second = raw.direct_requests()[-1]
    assert json.loads(second.body)["callback_query_id"] == "q2"
    assert second.conn not in (hung.conn, fallback[0].conn)


async def test_an_unreachable_server_falls_back_and_aiograms_error_propagates() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with clients(f"http://127.0.0.1:{port}") as (_, direct):
        with pytest.raises(TelegramNetworkError):
            await direct.answer_callback("q1")
        with pytest.raises(OSError):
            await direct.get_updates(None, 0)


async def test_get_updates_times_out_on_a_silent_server(raw: RawServer) -> None:
    raw.hang = 1
    async with clients(raw.base_url, call_timeout=0.2) as (_, direct):
        async with asyncio.timeout(2):
            with pytest.raises(TimeoutError):
                await direct.get_updates(None, 0)
        await until(lambda: 1 in raw.ended)
        assert await direct.get_updates(None, 0) == []
    assert [seen.conn for seen in raw.requests] == [1, 2]


async def test_a_reply_that_is_not_http_falls_back_to_aiogram(raw: RawServer) -> None:
    raw.garbage = b"SSH-2.0-OpenSSH_9.6\r\n"
    async with clients(raw.base_url) as (_, direct):
        await direct.answer_callback("q1")
    assert [seen.via_aiogram for seen in raw.requests] == [False, True]


async def test_get_updates_on_a_reply_that_is_not_http_raises_a_connection_error(
    raw: RawServer,
) -> None:
    raw.garbage = b"SSH-2.0-OpenSSH_9.6\r\n"
    async with clients(raw.base_url) as (_, direct):
        with pytest.raises((UpdatesRefused, OSError)):
            await direct.get_updates(None, 0)
