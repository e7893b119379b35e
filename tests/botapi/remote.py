"""The local Bot API server in a process of its own.

Telegram's servers do not share the bot's CPU; a server in the bot's own process (even in
a thread of its own) does, through the interpreter lock. Benchmarks that measure the bot
run the server here instead::

    with RemoteBotAPI("42:TEST", limits=False) as api:
        api.add_group(-100, "Group")           # any World method, called in the server
        answers = api.callback_answers         # any World property, read from it

Calls and reads go over a pipe and return pickled copies; they block, so they belong to
setup and checking, not to the measured part. Timestamps the server records
(``time.perf_counter``) are read from the system's monotonic clock and compare with the
caller's.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.connection
import threading
from types import TracebackType
from typing import Any

from tests.botapi.server import LocalBotAPI

_STOP = "__stop__"


def _serve(conn: multiprocessing.connection.Connection, args: tuple[Any, ...], kwargs: Any) -> None:
    api = LocalBotAPI(*args, **kwargs)
    try:
        api.start_in_thread()
    except BaseException as exc:
        conn.send((False, exc))
        return
    conn.send((True, api.base_url))
    try:
        while True:
            name, call_args, call_kwargs = conn.recv()
            if name == _STOP:
                break
            try:
                value = getattr(api, name)
                if call_args is not None:
                    value = value(*call_args, **call_kwargs)
                conn.send((True, value))
            except Exception as exc:  # handed to the caller, raised there
                conn.send((False, exc))
            # The server keeps every call and update it saw, so its heap only grows;
            # a full collection over it would stall the server for a while, which would
            # read as the bot being slow. What exists between commands stays put.
            gc.freeze()
    finally:
        api.stop_thread()
        conn.send((True, None))


class RemoteBotAPI:
    """A :class:`LocalBotAPI` (same arguments) served from a child process."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._lock = threading.Lock()
        self._process = context.Process(
            target=_serve, args=(child, args, kwargs), name="local-bot-api", daemon=True
        )
        self._process.start()
        ok, value = self._conn.recv()
        if not ok:
            self._process.join(5)
            raise value
        self.base_url: str = value

    def _ask(self, name: str, args: tuple[Any, ...] | None, kwargs: dict[str, Any]) -> Any:
        with self._lock:
            self._conn.send((name, args, kwargs))
            ok, value = self._conn.recv()
        if not ok:
            raise value
        return value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if callable(getattr(LocalBotAPI, name, None)):
            return lambda *args, **kwargs: self._ask(name, args, kwargs)
        return self._ask(name, None, {})

    def close(self) -> None:
        if self._process.is_alive():
            self._ask(_STOP, None, {})
            self._process.join(10)
        self._conn.close()

    def __enter__(self) -> RemoteBotAPI:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
