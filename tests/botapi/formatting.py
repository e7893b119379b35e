"""Message content as Telegram checks it: ``parse_mode=HTML``, length limits, keyboards.

Telegram strips HTML tags from the text and returns ``entities`` with offsets in UTF-16
code units; malformed markup is refused with ``can't parse entities: ...``. Markdown parse
modes are passed through untouched (the text keeps its markup, no entities).
"""

from __future__ import annotations

import html
import re
from typing import Any

from tests.botapi.model import JsonDict, bad_request

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64

_SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
_OTHER_TAGS = {"a", "span", "tg-emoji"}
_ATTRIBUTE = re.compile(r"""\s*([a-zA-Z-]+)\s*(?:=\s*("[^"]*"|'[^']*'|[^\s>]*))?""")
_ENTITY_REFERENCE = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);")
_INLINE_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _unescape(fragment: str) -> str:
    def replace(match: re.Match[str]) -> str:
        return html.unescape(match.group(0))

    return _ENTITY_REFERENCE.sub(replace, fragment)


def parse_html(source: str) -> tuple[str, list[JsonDict]]:
    """Telegram's HTML parse mode: the plain text and its entities, or a 400."""
    out: list[str] = []
    out_len = 0  # UTF-16 length of what is in ``out``
    open_tags: list[tuple[str, JsonDict | None]] = []
    entities: list[JsonDict] = []
    i = 0
    while i < len(source):
        lt = source.find("<", i)
        if lt < 0:
            lt = len(source)
        if lt > i:
            text = _unescape(source[i:lt])
            out.append(text)
            out_len += utf16_len(text)
        if lt == len(source):
            break
        offset = len(source[:lt].encode())
        if source.startswith("</", lt):
            gt = _close_end_tag(source, lt, offset, bool(open_tags))
            name = source[lt + 2 : gt].strip().lower()
            open_name, entity = open_tags.pop()
            if name and name != open_name:
                raise _cant_parse(
                    f'Unmatched end tag at byte offset {offset}, expected "</{open_name}>", '
                    f'found "</{name}>"'
                )
            if entity is not None:
                entity["length"] = out_len - entity["offset"]
                if entity["length"] > 0:
                    entities.append(entity)
        else:
            end = lt + 1
            while end < len(source) and not source[end].isspace() and source[end] != ">":
                end += 1
            if end == len(source):
                raise _cant_parse(f"Unclosed start tag at byte offset {offset}")
            name = source[lt + 1 : end].lower()
            if name not in _SIMPLE_TAGS and name not in _OTHER_TAGS:
                raise _cant_parse(f'Unsupported start tag "{name}" at byte offset {offset}')
            gt = source.find(">", end)
            if gt < 0:
                raise _cant_parse(f"Unclosed start tag at byte offset {offset}")
            attributes = {
                key.lower(): _unescape(value.strip("\"'"))
                for key, value in _ATTRIBUTE.findall(source[end:gt])
            }
            entity = _entity_for(name, attributes, out_len, offset)
            if name == "code" and open_tags and open_tags[-1][0] == "pre":
                pre = open_tags[-1][1]
                language = attributes.get("class", "")
                if pre is not None and language.startswith("language-"):
                    pre["language"] = language.removeprefix("language-")
                entity = None
            open_tags.append((name, entity))
        i = gt + 1
    if open_tags:
        raise _cant_parse(f'Can\'t find end tag corresponding to start tag "{open_tags[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _close_end_tag(source: str, lt: int, offset: int, anything_open: bool) -> int:
    """The position of the ``>`` closing the end tag at ``lt``."""
    if not anything_open:
        raise _cant_parse(f"Unexpected end tag at byte offset {offset}")
    gt = source.find(">", lt)
    if gt < 0 or any(c.isspace() for c in source[lt + 2 : gt].strip()):
        raise _cant_parse(f"Unclosed end tag at byte offset {offset}")
    return gt


def _entity_for(name: str, attributes: dict[str, str], offset: int, at: int) -> JsonDict | None:
    if name in _SIMPLE_TAGS:
        kind = _SIMPLE_TAGS[name]
        if name == "blockquote" and "expandable" in attributes:
            kind = "expandable_blockquote"
        return {"offset": offset, "length": 0, "type": kind}
    if name == "a":
        href = attributes.get("href", "")
        if href.startswith("tg://user?id="):
            user_id = int(href.removeprefix("tg://user?id=") or 0)
            user = {"id": user_id, "is_bot": False, "first_name": ""}
            return {"offset": offset, "length": 0, "type": "text_mention", "user": user}
        if not href:
            return None
        return {"offset": offset, "length": 0, "type": "text_link", "url": href}
    if name == "span":
        if attributes.get("class") != "tg-spoiler":
            raise _cant_parse(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
        return {"offset": offset, "length": 0, "type": "spoiler"}
    emoji_id = attributes.get("emoji-id", "")
    return {"offset": offset, "length": 0, "type": "custom_emoji", "custom_emoji_id": emoji_id}


def _cant_parse(reason: str) -> Exception:
    return bad_request(f"can't parse entities: {reason}")


def format_text(
    text: str | None,
    parse_mode: str | None,
    entities: Any,
    *,
    caption: bool = False,
) -> tuple[str, list[JsonDict]]:
    """The text Telegram stores and its entities; 400 when empty (for texts) or too long."""
    text = text or ""
    parsed_entities: list[JsonDict] = list(entities) if isinstance(entities, list) else []
    if parse_mode and parse_mode.lower() == "html" and not parsed_entities:
        text, parsed_entities = parse_html(text)
    limit = MAX_CAPTION if caption else MAX_TEXT
    if caption:
        if utf16_len(text) > limit:
            raise bad_request("message caption is too long")
    else:
        if not text.strip():
            raise bad_request("message text is empty")
        if utf16_len(text) > limit:
            raise bad_request("message is too long")
    return text, parsed_entities


def check_reply_markup(markup: Any) -> JsonDict | None:
    """Validate a reply markup; return it when Telegram keeps it on the message (inline)."""
    if markup is None or markup == "":
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        return None  # reply keyboards are shown to users but not echoed in the Message
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(
            "can't parse inline keyboard button: "
            'field "inline_keyboard" must be an Array of Arrays'
        )
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                raise bad_request("can't parse inline keyboard button: Text must be non-empty")
            actions = [name for name in _INLINE_BUTTON_ACTIONS if name in button]
            if not actions:
                raise bad_request(
                    "can't parse inline keyboard button: "
                    "Text buttons are unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
                raise bad_request("BUTTON_DATA_INVALID")
    return markup


def first_callback_data(markup: JsonDict | None) -> str | None:
    for row in (markup or {}).get("inline_keyboard", []):
        for button in row:
            if "callback_data" in button:
                return str(button["callback_data"])
    return None
