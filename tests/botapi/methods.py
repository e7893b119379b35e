"""The Bot API methods of the local server, each checked the way Telegram checks it.

:class:`BotMethods` runs one call against a :class:`~tests.botapi.world.World` (under its
lock) and returns the ``result`` or raises :class:`~tests.botapi.model.ApiError`. Sends
and edits pass the flood limiter just before they take effect, so a refused or failed call
uses no slot. ``getUpdates`` is served by the server itself (it waits).
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tests.botapi.formatting import check_reply_markup, format_text, utf16_len
from tests.botapi.limits import FloodLimiter
from tests.botapi.model import (
    DEFAULT_UPDATE_TYPES,
    NOT_MODIFIED,
    PERMISSIONS,
    QUERY_TOO_OLD,
    CallbackAnswer,
    ChatState,
    InviteLinkState,
    JsonDict,
    MemberState,
    MessageState,
    Reaction,
    bad_request,
    forbidden,
    restricted_permissions,
    too_many_requests,
    user_dict,
)
from tests.botapi.params import Described, Params, UploadedFile
from tests.botapi.world import JOIN_REQUEST_DM_WINDOW, World

CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


Handler = Callable[["BotMethods", Params], Any]
_REGISTRY: dict[str, tuple[str, Handler | None]] = {"getupdates": ("getUpdates", None)}


H = TypeVar("H", bound=Handler)


def api_method(name: str) -> Callable[[H], H]:
    def register(fn: H) -> H:
        _REGISTRY[name.lower()] = (name, fn)
        return fn

    return register


def canonical_method(name: str) -> str | None:
    """The method's proper name (Telegram matches names case-insensitively)."""
    entry = _REGISTRY.get(name.lower())
    return entry[0] if entry else None


