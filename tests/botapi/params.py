"""Bot API call parameters: decoding form fields and typed access.

aiogram (like most clients) posts multipart/form-data where every value is text: numbers
as digits, booleans as ``true``/``false``, objects such as ``reply_markup`` as JSON. They
are decoded once (:func:`normalize_params`) so the call log holds real values, and read
through :class:`Params`, which answers a wrong value with Telegram's 400.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from tests.botapi.model import JsonDict, bad_request

# Parameters that arrive as JSON text in form fields, and scalars that arrive as text.
JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "allowed_updates",
        "permissions",
        "reaction",
        "commands",
        "scope",
        "entities",
        "caption_entities",
        "link_preview_options",
        "reply_parameters",
        "media",
    }
)
INT_FIELDS = frozenset(
    {
        "chat_id",
        "message_id",
        "user_id",
        "offset",
        "limit",
        "timeout",
        "expire_date",
        "member_limit",
        "until_date",
        "cache_time",
        "max_connections",
        "message_thread_id",
        "reply_to_message_id",
        "duration",
        "width",
        "height",
    }
)
BOOL_FIELDS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "show_alert",
        "drop_pending_updates",
        "creates_join_request",
        "is_big",
        "use_independent_chat_permissions",
        "has_spoiler",
        "disable_web_page_preview",
        "allow_sending_without_reply",
        "show_caption_above_media",
        "supports_streaming",
        "only_if_banned",
        "revoke_messages",
    }
)
_INT = re.compile(r"-?\d+")


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request."""

    filename: str
    size: int


class Described(NamedTuple):
    """A result Telegram sends with a ``description`` (setWebhook, deleteWebhook)."""

    result: Any
    description: str


def normalize_params(raw: dict[str, Any]) -> JsonDict:
    """Decode JSON fields and typed scalars of form-encoded parameters (JSON bodies pass)."""
    params: JsonDict = {}
    for name, value in raw.items():
        if isinstance(value, str):
            if name in JSON_FIELDS:
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            elif name in INT_FIELDS and _INT.fullmatch(value.strip()):
                value = int(value)
            elif name in BOOL_FIELDS and value.lower() in ("true", "false"):
                value = value.lower() == "true"
        params[name] = value
    return params


class Params:
    """Typed access to one call's parameters."""

    def __init__(self, raw: JsonDict) -> None:
        self.raw = raw

    def get(self, name: str) -> Any:
        value = self.raw.get(name)
        return None if value is None or value == "" else value

    def integer(self, name: str, missing: str | None = None) -> int | None:
        value = self.get(name)
        if value is None:
            if missing is not None:
                raise bad_request(missing)
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _INT.fullmatch(value.strip()):
            return int(value)
        raise bad_request(f"invalid {name} specified")

    def required_int(self, name: str, missing: str) -> int:
        value = self.integer(name, missing)
        assert value is not None
        return value

    def text(self, name: str) -> str | None:
        value = self.get(name)
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value) if isinstance(value, (dict, list)) else str(value)

    def flag(self, name: str) -> bool:
        value = self.get(name)
        if isinstance(value, str):
            return value.lower() in ("true", "1")
        return bool(value)

    def obj(self, name: str) -> Any:
        value = self.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {name} JSON object") from None
        return value
