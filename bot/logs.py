"""``funnelbot run``'s log lines, the app's and uvicorn's alike: one JSON object a line
(python-json-logger) where machines read them, plain text on a terminal.

A JSON line holds ``time`` (ISO 8601 in UTC, to the millisecond), ``level``, ``logger``
and ``message``, and the ids a call site passes as ``extra`` (``cohort_id``,
``member_id``, ``payout_id``…); uvicorn's ``color_message``, its message again with
terminal colour codes, is left out. Lines never carry what members wrote, and anything
shaped like a secret (a bot token, an API key, a signing secret) is blanked from every
line, the text of an exception included. No line is written per HTTP request (uvicorn's
access log is off), so health probes leave none.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["auto", "json", "text"]

_SECRETS = re.compile(
    r"(?<![0-9])\d{5,16}:[A-Za-z0-9_-]{30,}"  # a bot token (also in a URL: .../bot123:AA…)
    r"|\bfbk_[A-Za-z0-9_-]{16,}"  # an API key
    r"|\bwhsec_[A-Za-z0-9+/=]{16,}"  # a Standard Webhooks secret
)
HIDDEN = "[hidden]"

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_QUIET = {
    "apscheduler": logging.WARNING,  # a line per tick every few seconds
    "aiogram.event": logging.WARNING,  # a line per update
}


class _SkippedTicks(logging.Filter):
    """Drops APScheduler's warning that a run of a job was skipped because the last one
    still runs. The service's one job, the tick, is coalesced by design (one instance
    at a time; a run that falls due meanwhile is the next one): a long tick, such as
    the catch-up at start-up, is no fault, and what it means for members shows in
    ``funnelbot_step_lateness_seconds``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            isinstance(record.msg, str)
            and "skipped: maximum number of running instances reached" in record.msg
        )


SKIPPED_TICKS = _SkippedTicks()
"""On the scheduler's logger (``apscheduler.scheduler``): see :class:`_SkippedTicks`."""


def hide_secrets(line: str) -> str:
    return _SECRETS.sub(HIDDEN, line)


_DROPPED = ("color_message",)
"""Fields a library adds that a JSON line does without (uvicorn's message again, with
terminal colour codes)."""


class _JsonLines(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return hide_secrets(super().format(record))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """ISO 8601 in UTC (``2026-03-20T11:02:00.125Z``): what log stores parse, and
        the same whatever the machine's time zone."""
        at = datetime.fromtimestamp(record.created, UTC)
        return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for name in _DROPPED:
            log_data.pop(name, None)
        return log_data


class _TextLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return hide_secrets(super().format(record))


def formatter(kind: Literal["json", "text"]) -> logging.Formatter:
    if kind == "text":
        return _TextLines(TEXT_FORMAT)
    return _JsonLines(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        json_ensure_ascii=False,
    )


def setup(kind: LogFormat = "auto", stream: Any = None) -> Literal["json", "text"]:
    """Send every log line (the app's, uvicorn's, the libraries') to ``stream``
    (stderr) in one format; ``auto``: text on a terminal, JSON otherwise. Returns the
    format chosen."""
    stream = stream if stream is not None else sys.stderr
    chosen: Literal["json", "text"] = (
        ("text" if stream.isatty() else "json") if kind == "auto" else kind
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(chosen))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own lines through the same handler (it is told not to configure any).
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)  # the root's level, whatever uvicorn set before
        logger.propagate = True
    for name, level in _QUIET.items():
        logging.getLogger(name).setLevel(level)
    return chosen


@contextmanager
def configured(kind: LogFormat = "auto", stream: Any = None) -> Iterator[Literal["json", "text"]]:
    """:func:`setup` for as long as the block runs (``funnelbot run``), then the loggers
    as they were: a command run in-process (a test's) leaves no handler behind."""
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access", *_QUIET]
    saved = [
        (logging.getLogger(n), list(logging.getLogger(n).handlers), logging.getLogger(n).level,
         logging.getLogger(n).propagate)
        for n in names
    ]  # fmt: skip
    try:
        yield setup(kind, stream)
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