class BotMethods:
    def __init__(self, world: World, limiter: FloodLimiter) -> None:
        self.w = world
        self.limiter = limiter
        self._file_ids: dict[str, tuple[str, str]] = {}  # source -> (file_id, unique_id)

    def call(self, method: str, raw: JsonDict) -> Any:
        """Run ``method`` (a canonical name, not getUpdates); the caller holds the lock."""
        entry = _REGISTRY[method.lower()]
        handler = entry[1]
        assert handler is not None, "getUpdates is served by the server"
        return handler(self, Params(raw))

    # ------------------------------------------------------------ chat access

    def _chat(self, p: Params, *, write: bool) -> ChatState:
        """The target chat, or Telegram's error for it. ``write``: the bot posts into it."""
        value = p.get("chat_id")
        if value is None:
            raise bad_request("chat_id is empty")
        try:
            chat = self.w._chats.get(int(value))
        except (TypeError, ValueError):
            chat = None
        if chat is None:
            raise bad_request("chat not found")
        if chat.migrated_to is not None:
            raise bad_request(
                "group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrated_to},
            )
        if chat.is_group:
            kind = chat.type
            if chat.bot.status == "kicked":
                raise forbidden(f"bot was kicked from the {kind} chat")
            if not chat.bot.present:
                raise forbidden(f"bot is not a member of the {kind} chat")
        elif write:
            assert chat.user_id is not None
            user = self.w._users[chat.user_id]
            if user.blocked:
                raise forbidden("bot was blocked by the user")
            recent_request = (
                user.join_request_at is not None
                and time.perf_counter() - user.join_request_at < JOIN_REQUEST_DM_WINDOW
            )
            if not user.started and not recent_request:
                raise forbidden("bot can't initiate conversation with a user")
        return chat

    def _group_chat(self, p: Params, private_error: str) -> ChatState:
        chat = self._chat(p, write=False)
        if not chat.is_group:
            raise bad_request(private_error)
        return chat

    @staticmethod
    def _has_right(chat: ChatState, right: str) -> bool:
        if chat.bot.status == "creator":
            return True
        return chat.bot.status == "administrator" and chat.bot.rights.get(right, False)

    @staticmethod
    def _has_permission(chat: ChatState, permission: str) -> bool:
        """A member's permission (admins always have it) in a group; private chats: yes."""
        bot = chat.bot
        if not chat.is_group or bot.status in ("creator", "administrator"):
            return True
        allowed = chat.permissions.get(permission, False)
        if bot.status == "restricted":
            allowed = allowed and bot.rights.get(permission, False)
        return allowed

    def _user_id(self, p: Params) -> int:
        user_id = p.required_int("user_id", "invalid user_id specified")
        if user_id != self.w._bot.id and user_id not in self.w._users:
            raise bad_request("user not found")
        return user_id

    def _flood(self, chat: ChatState) -> None:
        now = time.perf_counter()
        wait = self.limiter.retry_after(chat.id, chat.is_group, now)
        if wait is not None:
            raise too_many_requests(wait)
        self.limiter.record(chat.id, chat.is_group, now)

    # ------------------------------------------------------------ bot, updates, commands

    @api_method("getMe")
    def get_me(self, p: Params) -> JsonDict:
        return self.w.bot_user

    @api_method("setWebhook")
    def set_webhook(self, p: Params) -> Described:
        url = p.text("url") or ""
        if not url:
            return self.delete_webhook(p)
        if not url.startswith(("http://", "https://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.text("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
        hook = self.w.webhook
        already = hook.url == url
        if p.flag("drop_pending_updates"):
            self.w._updates.clear()
        self.w._set_allowed_updates(p.obj("allowed_updates"))
        hook.url, hook.secret_token = url, secret
        hook.max_connections = p.integer("max_connections") or 40
        hook.last_error_date = hook.last_error_message = None
        self.w._updates_changed()
        return Described(True, "Webhook is already set" if already else "Webhook was set")

    @api_method("deleteWebhook")
    def delete_webhook(self, p: Params) -> Described:
        hook = self.w.webhook
        was_set = bool(hook.url)
        if p.flag("drop_pending_updates"):
            self.w._updates.clear()
        hook.url, hook.secret_token = "", None
        hook.last_error_date = hook.last_error_message = None
        self.w._updates_changed()
        return Described(True, "Webhook was deleted" if was_set else "Webhook is already deleted")

    @api_method("getWebhookInfo")
    def get_webhook_info(self, p: Params) -> JsonDict:
        hook = self.w.webhook
        info: JsonDict = {
            "url": hook.url,
            "has_custom_certificate": False,
            "pending_update_count": len(self.w._updates),
        }
        if hook.url:
            info["max_connections"] = hook.max_connections
            info["ip_address"] = "127.0.0.1"
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
        if self.w._allowed != DEFAULT_UPDATE_TYPES:
            info["allowed_updates"] = sorted(self.w._allowed)
        return info

    @staticmethod
    def _commands_key(p: Params) -> tuple[str, str]:
        scope = p.obj("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True, separators=(",", ":")), p.text(
            "language_code"
        ) or ""

    @api_method("setMyCommands")
    def set_my_commands(self, p: Params) -> bool:
        commands = p.obj("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND.fullmatch(str(command.get("command"))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description") or "")) <= 256:
                raise bad_request("command description must be non-empty")
        key = self._commands_key(p)
        if commands:
            self.w._commands[key] = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        else:
            self.w._commands.pop(key, None)
        return True

    @api_method("getMyCommands")
    def get_my_commands(self, p: Params) -> list[JsonDict]:
        return copy.deepcopy(self.w._commands.get(self._commands_key(p), []))

    @api_method("deleteMyCommands")
    def delete_my_commands(self, p: Params) -> bool:
        self.w._commands.pop(self._commands_key(p), None)
        return True

    # ------------------------------------------------------------ sending

    def _send_target(self, p: Params, permission: str, what: str) -> ChatState:
        chat = self._chat(p, write=True)
        if not self._has_permission(chat, permission):
            raise bad_request(f"not enough rights to send {what} to the chat")
        return chat

    def _deliver(
        self, chat: ChatState, p: Params, content: JsonDict, media_source: str | None = None
    ) -> JsonDict:
        markup = check_reply_markup(p.obj("reply_markup"))
        reply_to = self._replied(chat, p)
        self._flood(chat)
        if reply_to is not None:
            content["reply_to_message"] = reply_to
        if markup is not None:
            content["reply_markup"] = markup
        message = self.w._store_message(
            chat, user_dict(self.w._bot), content, from_bot=True, media_source=media_source
        )
        return copy.deepcopy(message)

    def _replied(self, chat: ChatState, p: Params) -> JsonDict | None:
        reply = p.obj("reply_parameters")
        if isinstance(reply, dict):
            message_id, lenient = (
                reply.get("message_id"),
                bool(reply.get("allow_sending_without_reply")),
            )
        else:
            message_id, lenient = (
                p.integer("reply_to_message_id"),
                p.flag("allow_sending_without_reply"),
            )
        if message_id is None:
            return None
        state = chat.messages.get(int(message_id))
        if state is None or state.deleted:
            if lenient:
                return None
            raise bad_request("message to be replied not found")
        replied = copy.deepcopy(state.message)
        replied.pop("reply_to_message", None)
        return replied

    @api_method("sendMessage")
    def send_message(self, p: Params) -> JsonDict:
        chat = self._send_target(p, "can_send_messages", "text messages")
        text, entities = format_text(p.text("text"), p.text("parse_mode"), p.obj("entities"))
        content: JsonDict = {"text": text}
        if entities:
            content["entities"] = entities
        return self._deliver(chat, p, content)

    def _file(self, p: Params, field: str, prefix: str) -> tuple[str, str, str]:
        """(file_id, file_unique_id, what it was sent as) for a media parameter."""
        value = p.get(field)
        if isinstance(value, str) and value.startswith("attach://"):
            value = p.get(value.removeprefix("attach://"))
        if isinstance(value, UploadedFile):
            source = f"upload:{value.filename}"
            ids = (prefix + secrets.token_urlsafe(24), "AQAD" + secrets.token_urlsafe(9))
            return ids[0], ids[1], source
        if not isinstance(value, str):
            raise bad_request(f"there is no {field} in the request")
        if value in self.w._user_files:  # a photo a user sent
            return value, self.w._user_files[value], value
        for file_id, unique_id in self._file_ids.values():
            if value == file_id:  # a file_id this server handed out
                return file_id, unique_id, value
        if value not in self._file_ids:
            self._file_ids[value] = (
                prefix + secrets.token_urlsafe(24),
                "AQAD" + secrets.token_urlsafe(9),
            )
        file_id, unique_id = self._file_ids[value]
        return file_id, unique_id, value

    def _send_media(
        self, p: Params, field: str, permission: str, what: str, prefix: str
    ) -> JsonDict:
        chat = self._send_target(p, permission, what)
        file_id, unique_id, source = self._file(p, field, prefix)
        caption, entities = format_text(
            p.text("caption"), p.text("parse_mode"), p.obj("caption_entities"), caption=True
        )
        name = source.rsplit("/", 1)[-1].removeprefix("upload:") or "file"
        video = {"width": 1280, "height": 720, "duration": p.integer("duration") or 10}
        media: dict[str, Any] = {
            "photo": [
                {
                    "file_id": file_id + "-s",
                    "file_unique_id": unique_id + "s",
                    "width": 320,
                    "height": 180,
                },
                {"file_id": file_id, "file_unique_id": unique_id, "width": 1280, "height": 720},
            ],
            "video": {
                "file_id": file_id,
                "file_unique_id": unique_id,
                **video,
                "mime_type": "video/mp4",
            },
            "document": {"file_id": file_id, "file_unique_id": unique_id, "file_name": name},
            "animation": {
                "file_id": file_id,
                "file_unique_id": unique_id,
                **video,
                "mime_type": "video/mp4",
            },
        }
        content: JsonDict = {field: media[field]}
        if field == "animation":
            content["document"] = {**media["document"], "mime_type": "video/mp4"}
        if caption:
            content["caption"] = caption
        if entities:
            content["caption_entities"] = entities
        return self._deliver(chat, p, content, media_source=source)

    @api_method("sendPhoto")
    def send_photo(self, p: Params) -> JsonDict:
        return self._send_media(p, "photo", "can_send_photos", "photos", "AgACAgIAAxkBAA")

    @api_method("sendVideo")
    def send_video(self, p: Params) -> JsonDict:
        return self._send_media(p, "video", "can_send_videos", "videos", "BAACAgIAAxkBAA")

    @api_method("sendDocument")
    def send_document(self, p: Params) -> JsonDict:
        return self._send_media(p, "document", "can_send_documents", "documents", "BQACAgIAAxkBAA")

    @api_method("sendAnimation")
    def send_animation(self, p: Params) -> JsonDict:
        return self._send_media(
            p, "animation", "can_send_other_messages", "animations", "CgACAgIAAxkBAA"
        )

    @api_method("sendChatAction")
    def send_chat_action(self, p: Params) -> bool:
        self._chat(p, write=True)
        if (p.text("action") or "") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    # ------------------------------------------------------------ editing

    def _own_message(
        self, p: Params, not_found: str, *, write: bool
    ) -> tuple[ChatState, MessageState]:
        if p.get("inline_message_id") is not None:
            raise bad_request("MESSAGE_ID_INVALID")
        chat = self._chat(p, write=write)
        message_id = p.required_int("message_id", "message identifier is not specified")
        state = chat.messages.get(message_id)
        if state is None or state.deleted:
            raise bad_request(not_found)
        return chat, state

    def _edit(self, p: Params, changes: JsonDict) -> JsonDict:
        """Apply ``changes`` (a None value removes the field) to the bot's own message."""
        chat, state = self._own_message(p, "message to edit not found", write=True)
        if not state.from_bot:
            raise bad_request("message can't be edited")
        if "text" in changes and "text" not in state.message:
            raise bad_request("there is no text in the message to edit")
        if "caption" in changes and "text" in state.message:
            raise bad_request("there is no caption in the message to edit")
        changes["reply_markup"] = check_reply_markup(p.obj("reply_markup"))
        current = state.message
        edited = {**current, **changes}
        for name, value in changes.items():
            if value is None or value == []:
                edited.pop(name)
        if all(
            edited.get(k) == current.get(k)
            for k in ("text", "entities", "caption", "caption_entities", "reply_markup")
        ):
            raise bad_request(NOT_MODIFIED)
        self._flood(chat)
        edited["edit_date"] = self.w._now()
        state.message = edited
        state.edited += 1
        return copy.deepcopy(edited)

    @api_method("editMessageText")
    def edit_message_text(self, p: Params) -> JsonDict:
        text, entities = format_text(p.text("text"), p.text("parse_mode"), p.obj("entities"))
        return self._edit(p, {"text": text, "entities": entities})

    @api_method("editMessageCaption")
    def edit_message_caption(self, p: Params) -> JsonDict:
        caption, entities = format_text(
            p.text("caption"), p.text("parse_mode"), p.obj("caption_entities"), caption=True
        )
        return self._edit(p, {"caption": caption or None, "caption_entities": entities})

    @api_method("editMessageReplyMarkup")
    def edit_message_reply_markup(self, p: Params) -> JsonDict:
        return self._edit(p, {})

    @api_method("deleteMessage")
    def delete_message(self, p: Params) -> bool:
        chat, state = self._own_message(p, "message to delete not found", write=False)
        if (
            chat.is_group
            and not state.from_bot
            and not self._has_right(chat, "can_delete_messages")
        ):
            raise bad_request("message can't be deleted")
        state.deleted = True
        return True

    @api_method("pinChatMessage")
    def pin_chat_message(self, p: Params) -> bool:
        chat, state = self._own_message(p, "message to pin not found", write=True)
        if not self._has_right(chat, "can_pin_messages") and not (
            chat.bot.status in ("member", "restricted")
            and self._has_permission(chat, "can_pin_messages")
        ):
            raise bad_request("not enough rights to pin a message")
        state.pinned = True
        return True

    @api_method("unpinChatMessage")
    def unpin_chat_message(self, p: Params) -> bool:
        chat = self._chat(p, write=True)
        if not self._has_right(chat, "can_pin_messages") and not (
            chat.bot.status in ("member", "restricted")
            and self._has_permission(chat, "can_pin_messages")
        ):
            raise bad_request("not enough rights to manage pinned messages in the chat")
        message_id = p.integer("message_id")
        if message_id is None:
            pinned = [state for _, state in sorted(chat.messages.items()) if state.pinned]
            if pinned:
                pinned[-1].pinned = False
            return True
        state = chat.messages.get(message_id)
        if state is None or state.deleted:
            raise bad_request("message to unpin not found")
        state.pinned = False
        return True

    @api_method("setMessageReaction")
    def set_message_reaction(self, p: Params) -> bool:
        chat, state = self._own_message(p, "message to react not found", write=False)
        reaction = p.obj("reaction") or []
        if not isinstance(reaction, list):
            raise bad_request("can't parse reaction types JSON object")
        self.w._reactions.append(Reaction(chat.id, state.message["message_id"], reaction))
        return True

    @api_method("answerCallbackQuery")
    def answer_callback_query(self, p: Params) -> bool:
        query = self.w._callbacks.get(p.text("callback_query_id") or "")
        now = time.perf_counter()
        if query is None or query.answered or now - query.created > self.w.callback_timeout:
            raise bad_request(QUERY_TOO_OLD)
        text = p.text("text")
        if text is not None and utf16_len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        query.answered = True
        self.w._callback_answers[query.id] = CallbackAnswer(text, p.flag("show_alert"), now)
        return True

    # ------------------------------------------------------------ chats and members

    @api_method("getChat")
    def get_chat(self, p: Params) -> JsonDict:
        chat = self._chat(p, write=False)
        info: JsonDict = {
            **self.w._chat_dict(chat),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }
        if chat.is_group:
            info["permissions"] = dict(chat.permissions)
            if chat.slow_mode_delay:
                info["slow_mode_delay"] = chat.slow_mode_delay
        return info

    @api_method("getChatMember")
    def get_chat_member(self, p: Params) -> JsonDict:
        chat = self._chat(p, write=False)
        user_id = self._user_id(p)
        if not chat.is_group and user_id == chat.user_id:
            return self.w._member_dict(chat, MemberState(user_id, "member"))
        return self.w._member_dict(chat, self.w._member(chat, user_id))

    @api_method("getChatAdministrators")
    def get_chat_administrators(self, p: Params) -> list[JsonDict]:
        chat = self._group_chat(p, "there are no administrators in the private chat")
        members = [*chat.members.values(), chat.bot]
        admins = [m for m in members if m.status == "creator"]
        admins += [m for m in members if m.status == "administrator"]
        return [self.w._member_dict(chat, m) for m in admins]

    @api_method("getChatMemberCount")
    def get_chat_member_count(self, p: Params) -> int:
        chat = self._chat(p, write=False)
        if not chat.is_group:
            return 2
        return sum(m.present for m in chat.members.values()) + int(chat.bot.present)

    @api_method("leaveChat")
    def leave_chat(self, p: Params) -> bool:
        chat = self._group_chat(p, "chat member status can't be changed in private chats")
        old, chat.bot = chat.bot, MemberState(self.w._bot.id, "left")
        bot = user_dict(self.w._bot)
        self.w._chat_member_update("my_chat_member", chat, bot, old, chat.bot)
        return True

    @api_method("setChatPermissions")
    def set_chat_permissions(self, p: Params) -> bool:
        chat = self._group_chat(p, "can't change private chat permissions")
        if not self._has_right(chat, "can_restrict_members"):
            raise bad_request("not enough rights to change chat permissions")
        permissions = p.obj("permissions")
        if not isinstance(permissions, dict):
            raise bad_request("can't parse permissions JSON object")
        chat.permissions = restricted_permissions(permissions)
        return True

    @api_method("restrictChatMember")
    def restrict_chat_member(self, p: Params) -> bool:
        chat = self._chat(p, write=False)
        if chat.type != "supergroup":
            raise bad_request("method is available for supergroup and channel chats only")
        if not self._has_right(chat, "can_restrict_members"):
            raise bad_request("not enough rights to restrict/unrestrict chat member")
        user_id = self._user_id(p)
        if user_id == self.w._bot.id:
            raise bad_request("can't restrict self")
        old = self.w._member(chat, user_id)
        if old.status == "creator":
            raise bad_request("can't remove chat owner")
        if old.status == "administrator":
            raise bad_request("user is an administrator of the chat")
        permissions = p.obj("permissions")
        if not isinstance(permissions, dict):
            raise bad_request("can't parse permissions JSON object")
        granted = restricted_permissions(permissions)
        if all(granted[name] for name in PERMISSIONS):
            new = MemberState(user_id, "member" if old.present else "left")
        else:
            until = p.integer("until_date") or 0
            new = MemberState(user_id, "restricted", granted, until, is_member=old.present)
        new.invite_link = old.invite_link
        chat.members[user_id] = new
        bot = user_dict(self.w._bot)
        self.w._chat_member_update("chat_member", chat, bot, old, new)
        return True

    def _removable(self, p: Params, what: str) -> tuple[ChatState, int, MemberState]:
        """The chat and the member a ban or an unban is about, with Telegram's errors."""
        chat = self._group_chat(p, "can't remove members from a private chat")
        if not self._has_right(chat, "can_restrict_members"):
            raise bad_request(f"not enough rights to {what} chat member")
        user_id = self._user_id(p)
        if user_id == self.w._bot.id:
            raise bad_request("can't remove self")
        old = self.w._member(chat, user_id)
        if old.status == "creator":
            raise bad_request("can't remove chat owner")
        if old.status == "administrator":
            raise bad_request("user is an administrator of the chat")
        return chat, user_id, old

    @api_method("banChatMember")
    def ban_chat_member(self, p: Params) -> bool:
        """Out of the group and banned (``until_date`` 0: for good); a ``chat_member``
        update from the bot says so."""
        chat, user_id, old = self._removable(p, "restrict/unrestrict")
        if old.status == "kicked":
            return True
        new = MemberState(user_id, "kicked", until_date=p.integer("until_date") or 0)
        chat.members[user_id] = new
        self.w._chat_member_update("chat_member", chat, user_dict(self.w._bot), old, new)
        return True

    @api_method("unbanChatMember")
    def unban_chat_member(self, p: Params) -> bool:
        """Lifts a ban: the user may join again. Without ``only_if_banned`` a member who
        is in the chat is removed from it too (Telegram guarantees the user is not a
        member after the call); with it, anyone not banned is left alone."""
        chat, user_id, old = self._removable(p, "restrict/unrestrict")
        if old.status != "kicked" and (p.flag("only_if_banned") or not old.present):
            return True
        new = MemberState(user_id, "left")
        chat.members[user_id] = new
        self.w._chat_member_update("chat_member", chat, user_dict(self.w._bot), old, new)
        return True

    # ------------------------------------------------------------ invite links, join requests

    @api_method("createChatInviteLink")
    def create_chat_invite_link(self, p: Params) -> JsonDict:
        chat = self._group_chat(p, "can't invite members to a private chat")
        if not self._has_right(chat, "can_invite_users"):
            raise bad_request("not enough rights to manage chat invite link")
        member_limit = p.integer("member_limit")
        creates_join_request = p.flag("creates_join_request")
        if creates_join_request and member_limit:
            raise bad_request(
                "member limit can't be specified for links requiring administrator approval"
            )
        if member_limit is not None and not 1 <= member_limit <= 99999:
            raise bad_request("USAGE_LIMIT_INVALID")
        expire_date = p.integer("expire_date")
        if expire_date is not None and expire_date <= self.w._now():
            raise bad_request("EXPIRE_DATE_INVALID")
        name = p.text("name")
        if name is not None and len(name) > 32:
            raise bad_request("invite link name must not exceed 32 characters")
        link = InviteLinkState(
            "https://t.me/+" + secrets.token_urlsafe(12),
            chat.id,
            self.w._bot.id,
            name=name,
            expire_date=expire_date,
            member_limit=member_limit,
            creates_join_request=creates_join_request,
        )
        self.w._links[link.invite_link] = link
        return self.w._link_dict(link)

    @api_method("revokeChatInviteLink")
    def revoke_chat_invite_link(self, p: Params) -> JsonDict:
        chat = self._group_chat(p, "can't invite members to a private chat")
        if not self._has_right(chat, "can_invite_users"):
            raise bad_request("not enough rights to manage chat invite link")
        link = self.w._links.get(p.text("invite_link") or "")
        if link is None or link.chat_id != chat.id:
            raise bad_request("INVITE_HASH_EXPIRED")
        link.is_revoked = True
        return self.w._link_dict(link)

    def _join_request(self, p: Params) -> tuple[ChatState, int]:
        chat = self._group_chat(p, "the chat can't have join requests")
        if not self._has_right(chat, "can_invite_users"):
            raise bad_request("not enough rights to manage chat join requests")
        return chat, self._user_id(p)

    @api_method("approveChatJoinRequest")
    def approve_chat_join_request(self, p: Params) -> bool:
        chat, user_id = self._join_request(p)
        if self.w._member(chat, user_id).present:
            raise bad_request("USER_ALREADY_PARTICIPANT")
        request = self.w._join_requests.get((chat.id, user_id))
        if request is None or request.status != "pending":
            raise bad_request("HIDE_REQUESTER_MISSING")
        request.status = "approved"
        link = self.w._links.get(request.invite_link or "")
        bot = user_dict(self.w._bot)
        self.w._admit(chat, self.w._users[user_id], link, actor=bot, via_join_request=True)
        return True

    @api_method("declineChatJoinRequest")
    def decline_chat_join_request(self, p: Params) -> bool:
        chat, user_id = self._join_request(p)
        request = self.w._join_requests.get((chat.id, user_id))
        if request is None or request.status != "pending":
            raise bad_request("HIDE_REQUESTER_MISSING")
        request.status = "declined"
        return True
