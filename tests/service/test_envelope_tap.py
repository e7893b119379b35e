"""Reading a red envelope's tap straight from the raw update (no aiogram models)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aiogram.types import Update

from bot.telegram.raw import Sender
from bot.telegram.render import Grab
from bot.telegram.routers.envelopes import Tap, read_tap

RAW: dict[str, Any] = {
    "update_id": 7,
    "callback_query": {
        "id": "4000000000000000123",
        "from": {
            "id": 1001,
            "is_bot": False,
            "first_name": "Ana",
            "last_name": "López",
            "language_code": "es",
        },
        "chat_instance": "77",
        "data": Grab(envelope=42).pack(),
        "message": {"message_id": 5, "date": 0, "chat": {"id": -100, "type": "supergroup"}},
    },
}


def changed(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    node = raw
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return raw


def test_a_tap_is_read_as_aiogram_would_read_it() -> None:
    tap = read_tap(RAW)
    assert tap == Tap("4000000000000000123", 42, Sender(1001, "Ana López", "es"))
    # The same fields as aiogram's own models give the router's handler.
    query = Update.model_validate(RAW).callback_query
    assert query is not None
    assert tap == Tap.of(query, 42)


def test_a_member_without_a_last_name_or_language() -> None:
    raw = changed(("callback_query", "from", "last_name"), KeyError)
    raw["callback_query"]["from"].pop("language_code")
    assert read_tap(raw) == Tap("4000000000000000123", 42, Sender(1001, "Ana", None))


@pytest.mark.parametrize(
    "raw",
    [
        {"update_id": 1, "message": {"text": "grab:42"}},
        changed(("callback_query", "data"), "lang:es"),
        changed(("callback_query", "data"), "grab:"),
        changed(("callback_query", "data"), "grab:-4"),
        changed(("callback_query", "data"), "grab:4x"),
        changed(("callback_query", "data"), "grab:٤٢"),  # Arabic-Indic digits
        changed(("callback_query", "data"), "grab:1" + "0" * 20),
        changed(("callback_query", "data"), KeyError),  # a game's callback has no data
        changed(("callback_query", "id"), 123),
        changed(("callback_query", "from"), KeyError),
        changed(("callback_query", "from", "id"), "1001"),
        changed(("callback_query", "from", "id"), True),
        changed(("callback_query", "from", "first_name"), None),
        changed(("callback_query", "from", "last_name"), 5),
        changed(("callback_query", "from", "language_code"), ["es"]),
        {"update_id": 1, "callback_query": None},
    ],
)
def test_anything_else_is_left_to_aiogram(raw: dict[str, Any]) -> None:
    assert read_tap(raw) is None
