"""A local Telegram Bot API server for end-to-end tests and benchmarks.

Telegram is out of reach from the test machines, so :class:`LocalBotAPI` stands in for it:
a real HTTP server on 127.0.0.1 that the real aiogram client talks to::

    async with LocalBotAPI() as api:
        session = AiohttpSession(api=TelegramAPIServer.from_base(api.base_url))
        bot = Bot(api.token, session=session)

It answers with Telegram's result shapes and Telegram's error responses (worded as
Telegram words them, so aiogram raises the same exceptions), enforces Telegram's flood
limits on real time (429 with ``retry_after``), serves long polling and webhooks, and
records every call. The test drives the other side through the :class:`World` methods.

``async with`` runs the server in the current event loop; ``start_in_thread()`` (or a
plain ``with``) runs it in its own loop in a background thread, so a benchmark's server
does not compete with the bot for its loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from funnels.kernel.clock import Clock
from tests.botapi.limits import FloodLimiter, FloodLimits
from tests.botapi.methods import BotMethods, canonical_method
from tests.botapi.model import (
    ApiError,
    Call,
    JsonDict,
    bad_request,
    method_not_found,
    poll_terminated,
    unauthorized,
    webhook_active,
)
from tests.botapi.params import Described, Params, UploadedFile, normalize_params
from tests.botapi.world import World

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class LocalBotAPI(World):
    """The Bot API of one bot, served on 127.0.0.1 (see the module docstring).

    Flood limits: ``group_per_minute`` sends and edits per group in any ``group_window``
    seconds, one per ``private_interval`` seconds per private chat, ``global_per_second``
    overall; ``None`` switches one off and ``limits=False`` (or None) all of them.
    ``latency`` delays every answer (a network round trip). ``allowed_updates`` is the
    setting the bot starts with (as if left by an earlier run).
    """

    def __init__(
        self,
        token: str = "42:TEST",
        *,
        group_per_minute: int | None = 20,
        group_window: float = 60.0,
        private_interval: float | None = 1.0,
        global_per_second: int | None = 30,
        limits: bool | None = True,
        callback_timeout: float = 15.0,
        latency: float = 0.0,
        clock: Clock | None = None,
        allowed_updates: Iterable[str] | None = None,
        webhook_retry_delay: float = 0.5,
        webhook_connections: int = 1,
        port: int = 0,
    ) -> None:
        super().__init__(
            token, callback_timeout=callback_timeout, clock=clock, allowed_updates=allowed_updates
        )
        flood = FloodLimits(group_per_minute, group_window, private_interval, global_per_second)
        self.limiter = FloodLimiter(flood if limits else None)
        self._methods = BotMethods(self, self.limiter)
        self.latency = latency
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_connections = max(1, webhook_connections)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._fixed_port = port
        """Where to serve (0: a free port): fixed, a bot can be pointed at the server
        before it starts, as at a Bot API out of reach."""
        self._event = asyncio.Event()
        self._poll_generation = 0
        self._closing = False
        self._webhook_task: asyncio.Task[None] | None = None
        self._client: aiohttp.ClientSession | None = None
        self._thread: threading.Thread | None = None
        self._broken: dict[str, list[tuple[int, str]]] = {}
        self._stalled: dict[str, list[float]] = {}

    # ------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        port = self._port or self._fixed_port
        if not port:
            raise RuntimeError("the server is not running")
        return f"http://127.0.0.1:{port}"

    async def start(self) -> LocalBotAPI:
        """Serve on 127.0.0.1 (on the port given, else on a free one; started again, on
        the same one) in the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self._closing = False
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # (Its own port again at once after a stop, though connections to it linger.)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._fixed_port))
        await web.SockSite(self._runner, sock).start()
        self._port = sock.getsockname()[1]
        self._webhook_task = asyncio.create_task(self._webhook_worker())
        return self

    async def stop(self) -> None:
        self._closing = True
        self._wake()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
            self._webhook_task = None
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        # Started again, it serves at the same address: a Bot API that went away and
        # came back.
        self._fixed_port = self._fixed_port or (self._port or 0)
        self._port = None
        with self._lock:
            self._loop = None

    async def __aenter__(self) -> LocalBotAPI:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def start_in_thread(self) -> LocalBotAPI:
        """Serve from a background thread with its own event loop."""
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="local-bot-api", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the local Bot API server did not start")
        if failure:
            raise failure[0]
        return self

    def stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> LocalBotAPI:
        return self.start_in_thread()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_thread()

    def break_next(
        self, method: str, *, status: int = 502, body: str = "<html>502 Bad Gateway</html>"
    ) -> None:
        """The next call of ``method`` gets a raw HTTP answer that is not the Bot API's
        JSON (a proxy's error page, say) and changes nothing: the caller cannot tell
        whether Telegram acted on it."""
        name = canonical_method(method) or method
        with self._lock:
            self._broken.setdefault(name, []).append((status, body))

    def stall_next(self, method: str, seconds: float) -> None:
        """The next call of ``method`` acts (and is recorded) at once, but its answer
        waits ``seconds``: a caller killed meanwhile cannot know Telegram acted."""
        name = canonical_method(method) or method
        with self._lock:
            self._stalled.setdefault(name, []).append(seconds)

    # ------------------------------------------------------------ waking waiters

    def _updates_changed(self) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        """Wake every long poll and the webhook worker (runs in the server's loop)."""
        self._event.set()
        self._event = asyncio.Event()

    # ------------------------------------------------------------ requests

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            raw = await _read_params(request)
        except ApiError as error:
            return web.json_response(error.body(), status=error.code)
        if self.latency:
            await asyncio.sleep(self.latency)
        if request.match_info["token"] != self.token:
            refusal = unauthorized()
            self._record(request.match_info["method"], normalize_params(raw), error=refusal)
            return web.json_response(refusal.body(), status=refusal.code)
        name = request.match_info["method"]
        with self._lock:
            pending = self._broken.get(canonical_method(name) or name)
            broken = pending.pop(0) if pending else None
        if broken is not None:
            status, page = broken
            refusal = ApiError(status, "broken on purpose: " + page)
            self._record(canonical_method(name) or name, normalize_params(raw), error=refusal)
            return web.Response(status=status, text=page, content_type="text/html")
        status, body = await self._execute(name, raw)
        with self._lock:
            stalls = self._stalled.get(canonical_method(name) or name)
            stall = stalls.pop(0) if stalls else None
        if stall is not None:
            await asyncio.sleep(stall)
        return web.json_response(body, status=status)

    async def _execute(
        self, name: str, raw: dict[str, Any], via: str = "request"
    ) -> tuple[int, JsonDict]:
        """Run one call and record it; the HTTP status and the JSON body to answer with."""
        method = canonical_method(name)
        params = normalize_params(raw)
        try:
            if method is None:
                raise method_not_found()
            if method == "getUpdates":
                result: Any = await self._get_updates(Params(params))
            else:
                with self._lock:
                    result = self._methods.call(method, params)
        except ApiError as error:
            self._record(method or name, params, error=error, via=via)
            return error.code, error.body()
        body: JsonDict = {"ok": True, "result": result}
        if isinstance(result, Described):
            body = {"ok": True, "result": result.result, "description": result.description}
            result = result.result
        self._record(method, params, result=result, via=via)
        return 200, body

    def _record(
        self,
        method: str,
        params: JsonDict,
        *,
        result: Any = None,
        error: ApiError | None = None,
        via: str = "request",
    ) -> None:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int) or isinstance(chat_id, bool):
            chat_id = None
        call = Call(
            method=method,
            params=params,
            ok=error is None,
            result=result,
            error_code=error.code if error else None,
            description=error.description if error else None,
            at=time.perf_counter(),
            chat_id=chat_id,
            via=via,
        )
        with self._lock:
            self._calls.append(call)
            if error is not None and error.code == 429:
                self._too_many_requests += 1

    async def _get_updates(self, p: Params) -> list[JsonDict]:
        with self._lock:
            if self.webhook.url:
                raise webhook_active()
            offset = p.integer("offset") or 0
            limit = min(max(p.integer("limit") or 100, 1), 100)
            timeout = max(p.integer("timeout") or 0, 0)
            self._set_allowed_updates(p.get("allowed_updates"))
            self._confirm_updates(offset)
            self._poll_generation += 1
            generation = self._poll_generation
            updates = self._updates[:limit]
        self._wake()  # an earlier poll still waiting is now terminated
        deadline = time.monotonic() + timeout
        while not updates and not self._closing:
            event = self._event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
            with self._lock:
                if self._poll_generation != generation:
                    raise poll_terminated()
                if self.webhook.url:
                    raise webhook_active()
                updates = self._updates[:limit]
        return updates

    # ------------------------------------------------------------ webhook delivery

    async def _webhook_worker(self) -> None:
        """Push queued updates to the webhook while one is set: the oldest first, up to
        ``webhook_connections`` at once (Telegram's ``max_connections``; with 1, in
        order, each after the last was answered)."""
        in_flight: dict[int, asyncio.Task[None]] = {}
        while not self._closing:
            event = self._event
            with self._lock:
                url, secret = self.webhook.url, self.webhook.secret_token
                waiting = [u for u in self._updates if id(u) not in in_flight] if url else []
            room = self.webhook_connections - len(in_flight)
            if waiting and room > 0 and url:
                for update in waiting[:room]:
                    in_flight[id(update)] = asyncio.create_task(
                        self._deliver(url, secret, update, in_flight)
                    )
                continue
            waking = asyncio.ensure_future(event.wait())
            await asyncio.wait([waking, *in_flight.values()], return_when=asyncio.FIRST_COMPLETED)
            waking.cancel()

    async def _deliver(
        self,
        url: str,
        secret: str | None,
        update: JsonDict,
        in_flight: dict[int, asyncio.Task[None]],
    ) -> None:
        """One update to the webhook; on failure, recorded for getWebhookInfo and tried
        again after ``webhook_retry_delay``."""
        try:
            error = await self._post_update(url, secret, update)
            with self._lock:
                if error is None:
                    self._updates = [u for u in self._updates if u is not update]
                elif self.webhook.url == url:
                    self.webhook.last_error_date = self._now()
                    self.webhook.last_error_message = error
            if error is not None:
                event = self._event
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), self.webhook_retry_delay)
        finally:
            in_flight.pop(id(update), None)

    async def _post_update(self, url: str, secret: str | None, update: JsonDict) -> str | None:
        """POST one update; None when delivered, else the error getWebhookInfo reports."""
        if self._client is None:
            self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        headers = {SECRET_HEADER: secret} if secret else {}
        try:
            async with self._client.post(url, json=update, headers=headers) as response:
                if not 200 <= response.status < 300:
                    return f"Wrong response from the webhook: {response.status} {response.reason}"
                reply = await _read_reply(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"Connection failed: {type(exc).__name__}"
        method = reply.pop("method", None)
        if isinstance(method, str) and canonical_method(method) not in (None, "getUpdates"):
            await self._execute(method, reply, via="webhook reply")  # in the webhook's answer
        return None


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Parameters from the query string and a JSON, urlencoded or multipart body."""
    raw: dict[str, Any] = dict(request.query)
    if not request.can_read_body:
        return raw
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise bad_request("can't parse JSON encoded request") from None
        if not isinstance(body, dict):
            raise bad_request("can't parse JSON encoded request")
        raw.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for name, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                raw[name] = UploadedFile(value.filename, len(value.file.read()))
            else:
                raw[name] = value
    return raw


async def _read_reply(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """A method call the webhook answered with (JSON or multipart form), if any."""
    if response.content_type == "application/json":
        with contextlib.suppress(ValueError, aiohttp.ContentTypeError):
            body = await response.json()
            return body if isinstance(body, dict) else {}
        return {}
    if not response.content_type.startswith("multipart/"):
        return {}
    fields: dict[str, Any] = {}
    reader = aiohttp.MultipartReader(response.headers, response.content)
    while (part := await reader.next()) is not None:
        if isinstance(part, aiohttp.BodyPartReader) and part.name:
            if part.filename:
                fields[part.name] = UploadedFile(part.filename, len(await part.read()))
            else:
                fields[part.name] = await part.text()
    return fields
