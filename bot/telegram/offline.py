"""Messengers that are not Telegram: the recording one used by ``simulate`` and tests."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from funnels.kernel.messaging import ChatUnavailable, DeliveryError, Outgoing, Right
from funnels.kernel.records import MemberRef

_log = logging.getLogger("funnelbot.messenger")


@dataclass(frozen=True, slots=True)
class Sent:
    chat_id: int
    message_id: int
    message: Outgoing
    pinned: bool = False


@dataclass
class RecordingMessenger:
    """Records every call instead of talking to Telegram.

    ``fail_next`` makes the next send raise the given error, for fault tests;
    ``unreachable`` lists Telegram ids whose private chats fail like a blocked bot.
    """

    sent: list[Sent] = field(default_factory=list)
    edits: list[tuple[int, int, Outgoing]] = field(default_factory=list)
    notices: list[tuple[MemberRef, Outgoing]] = field(default_factory=list)
    slow_mode: dict[int, int] = field(default_factory=dict)
    unpinned: list[tuple[int, int]] = field(default_factory=list)
    unreachable: set[int] = field(default_factory=set)
    fail_next: list[DeliveryError] = field(default_factory=list)
    reactions: list[tuple[int, int]] = field(default_factory=list)
    rights_missing: dict[int, list[Right]] = field(default_factory=dict)
    links: list[tuple[int, str, bool, int | None]] = field(default_factory=list)
    link_expiry: dict[str, datetime] = field(default_factory=dict)
    revoked: list[tuple[int, str]] = field(default_factory=list)
    removed: list[tuple[int, int]] = field(default_factory=list)
    """(chat id, Telegram id) of people taken out of a group (``remove_member``)."""
    join_answers: list[tuple[int, int, bool]] = field(default_factory=list)
    member_counts: dict[int, int] = field(default_factory=dict)
    """People in each group, the bot included, as ``member_count`` answers; a group not
    listed is one the bot is not in (``ChatUnavailable``)."""
    left: list[int] = field(default_factory=list)
    _next_id: int = 1

    async def send(self, chat_id: int, message: Outgoing, *, pin: bool = False) -> int:
        if self.fail_next:
            raise self.fail_next.pop(0)
        message_id = self._next_id
        self._next_id += 1
        self.sent.append(Sent(chat_id, message_id, message, pin))
        return message_id

    async def edit(self, chat_id: int, message_id: int, message: Outgoing) -> None:
        self.edits.append((chat_id, message_id, message))

    async def set_slow_mode(self, chat_id: int, seconds: int) -> None:
        self.slow_mode[chat_id] = seconds

    async def unpin(self, chat_id: int, message_id: int) -> None:
        self.unpinned.append((chat_id, message_id))

    async def notify(self, member: MemberRef, message: Outgoing) -> bool:
        if member.telegram_id is None or member.telegram_id in self.unreachable:
            return False
        self.notices.append((member, message))
        return True

    async def react(self, chat_id: int, message_id: int) -> None:
        self.reactions.append((chat_id, message_id))

    async def missing_rights(self, chat_id: int, needs: Sequence[Right]) -> list[Right]:
        lacking = self.rights_missing.get(chat_id, [])
        return [right for right in needs if right in lacking]

    async def create_invite_link(
        self,
        chat_id: int,
        name: str,
        *,
        join_request: bool = False,
        member_limit: int | None = None,
        expire_at: datetime | None = None,
    ) -> str:
        link = f"https://t.me/+{chat_id}-{len(self.links) + 1}"
        self.links.append((chat_id, link, join_request, member_limit))
        if expire_at is not None:
            self.link_expiry[link] = expire_at
        return link

    async def revoke_invite_link(self, chat_id: int, link: str) -> None:
        self.revoked.append((chat_id, link))

    async def remove_member(self, chat_id: int, telegram_id: int) -> bool:
        self.removed.append((chat_id, telegram_id))
        return True

    async def answer_join_request(self, chat_id: int, telegram_id: int, *, approve: bool) -> bool:
        self.join_answers.append((chat_id, telegram_id, approve))
        return True

    async def member_count(self, chat_id: int) -> int:
        if chat_id not in self.member_counts or chat_id in self.left:
            raise ChatUnavailable("Forbidden: bot is not a member of the chat", "removed")
        return self.member_counts[chat_id]

    async def leave(self, chat_id: int) -> None:
        self.left.append(chat_id)

    def sent_of(self, kind: type) -> list[Sent]:
        """Sends whose message is of ``kind`` (e.g. ``EnvelopeOffer``)."""
        return [s for s in self.sent if isinstance(s.message, kind)]

    def in_chat(self, chat_id: int) -> list[Sent]:
        return [s for s in self.sent if s.chat_id == chat_id]


class LoggingMessenger(RecordingMessenger):
    """Without a bot token: log what would be sent, keep nothing in memory."""

    async def send(self, chat_id: int, message: Outgoing, *, pin: bool = False) -> int:
        message_id = self._next_id
        self._next_id += 1
        _log.info("would send to %s: %s", chat_id, type(message).__name__)
        return message_id

    async def edit(self, chat_id: int, message_id: int, message: Outgoing) -> None:
        _log.info("would edit %s/%s: %s", chat_id, message_id, type(message).__name__)

    async def notify(self, member: MemberRef, message: Outgoing) -> bool:
        _log.info("would notify user %s: %s", member.user_id, type(message).__name__)
        return member.telegram_id is not None
