"""The simulated Telegram world behind the local Bot API server, and how tests drive it.

:class:`World` holds users, chats, members, messages, invite links, join requests and the
update queue. Its public methods are the test's side of Telegram: set the world up
(``add_user``, ``add_group``, ``set_bot_rights``, ``migrate`` ...), make people act
(``start_bot``, ``join``, ``say``, ``tap``, ``request_join`` ...) and look at what the bot
did (``calls``, ``messages``, ``callback_answers`` ...). Every action builds the Update a
real Telegram would send, enqueues it (if ``allowed_updates`` lets it through, as Telegram
filters when an update is created) and returns it, so a test can also feed it straight to
a dispatcher.

All state sits behind one re-entrant lock: the server may run in another thread.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast

from bot.clock import SystemClock
from funnels.kernel.clock import Clock
from tests.botapi.formatting import first_callback_data
from tests.botapi.model import (
    ALL_UPDATE_TYPES,
    DEFAULT_UPDATE_TYPES,
    GROUP_ANONYMOUS_BOT,
    MEMBER_STATUSES,
    Call,
    CallbackAnswer,
    CallbackQueryState,
    ChatState,
    InviteLinkState,
    JoinRequestState,
    JsonDict,
    MemberState,
    MessageState,
    Reaction,
    UserState,
    admin_rights,
    chat_dict,
    invite_link_dict,
    member_dict,
    restricted_permissions,
    user_dict,
)

F = TypeVar("F", bound=Callable[..., Any])

# How long after a chat_join_request the bot may write to the user first (Telegram: 5 min).
JOIN_REQUEST_DM_WINDOW = 300.0


def locked(fn: F) -> F:
    """Run a method under the world's lock."""

    @functools.wraps(fn)
    def wrapper(self: World, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return fn(self, *args, **kwargs)

    return cast(F, wrapper)


@dataclass
class WebhookState:
    url: str = ""
    secret_token: str | None = None
    max_connections: int = 40
    last_error_date: int | None = None
    last_error_message: str | None = None


class World:
    def __init__(
        self,
        token: str,
        *,
        callback_timeout: float = 15.0,
        clock: Clock | None = None,
        allowed_updates: Iterable[str] | None = None,
        bot_name: str = "Test Bot",
        bot_username: str = "test_bot",
    ) -> None:
        bot_id, sep, secret = token.partition(":")
        if not (sep and secret and bot_id.isdigit()):
            raise ValueError(f"a bot token looks like '<bot id>:<secret>', not {token!r}")
        self.token = token
        self.callback_timeout = callback_timeout
        self._lock = threading.RLock()
        self._clock: Clock = clock or SystemClock()
        self._bot = UserState(
            int(bot_id), bot_name, username=bot_username, language_code=None, is_bot=True
        )
        self._users: dict[int, UserState] = {}
        self._chats: dict[int, ChatState] = {}
        self._links: dict[str, InviteLinkState] = {}
        self._join_requests: dict[tuple[int, int], JoinRequestState] = {}
        self._callbacks: dict[str, CallbackQueryState] = {}
        self._callback_answers: dict[str, CallbackAnswer] = {}
        self._callback_ids = itertools.count(1)
        self._reactions: list[Reaction] = []
        self._user_files: dict[str, str] = {}  # file_id -> file_unique_id of users' photos
        self._commands: dict[tuple[str, str], list[JsonDict]] = {}
        self._calls: list[Call] = []
        self._too_many_requests = 0
        self._updates: list[JsonDict] = []
        self._last_update_id = 0
        self._allowed = DEFAULT_UPDATE_TYPES
        if allowed_updates is not None:
            self._set_allowed_updates(list(allowed_updates))
        self.webhook = WebhookState()

    # ------------------------------------------------------------ hooks and helpers

    def _updates_changed(self) -> None:
        """Called (under the lock) when the update queue changed; the server wakes pollers."""

    def _now(self) -> int:
        return int(self._clock.now().timestamp())

    @property
    def bot_user(self) -> JsonDict:
        """The bot's ``User`` as getMe returns it."""
        return {
            **user_dict(self._bot),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _user(self, user_id: int) -> UserState:
        try:
            return self._users[user_id]
        except KeyError:
            raise ValueError(f"no user {user_id}: add_user() first") from None

    def _user_dict(self, user_id: int) -> JsonDict:
        if user_id == self._bot.id:
            return user_dict(self._bot)
        return user_dict(self._user(user_id))

    def _chat(self, chat_id: int) -> ChatState:
        try:
            return self._chats[chat_id]
        except KeyError:
            raise ValueError(f"no chat {chat_id}: add_user() / add_group() first") from None

    def _group(self, chat_id: int) -> ChatState:
        chat = self._chat(chat_id)
        if not chat.is_group:
            raise ValueError(f"chat {chat_id} is not a group")
        if chat.migrated_to is not None:
            raise ValueError(f"group {chat_id} was migrated to {chat.migrated_to}")
        return chat

    def _chat_dict(self, chat: ChatState) -> JsonDict:
        user = self._users.get(chat.user_id) if chat.user_id is not None else None
        return chat_dict(chat, user)

    def _member(self, chat: ChatState, user_id: int) -> MemberState:
        if user_id == self._bot.id:
            return chat.bot
        return chat.members.get(user_id) or MemberState(user_id, "left")

    def _member_dict(self, chat: ChatState, member: MemberState) -> JsonDict:
        return member_dict(member, self._user_dict(member.user_id))

    def _owner_dict(self, chat: ChatState) -> JsonDict:
        """Who Telegram names as the actor of an admin change: the owner, else anonymous."""
        for member in chat.members.values():
            if member.status == "creator":
                return self._user_dict(member.user_id)
        return dict(GROUP_ANONYMOUS_BOT)

    def _link_dict(self, link: InviteLinkState) -> JsonDict:
        return invite_link_dict(link, self._user_dict(link.creator_id))

    def _store_message(
        self,
        chat: ChatState,
        sender: JsonDict,
        content: JsonDict,
        *,
        from_bot: bool,
        media_source: str | None = None,
    ) -> JsonDict:
        chat.last_message_id += 1
        message = {
            "message_id": chat.last_message_id,
            "from": sender,
            "chat": self._chat_dict(chat),
            "date": self._now(),
            **content,
        }
        chat.messages[chat.last_message_id] = MessageState(
            message, from_bot=from_bot, media_source=media_source
        )
        return message

    # ------------------------------------------------------------ the update queue

    def _enqueue(self, kind: str, payload: JsonDict) -> JsonDict:
        self._last_update_id += 1
        update = {"update_id": self._last_update_id, kind: payload}
        if kind in self._allowed:
            self._updates.append(update)
            self._updates_changed()
        return copy.deepcopy(update)

    def _set_allowed_updates(self, value: Any) -> None:
        """Telegram's rule: absent keeps the setting, an empty list means the default set."""
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return
        if not isinstance(value, list):
            return
        names = {str(name).lower() for name in value} & set(ALL_UPDATE_TYPES)
        self._allowed = frozenset(names) if names else DEFAULT_UPDATE_TYPES

    def _confirm_updates(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    def _chat_member_update(
        self,
        kind: str,
        chat: ChatState,
        actor: JsonDict,
        old: MemberState,
        new: MemberState,
        **extra: Any,
    ) -> JsonDict:
        payload = {
            "chat": self._chat_dict(chat),
            "from": actor,
            "date": self._now(),
            "old_chat_member": self._member_dict(chat, old),
            "new_chat_member": self._member_dict(chat, new),
            **extra,
        }
        return self._enqueue(kind, payload)

    # ------------------------------------------------------------ world setup

    @locked
    def add_user(
        self,
        user_id: int,
        first_name: str,
        *,
        username: str | None = None,
        language_code: str | None = "en",
        started_bot: bool = False,
    ) -> JsonDict:
        """A Telegram user (and the bot's private chat with them); returns the User."""
        if user_id <= 0 or user_id == self._bot.id:
            raise ValueError(f"user id {user_id} must be positive and not the bot's")
        user = UserState(user_id, first_name, username, language_code, started=started_bot)
        self._users[user_id] = user
        self._chats.setdefault(
            user_id,
            ChatState(user_id, "private", bot=MemberState(self._bot.id, "member"), user_id=user_id),
        )
        return user_dict(user)

    @locked
    def add_group(
        self,
        chat_id: int,
        title: str,
        *,
        supergroup: bool = False,
        members: Iterable[int] = (),
        bot_status: str = "administrator",
        bot_rights: dict[str, bool] | None = None,
        owner: int | None = None,
        permissions: dict[str, bool] | None = None,
        slow_mode_delay: int | None = None,
    ) -> JsonDict:
        """A group (or supergroup) with the bot in it; returns the Chat.

        ``bot_rights``: administrator ``can_*`` flags to switch off (all granted by default),
        or for ``bot_status="restricted"`` the permissions granted.
        """
        if chat_id >= 0:
            raise ValueError("group ids are negative")
        chat = ChatState(
            chat_id,
            "supergroup" if supergroup else "group",
            bot=self._bot_member(bot_status, bot_rights),
            title=title,
            slow_mode_delay=slow_mode_delay,
        )
        if permissions is not None:
            chat.permissions = restricted_permissions(permissions)
        if owner is not None:
            self._user(owner)
            chat.members[owner] = MemberState(owner, "creator")
        for user_id in members:
            self._user(user_id)
            chat.members.setdefault(user_id, MemberState(user_id, "member"))
        self._chats[chat_id] = chat
        return self._chat_dict(chat)

    def _bot_member(self, status: str, rights: dict[str, bool] | None) -> MemberState:
        if status not in MEMBER_STATUSES or status == "creator":
            raise ValueError(f"bot status must be one of {MEMBER_STATUSES[1:]}, not {status!r}")
        if status == "administrator":
            return MemberState(self._bot.id, status, admin_rights(rights))
        if status == "restricted":
            return MemberState(self._bot.id, status, restricted_permissions(rights))
        return MemberState(self._bot.id, status)

    @locked
    def set_member(self, chat_id: int, user_id: int, status: str, **rights: bool) -> None:
        """Set a user's status in a group quietly (setup; no update is sent)."""
        chat = self._group(chat_id)
        self._user(user_id)
        if status not in MEMBER_STATUSES:
            raise ValueError(f"status must be one of {MEMBER_STATUSES}")
        member_rights = (
            admin_rights(rights)
            if status == "administrator"
            else restricted_permissions(rights)
            if status == "restricted"
            else {}
        )
        chat.members[user_id] = MemberState(user_id, status, member_rights)

    @locked
    def set_bot_rights(self, chat_id: int, status: str, **rights: bool) -> JsonDict:
        """Change the bot's status in a group; enqueues and returns ``my_chat_member``."""
        chat = self._group(chat_id)
        old = chat.bot
        chat.bot = self._bot_member(status, rights)
        return self._chat_member_update(
            "my_chat_member", chat, self._owner_dict(chat), old, chat.bot
        )

    def kick_bot(self, chat_id: int) -> JsonDict:
        return self.set_bot_rights(chat_id, "kicked")

    @locked
    def add_bot(self, chat_id: int, by: int, status: str = "member", **rights: bool) -> JsonDict:
        """A member of the group adds the bot to it (``status`` member by default);
        enqueues and returns ``my_chat_member`` from that member."""
        chat = self._group(chat_id)
        old = chat.bot
        chat.bot = self._bot_member(status, rights)
        adder = self._user_dict(by)
        return self._chat_member_update("my_chat_member", chat, adder, old, chat.bot)

    @locked
    def migrate(self, chat_id: int) -> int:
        """Upgrade a basic group to a supergroup; returns the new chat id (-100...)."""
        old = self._group(chat_id)
        if old.type != "group":
            raise ValueError(f"chat {chat_id} is already a supergroup")
        new_id = int(f"-100{abs(chat_id)}")
        while new_id in self._chats:
            new_id -= 1
        new = ChatState(
            new_id,
            "supergroup",
            bot=replace(old.bot),
            title=old.title,
            members=copy.deepcopy(old.members),
            permissions=dict(old.permissions),
            slow_mode_delay=old.slow_mode_delay,
        )
        self._chats[new_id] = new
        actor = self._owner_dict(old)
        to_message = self._store_message(old, actor, {"migrate_to_chat_id": new_id}, from_bot=False)
        old.migrated_to = new_id
        self._enqueue("message", to_message)
        from_message = self._store_message(
            new, actor, {"migrate_from_chat_id": chat_id}, from_bot=False
        )
        self._enqueue("message", from_message)
        return new_id

    @locked
    def block_bot(self, user_id: int) -> JsonDict:
        """The user blocks the bot; enqueues and returns ``my_chat_member``."""
        user = self._user(user_id)
        user.blocked = True
        chat = self._chat(user_id)
        old, chat.bot = chat.bot, MemberState(self._bot.id, "kicked")
        return self._chat_member_update("my_chat_member", chat, user_dict(user), old, chat.bot)

    @locked
    def start_bot(self, user_id: int, payload: str | None = None) -> JsonDict:
        """The user presses Start; enqueues and returns the ``/start [payload]`` message."""
        user = self._user(user_id)
        chat = self._chat(user_id)
        if user.blocked:
            user.blocked = False
            old, chat.bot = chat.bot, MemberState(self._bot.id, "member")
            self._chat_member_update("my_chat_member", chat, user_dict(user), old, chat.bot)
        user.started = True
        text = "/start" if payload is None else f"/start {payload}"
        return self._user_message(chat, user, text)

    # ------------------------------------------------------------ members acting

    def _user_message(self, chat: ChatState, user: UserState, text: str) -> JsonDict:
        content: JsonDict = {"text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            content["entities"] = [{"offset": 0, "length": len(command), "type": "bot_command"}]
        message = self._store_message(chat, user_dict(user), content, from_bot=False)
        return self._enqueue("message", message)

    @locked
    def join(self, chat_id: int, user_id: int, *, invite_link: str | None = None) -> JsonDict:
        """The user joins (by ``invite_link`` if given); returns the ``chat_member`` update.

        The ``new_chat_members`` service message is enqueued right after it.
        """
        chat = self._group(chat_id)
        user = self._user(user_id)
        link = self._usable_link(chat, invite_link) if invite_link else None
        if link is not None and link.creates_join_request:
            raise ValueError(f"{invite_link} needs approval: use request_join()")
        return self._admit(chat, user, link, actor=user_dict(user))

    @locked
    def join_many(self, chat_id: int, user_ids: Iterable[int]) -> list[JsonDict]:
        """A crowd joins at once: :meth:`join` for each, in one call (one round trip when
        the server runs in a process of its own)."""
        return [self.join(chat_id, user_id) for user_id in user_ids]

    def _usable_link(self, chat: ChatState, invite_link: str) -> InviteLinkState:
        link = self._links.get(invite_link)
        if link is None or link.chat_id != chat.id:
            raise ValueError(f"no invite link {invite_link} for chat {chat.id}")
        if link.is_revoked:
            raise ValueError(f"invite link {invite_link} is revoked")
        if link.expire_date is not None and link.expire_date <= self._now():
            raise ValueError(f"invite link {invite_link} has expired")
        if link.member_limit is not None:
            holding = [uid for uid in link.joined if self._member(chat, uid).present]
            if len(holding) >= link.member_limit:
                raise ValueError(f"invite link {invite_link} reached its member_limit")
        return link

    def _admit(
        self,
        chat: ChatState,
        user: UserState,
        link: InviteLinkState | None,
        *,
        actor: JsonDict,
        via_join_request: bool = False,
    ) -> JsonDict:
        old = self._member(chat, user.id)
        if old.present or old.status == "kicked":
            raise ValueError(f"user {user.id} is already in chat {chat.id} or banned from it")
        new = MemberState(user.id, "member", invite_link=link.invite_link if link else None)
        chat.members[user.id] = new
        extra: JsonDict = {}
        if link is not None:
            link.joined.append(user.id)
            extra["invite_link"] = self._link_dict(link)
        if via_join_request:
            extra["via_join_request"] = True
        update = self._chat_member_update("chat_member", chat, actor, old, new, **extra)
        service = self._store_message(
            chat, user_dict(user), {"new_chat_members": [user_dict(user)]}, from_bot=False
        )
        self._enqueue("message", service)
        return update

    @locked
    def leave(self, chat_id: int, user_id: int) -> JsonDict:
        """The user leaves; returns ``chat_member`` (``left_chat_member`` message follows)."""
        chat = self._group(chat_id)
        user = self._user(user_id)
        old = self._member(chat, user_id)
        if not old.present:
            raise ValueError(f"user {user_id} is not in chat {chat_id}")
        new = MemberState(user_id, "left")
        chat.members[user_id] = new
        update = self._chat_member_update("chat_member", chat, user_dict(user), old, new)
        service = self._store_message(
            chat, user_dict(user), {"left_chat_member": user_dict(user)}, from_bot=False
        )
        self._enqueue("message", service)
        return update

    @locked
    def say(self, chat_id: int, user_id: int, text: str) -> JsonDict:
        """The user writes ``text`` in a group or (chat_id == user_id) to the bot."""
        user = self._user(user_id)
        if chat_id == user_id:
            user.started = True  # a user can only write to a bot after opening the chat
            return self._user_message(self._chat(chat_id), user, text)
        chat = self._group(chat_id)
        if not self._member(chat, user_id).present:
            raise ValueError(f"user {user_id} is not in chat {chat_id}")
        return self._user_message(chat, user, text)

    @locked
    def send_photo(self, chat_id: int, user_id: int, *, caption: str | None = None) -> JsonDict:
        """The user sends a photo in a group or (chat_id == user_id) to the bot; returns
        the message update. Its file ids are known to the server afterwards, so the bot
        can send the photo on by file id (``sendPhoto``), as Telegram allows."""
        user = self._user(user_id)
        if chat_id == user_id:
            user.started = True
            chat = self._chat(chat_id)
        else:
            chat = self._group(chat_id)
            if not self._member(chat, user_id).present:
                raise ValueError(f"user {user_id} is not in chat {chat_id}")
        file_id = "AgACAgIAAxkBAA" + secrets.token_urlsafe(24)
        unique_id = "AQAD" + secrets.token_urlsafe(9)
        self._user_files[file_id] = unique_id
        self._user_files[file_id + "-s"] = unique_id + "s"
        content: JsonDict = {
            "photo": [
                {
                    "file_id": file_id + "-s",
                    "file_unique_id": unique_id + "s",
                    "width": 320,
                    "height": 180,
                },
                {"file_id": file_id, "file_unique_id": unique_id, "width": 1280, "height": 720},
            ]
        }
        if caption:
            content["caption"] = caption
        message = self._store_message(chat, user_dict(user), content, from_bot=False)
        return self._enqueue("message", message)

    @locked
    def tap(
        self, chat_id: int, message_id: int, user_id: int, *, data: str | None = None
    ) -> JsonDict:
        """The user taps an inline button of a bot message; returns the callback_query."""
        chat = self._chat(chat_id)
        user = self._user(user_id)
        stored = chat.messages.get(message_id)
        if stored is None or stored.deleted or not stored.from_bot:
            raise ValueError(f"no bot message {message_id} in chat {chat_id}")
        if data is None:
            data = first_callback_data(stored.message.get("reply_markup"))
            if data is None:
                raise ValueError(f"message {message_id} has no callback button")
        query_id = str(
            4_000_000_000_000_000_000 + self._bot.id * 1_000_000 + next(self._callback_ids)
        )
        self._callbacks[query_id] = CallbackQueryState(
            query_id, user_id, chat_id, message_id, data, created=time.perf_counter()
        )
        payload = {
            "id": query_id,
            "from": user_dict(user),
            "message": copy.deepcopy(stored.message),
            "chat_instance": str(abs(chat_id) * 7919 + 104729),
            "data": data,
        }
        return self._enqueue("callback_query", payload)

    @locked
    def redeliver(self, update: JsonDict) -> JsonDict:
        """Telegram delivering the same event again, under a new update_id."""
        kinds = [key for key in update if key != "update_id"]
        if len(kinds) != 1:
            raise ValueError("an update has exactly one payload besides update_id")
        return self._enqueue(kinds[0], copy.deepcopy(update[kinds[0]]))

    @locked
    def request_join(self, chat_id: int, user_id: int, invite_link: str | None = None) -> JsonDict:
        """The user asks to join (by a ``creates_join_request`` link); chat_join_request."""
        chat = self._group(chat_id)
        user = self._user(user_id)
        link = self._usable_link(chat, invite_link) if invite_link else None
        if link is not None and not link.creates_join_request:
            raise ValueError(f"{invite_link} admits directly: use join()")
        member = self._member(chat, user_id)
        if member.present or member.status == "kicked":
            raise ValueError(f"user {user_id} is already in chat {chat_id} or banned from it")
        now = time.perf_counter()
        date = self._now()
        self._join_requests[(chat_id, user_id)] = JoinRequestState(
            chat_id, user_id, invite_link, date, now
        )
        user.join_request_at = now
        payload: JsonDict = {
            "chat": self._chat_dict(chat),
            "from": user_dict(user),
            "user_chat_id": user_id,
            "date": date,
        }
        if link is not None:
            payload["invite_link"] = self._link_dict(link)
        return self._enqueue("chat_join_request", payload)

    # ------------------------------------------------------------ inspection

    @property
    @locked
    def calls(self) -> list[Call]:
        return list(self._calls)

    @locked
    def calls_of(self, method: str) -> list[Call]:
        return [call for call in self._calls if call.method.lower() == method.lower()]

    @locked
    def messages(self, chat_id: int, *, include_users: bool = False) -> list[JsonDict]:
        """The bot's messages in a chat (with the users' too if asked), oldest first.

        Each is the Message as last sent or edited, plus ``edited`` (count), ``deleted``,
        ``pinned`` and ``media_source`` (what a photo etc. was sent as).
        """
        chat = self._chat(chat_id)
        return [
            {
                **copy.deepcopy(state.message),
                "edited": state.edited,
                "deleted": state.deleted,
                "pinned": state.pinned,
                "media_source": state.media_source,
            }
            for _, state in sorted(chat.messages.items())
            if state.from_bot or include_users
        ]

    @property
    @locked
    def callback_answers(self) -> dict[str, CallbackAnswer]:
        return dict(self._callback_answers)

    @locked
    def answers_to(self, query_ids: Iterable[str]) -> dict[str, CallbackAnswer]:
        """The answers to these callback queries (those answered), without copying every
        answer ever given: a benchmark asks after each of hundreds of rounds."""
        return {q: self._callback_answers[q] for q in query_ids if q in self._callback_answers}

    @property
    @locked
    def reactions(self) -> list[Reaction]:
        return list(self._reactions)

    @property
    @locked
    def commands(self) -> dict[tuple[str, str], list[JsonDict]]:
        """Commands by (scope as canonical JSON, language_code or "")."""
        return copy.deepcopy(self._commands)

    @property
    @locked
    def invite_links(self) -> dict[str, InviteLinkState]:
        return copy.deepcopy(self._links)

    @property
    @locked
    def join_requests(self) -> dict[tuple[int, int], JoinRequestState]:
        """The latest join request by (chat_id, user_id)."""
        return copy.deepcopy(self._join_requests)

    @locked
    def members(self, chat_id: int) -> dict[int, MemberState]:
        return copy.deepcopy(self._chat(chat_id).members)

    @locked
    def bot_member(self, chat_id: int) -> MemberState:
        return replace(self._chat(chat_id).bot)

    @property
    @locked
    def too_many_requests(self) -> int:
        return self._too_many_requests

    @locked
    def pending_updates(self) -> list[JsonDict]:
        """Updates enqueued and not yet confirmed by getUpdates (or webhook delivery)."""
        return copy.deepcopy(self._updates)
