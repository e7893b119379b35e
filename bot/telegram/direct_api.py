"""Two Bot API calls made directly, without aiogram's models: answering callback
queries, and reading updates.

A crowd tapping a red envelope sends hundreds of callback queries within a second, and
each member sees a spinner until the bot answers. Through aiogram's client an answer
costs about half a millisecond of CPU (a method model, form encoding, aiohttp's request
machinery, a response model), and reading each update into aiogram's models costs a
tenth of a millisecond more; together they cap a process below a thousand taps a second
before it has done anything else. Here a call is one JSON request written in a single
piece on a kept-alive HTTP/1.1 connection, its reply parsed by httptools and ``json``:
about a fifth of the cost. These connections carry nothing else, so bulk sends queued
on aiogram's pool never hold an answer back.

Only a plain success or a plain refusal of an answer is read here. Anything else (a
flood wait, a server error, a page that is not the Bot API's, a connection that breaks
or stays silent) hands the answer to aiogram's client, whose errors the callers already
handle. An answer sent twice that way is harmless: Telegram refuses the second as too old.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from typing import Any, cast
from urllib.parse import urlsplit

import certifi
import httptools
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import AnswerCallbackQuery

log = logging.getLogger("funnelbot.bot")


class _Connection(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection carrying one request at a time."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._body: list[bytes] = []
        self._reply: asyncio.Future[tuple[int, bytes]] | None = None
        self.reusable = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not subclasses of asyncio.Transport).
        self._transport = cast(asyncio.Transport, transport)
        self.reusable = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._fail(exc or ConnectionResetError("the Bot API server closed the connection"))

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:  # not HTTP we can read: never reuse
            self._fail(exc)
            self.close()

    # httptools callbacks

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if not self._parser.should_keep_alive():
            self.close()
        body = b"".join(self._body)
        self._body.clear()
        reply, self._reply = self._reply, None
        if reply is None or reply.done():  # nothing asked (or it gave up): unusable
            self.close()
        else:
            reply.set_result((status, body))

    # used by DirectBotAPI

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self._transport is not None and self._reply is None
        self._reply = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        return self._reply

    def close(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.close()

    def _fail(self, exc: BaseException) -> None:
        reply, self._reply = self._reply, None
        if reply is not None and not reply.done():
            reply.set_exception(exc)


class UpdatesRefused(Exception):
    """getUpdates did not answer with updates (a webhook is set, another process polls,
    a flood wait, a server error); ``retry_after`` is Telegram's wait, if it gave one."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(f"HTTP {status}: {description}")
        self.status = status
        self.description = description
        self.retry_after = retry_after


class DirectBotAPI:
    """The bot's Bot API server, called directly over at most ``connections`` connections.

    ``answer_callback`` raises :class:`~aiogram.exceptions.TelegramBadRequest` when
    Telegram refuses (a query answered already or too old), and whatever aiogram's client
    raises when the answer had to go through it. ``get_updates`` returns the raw updates
    or raises :class:`UpdatesRefused`, a connection error (``OSError``) or ``TimeoutError``.
    """

    def __init__(self, bot: Bot, *, connections: int = 100, timeout: float = 10.0) -> None:
        # The method's URL exactly as aiogram builds it, with "{method}" left to fill.
        url = urlsplit(bot.session.api.api_url(token=bot.token, method="{method}"))
        self._bot = bot
        self._host = url.hostname or "localhost"
        self._tls = url.scheme == "https"
        self._port = url.port or (443 if self._tls else 80)
        self._ssl = ssl.create_default_context(cafile=certifi.where()) if self._tls else None
        target = url.path + (f"?{url.query}" if url.query else "")
        self._head = (
            f"POST {target} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        )
        self._heads: dict[str, bytes] = {}
        self._timeout = timeout
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[_Connection] = []
        self._closed = False

    async def answer_callback(
        self, query_id: str, text: str | None = None, *, alert: bool = False
    ) -> None:
        payload: dict[str, object] = {"callback_query_id": query_id, "show_alert": alert}
        if text is not None:
            payload["text"] = text
        try:
            status, reply = await self._post("answerCallbackQuery", payload, self._timeout)
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            log.info(
                "direct answer failed (%s); answering through aiogram",
                str(exc) or type(exc).__name__,
            )
        else:
            if status == 200:
                return
            if status == 400:
                description = _description(reply)
                if description is not None:
                    raise TelegramBadRequest(_method(query_id, text, alert), description)
        await self._bot(_method(query_id, text, alert))

    async def get_updates(
        self, offset: int | None, wait: int, allowed_updates: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """One long poll: the updates after ``offset``, waiting up to ``wait`` seconds for
        the first (``getUpdates``' offset, timeout and allowed_updates)."""
        payload: dict[str, object] = {"timeout": wait}
        if offset is not None:
            payload["offset"] = offset
        if allowed_updates is not None:
            payload["allowed_updates"] = allowed_updates
        try:
            status, reply = await self._post("getUpdates", payload, wait + self._timeout)
        except httptools.HttpParserError as exc:  # something that does not speak HTTP
            raise ConnectionError(f"the reply to getUpdates is not HTTP: {exc}") from exc
        try:
            data = json.loads(reply)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise UpdatesRefused(status, f"not the Bot API's answer: {reply[:80]!r}")
        result = data.get("result")
        if status == 200 and data.get("ok") is True and isinstance(result, list):
            return result
        parameters = data.get("parameters")
        retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
        raise UpdatesRefused(
            status,
            str(data.get("description") or "no description"),
            retry_after if isinstance(retry_after, int) else None,
        )

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    async def _post(
        self, method: str, payload: dict[str, object], within: float
    ) -> tuple[int, bytes]:
        head = self._heads.get(method)
        if head is None:
            head = self._heads[method] = self._head.replace("{method}", method).encode()
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        async with self._slots:
            conn = await self._connection()
            done = False
            try:
                async with asyncio.timeout(within):
                    reply = await conn.request(b"%s%d\r\n\r\n%s" % (head, len(body), body))
                done = True
                return reply
            finally:
                if done and conn.reusable and not self._closed:
                    self._idle.append(conn)
                else:  # broken, or a reply may still be on its way: never reuse
                    conn.close()

    async def _connection(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable:
                return conn
        async with asyncio.timeout(self._timeout):
            _, conn = await asyncio.get_running_loop().create_connection(
                _Connection,
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._tls else None,
            )
        return conn


def _method(query_id: str, text: str | None, alert: bool) -> AnswerCallbackQuery:
    return AnswerCallbackQuery(callback_query_id=query_id, text=text, show_alert=alert)


def _description(reply: bytes) -> str | None:
    """The refusal's description, if the reply is the Bot API's JSON."""
    try:
        data = json.loads(reply)
    except ValueError:
        return None
    description = data.get("description") if isinstance(data, dict) else None
    return description if isinstance(description, str) else None
