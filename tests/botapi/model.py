"""The state of the local Bot API server and the Telegram JSON shapes built from it.

Small dataclasses hold the world (users, chats, members, messages, invite links, join
requests, callback queries); the functions below turn them into the dicts Telegram sends
(``User``, ``Chat``, ``ChatMember``, ``ChatInviteLink``). :class:`ApiError` is a Bot API
error response: ``error_code``, ``description`` worded as Telegram words it, and the
optional ``parameters`` (``retry_after``, ``migrate_to_chat_id``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

JsonDict = dict[str, Any]

# ---------------------------------------------------------------- errors


class ApiError(Exception):
    """A Bot API error response (``{"ok": false, ...}``)."""

    def __init__(self, code: int, description: str, parameters: JsonDict | None = None) -> None:
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> JsonDict:
        body: JsonDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(text: str, parameters: JsonDict | None = None) -> ApiError:
    return ApiError(400, f"Bad Request: {text}", parameters)


def forbidden(text: str) -> ApiError:
    return ApiError(403, f"Forbidden: {text}")


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


def method_not_found() -> ApiError:
    return ApiError(404, "Not Found: method not found")


def webhook_active() -> ApiError:
    return ApiError(
        409,
        "Conflict: can't use getUpdates method while webhook is active; "
        "use deleteWebhook to delete the webhook first",
    )


def poll_terminated() -> ApiError:
    return ApiError(
        409,
        "Conflict: terminated by other getUpdates request; "
        "make sure that only one bot instance is running",
    )


NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


# ---------------------------------------------------------------- update types

ALL_UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)
# Delivered only to a bot that lists them in allowed_updates.
OPT_IN_UPDATE_TYPES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
DEFAULT_UPDATE_TYPES = frozenset(ALL_UPDATE_TYPES) - OPT_IN_UPDATE_TYPES

# ---------------------------------------------------------------- rights

ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
    "can_send_welcome_messages",
    "can_pin_messages",
    "can_manage_topics",
)
PERMISSIONS = (
    "can_send_messages",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_react_to_messages",
    "can_edit_tag",
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_manage_topics",
)
# What a new group lets its members do.
DEFAULT_PERMISSIONS = {
    name: name not in ("can_manage_topics", "can_edit_tag") for name in PERMISSIONS
}
MEMBER_STATUSES = ("creator", "administrator", "member", "restricted", "left", "kicked")
# The account Telegram shows as the sender of anonymous admin actions.
GROUP_ANONYMOUS_BOT = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}


def admin_rights(overrides: dict[str, bool] | None = None) -> dict[str, bool]:
    """Every administrator right granted, except those ``overrides`` switch off."""
    rights = dict.fromkeys(ADMIN_RIGHTS, True)
    for name, value in (overrides or {}).items():
        if name not in ADMIN_RIGHTS:
            raise ValueError(f"unknown administrator right {name!r}")
        rights[name] = bool(value)
    return rights


def restricted_permissions(overrides: dict[str, bool] | None = None) -> dict[str, bool]:
    """Every permission refused, except those ``overrides`` grant (Telegram's absent=False)."""
    perms = dict.fromkeys(PERMISSIONS, False)
    for name, value in (overrides or {}).items():
        if name in perms:
            perms[name] = bool(value)
    return perms


# ---------------------------------------------------------------- state


@dataclass
class UserState:
    id: int
    first_name: str
    username: str | None = None
    language_code: str | None = "en"
    is_bot: bool = False
    started: bool = False
    blocked: bool = False
    # perf_counter of the user's latest chat_join_request: it opens a 5 minute window in
    # which the bot may write to the user first.
    join_request_at: float | None = None


@dataclass
class MemberState:
    user_id: int
    status: str
    # Administrator rights (status "administrator") or permissions (status "restricted").
    rights: dict[str, bool] = field(default_factory=dict)
    until_date: int = 0
    is_member: bool = True  # for "restricted": still in the chat
    invite_link: str | None = None  # the link the member joined by, if any

    @property
    def present(self) -> bool:
        """In the chat (counted as a member)."""
        if self.status == "restricted":
            return self.is_member
        return self.status in ("creator", "administrator", "member")


@dataclass
class MessageState:
    message: JsonDict  # the Message object as the bot last saw it
    from_bot: bool
    edited: int = 0
    deleted: bool = False
    pinned: bool = False
    media_source: str | None = None  # the URL, file_id or upload the media was sent as


@dataclass
class ChatState:
    id: int
    type: str  # "private" | "group" | "supergroup"
    bot: MemberState
    title: str | None = None
    user_id: int | None = None  # private chats: the user
    members: dict[int, MemberState] = field(default_factory=dict)
    permissions: dict[str, bool] = field(default_factory=lambda: dict(DEFAULT_PERMISSIONS))
    slow_mode_delay: int | None = None
    migrated_to: int | None = None
    last_message_id: int = 0
    messages: dict[int, MessageState] = field(default_factory=dict)

    @property
    def is_group(self) -> bool:
        return self.type in ("group", "supergroup")


@dataclass
class InviteLinkState:
    invite_link: str
    chat_id: int
    creator_id: int
    name: str | None = None
    expire_date: int | None = None
    member_limit: int | None = None
    creates_join_request: bool = False
    is_primary: bool = False
    is_revoked: bool = False
    joined: list[int] = field(default_factory=list)  # users who joined by it


@dataclass
class JoinRequestState:
    chat_id: int
    user_id: int
    invite_link: str | None
    date: int
    at: float  # perf_counter
    status: str = "pending"  # "pending" | "approved" | "declined"


@dataclass
class CallbackQueryState:
    id: str
    user_id: int
    chat_id: int
    message_id: int
    data: str | None
    created: float  # perf_counter
    answered: bool = False


@dataclass(frozen=True)
class Call:
    """One request the server answered (``at`` is ``time.perf_counter()``)."""

    method: str
    params: JsonDict
    ok: bool
    result: Any
    error_code: int | None
    description: str | None
    at: float
    chat_id: int | None
    via: str = "request"
    """``request`` (the bot's own HTTP request) or ``webhook reply`` (the method call in
    a webhook's answer, which Telegram makes for the bot)."""


class CallbackAnswer(NamedTuple):
    text: str | None
    show_alert: bool
    at: float  # perf_counter


class Reaction(NamedTuple):
    chat_id: int
    message_id: int
    reaction: list[JsonDict]


# ---------------------------------------------------------------- shapes


def user_dict(user: UserState) -> JsonDict:
    shape: JsonDict = {"id": user.id, "is_bot": user.is_bot, "first_name": user.first_name}
    if user.username:
        shape["username"] = user.username
    if user.language_code and not user.is_bot:
        shape["language_code"] = user.language_code
    return shape


def chat_dict(chat: ChatState, user: UserState | None = None) -> JsonDict:
    """The short ``Chat`` object carried by messages and updates."""
    if chat.type == "private":
        assert user is not None
        shape: JsonDict = {"id": chat.id, "type": "private", "first_name": user.first_name}
        if user.username:
            shape["username"] = user.username
        return shape
    return {"id": chat.id, "type": chat.type, "title": chat.title}


def member_dict(member: MemberState, user: JsonDict, *, can_be_edited: bool = False) -> JsonDict:
    shape: JsonDict = {"status": member.status, "user": user}
    if member.status == "creator":
        shape["is_anonymous"] = False
    elif member.status == "administrator":
        shape["can_be_edited"] = can_be_edited
        shape["is_anonymous"] = False
        shape.update(admin_rights(member.rights))
    elif member.status == "restricted":
        shape["is_member"] = member.is_member
        shape.update(restricted_permissions(member.rights))
        shape["until_date"] = member.until_date
    elif member.status == "kicked":
        shape["until_date"] = member.until_date
    return shape


def invite_link_dict(link: InviteLinkState, creator: JsonDict) -> JsonDict:
    shape: JsonDict = {
        "invite_link": link.invite_link,
        "creator": creator,
        "creates_join_request": link.creates_join_request,
        "is_primary": link.is_primary,
        "is_revoked": link.is_revoked,
    }
    if link.name:
        shape["name"] = link.name
    if link.expire_date is not None:
        shape["expire_date"] = link.expire_date
    if link.member_limit is not None:
        shape["member_limit"] = link.member_limit
    return shape
