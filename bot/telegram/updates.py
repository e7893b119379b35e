"""Reading a raw Telegram update: its shape checked at the door, whose it is, what kind,
and why handling it failed."""

from __future__ import annotations

import traceback
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, TimeoutError as PoolTimeout

from bot.args import TELEGRAM_ID_LIMIT

Json = dict[str, Any]


class BadUpdate(ValueError):
    """Not something Telegram would send: refused before it is stored."""


def check_update(update: object) -> Json:
    """The update if it has the shape every Telegram update has, else :class:`BadUpdate`
    saying what is wrong. What it carries is checked when it is handled."""
    if not isinstance(update, dict):
        raise BadUpdate("an update is a JSON object")
    update_id = update.get("update_id")
    if type(update_id) is not int:
        raise BadUpdate("update_id must be an integer")
    if not 0 <= update_id < 2**31:
        raise BadUpdate("update_id is outside Telegram's range")
    _check_ids(update)
    return update


def _check_ids(update: Json) -> None:
    """Every ``id`` and ``*_id`` number inside fits Telegram's range (and the database's
    64-bit columns)."""
    stack: list[Any] = [update]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, dict | list):
                    stack.append(value)
                elif (
                    type(value) is int
                    and (key == "id" or key.endswith("_id"))
                    and not -TELEGRAM_ID_LIMIT < value < TELEGRAM_ID_LIMIT
                ):
                    raise BadUpdate(f"{key} is outside Telegram's range")
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))


def actor_of(update: Json) -> int | None:
    """The person an update is about (who wrote, joined, asked), read from the raw JSON:
    one person's updates are handled in the order they came (a join before the "1"
    that follows it), different people's side by side."""
    for kind, key in _ACTORS:
        payload = update.get(kind)
        if isinstance(payload, dict):
            person = payload.get(key)
            if key == "new_chat_member" and isinstance(person, dict):
                person = person.get("user")
            if isinstance(person, dict):
                actor = person.get("id")
                return actor if type(actor) is int else None
            return None
    return None


_ACTORS = (
    ("message", "from"),
    ("chat_member", "new_chat_member"),
    ("chat_join_request", "from"),
    ("edited_message", "from"),
    ("callback_query", "from"),
)


def kind_of(update: Json) -> str:
    """What an update carries: its one key besides ``update_id``."""
    return next((k for k in update if k != "update_id"), "empty")[:32]


RETRYABLE_STATES = frozenset({"40001", "40P01"})
"""PostgreSQL's serialization failure and deadlock: the transaction was rolled back and
succeeds when run again."""


def passing(exc: BaseException) -> bool:
    """A fault that goes away by itself (a connection, a timeout), as opposed to an
    update that can never be handled."""
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or getattr(exc.orig, "sqlstate", None) in RETRYABLE_STATES
    ):
        return True
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout | OSError | TimeoutError):
        return True  # PoolTimeout: every pooled connection stayed busy for the pool's wait
    name = type(exc).__name__  # aiogram's, without importing the client here
    return name in ("TelegramNetworkError", "TelegramServerError", "TelegramRetryAfter")


def reason(exc: BaseException) -> str:
    """Why an update failed, in a line: the invalid field, or the error and where it
    was raised when it says nothing itself."""
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"not a valid update: {where}: {first['msg']}"
    text = str(exc)
    if not text:
        frames = traceback.extract_tb(exc.__traceback__)
        text = f"at {frames[-1].filename}:{frames[-1].lineno}" if frames else "no message"
    return f"{type(exc).__name__}: {text}"
