"""The rights the bot needs in a group, read off Telegram's ``ChatMember``.

Which rights each kind of group needs is the domain's (``WARMUP_RIGHTS`` and
``TASK_GROUP_RIGHTS`` in :mod:`funnels.kernel.messaging`); how each one shows in Telegram is said
here, once, for both places that look: the messenger asking before a launch or a resume
(``getChatMember``) and the membership router hearing that the bot was demoted
(``my_chat_member``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiogram.types import ChatMember, ChatMemberAdministrator, ChatMemberOwner

from funnels.kernel.messaging import Right

ADMIN_FLAGS: Mapping[Right, str | None] = {
    # Being an administrator at all: no flag to read beyond the status itself.
    "admin": None,
    # An administrator sees every message, whatever the group's privacy mode.
    "see_messages": None,
    "can_invite_users": "can_invite_users",
    "can_pin_messages": "can_pin_messages",
    "can_delete_messages": "can_delete_messages",
    "can_restrict_members": "can_restrict_members",
}
"""Each right -> the ``ChatMemberAdministrator`` flag that grants it (None: being an
administrator is enough)."""


def lacking(member: ChatMember, needs: Sequence[Right]) -> list[Right]:
    """Which of ``needs`` the bot, being ``member`` of a group, does not have: none for the
    owner, all of them for anyone who is not an administrator."""
    if isinstance(member, ChatMemberOwner):
        return []
    if not isinstance(member, ChatMemberAdministrator):
        return list(needs)
    return [right for right in needs if not _granted(member, right)]


def _granted(admin: ChatMemberAdministrator, right: Right) -> bool:
    flag = ADMIN_FLAGS.get(right)
    return flag is None or bool(getattr(admin, flag, False))
