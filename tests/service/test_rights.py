"""The rights the bot needs, read off Telegram's ``ChatMember`` in one place."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from aiogram.types import (
    ChatMemberAdministrator,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberOwner,
    User,
)

from bot.telegram.rights import ADMIN_FLAGS, lacking
from funnels.kernel.messaging import TASK_GROUP_RIGHTS, WARMUP_RIGHTS, Right

BOT = User(id=42, is_bot=True, first_name="Funnel")
EVERY_RIGHT: tuple[Right, ...] = get_args(Right)


def admin(**flags: bool) -> ChatMemberAdministrator:
    """An administrator with every right granted (and the other fields Telegram requires
    set), but for ``flags``."""
    names = [
        name
        for name, field in ChatMemberAdministrator.model_fields.items()
        if name.startswith("can_") or (field.is_required() and name not in ("user", "status"))
    ]
    granted: dict[str, Any] = dict.fromkeys(names, True)
    return ChatMemberAdministrator(user=BOT, **{**granted, **flags})


def test_every_right_says_how_it_shows_in_telegram() -> None:
    assert set(ADMIN_FLAGS) == set(EVERY_RIGHT)
    for right, flag in ADMIN_FLAGS.items():
        assert flag is None or flag in ChatMemberAdministrator.model_fields, right


def test_the_group_kinds_need_only_known_rights() -> None:
    assert set(WARMUP_RIGHTS) <= set(EVERY_RIGHT)
    assert set(TASK_GROUP_RIGHTS) <= set(EVERY_RIGHT)


def test_the_owner_lacks_nothing() -> None:
    assert lacking(ChatMemberOwner(user=BOT, is_anonymous=False), EVERY_RIGHT) == []


@pytest.mark.parametrize("member", [ChatMemberMember(user=BOT), ChatMemberLeft(user=BOT)])
def test_anyone_not_an_administrator_lacks_everything_asked(member: Any) -> None:
    assert lacking(member, WARMUP_RIGHTS) == list(WARMUP_RIGHTS)
    assert lacking(member, TASK_GROUP_RIGHTS) == list(TASK_GROUP_RIGHTS)


def test_an_administrator_lacks_the_flags_not_granted_in_the_order_asked() -> None:
    assert lacking(admin(), EVERY_RIGHT) == []
    demoted = admin(can_pin_messages=False, can_invite_users=False)
    assert lacking(demoted, WARMUP_RIGHTS) == ["can_invite_users", "can_pin_messages"]
    assert lacking(demoted, TASK_GROUP_RIGHTS) == ["can_invite_users"]
    assert lacking(admin(can_restrict_members=False), WARMUP_RIGHTS) == []
    assert lacking(admin(can_restrict_members=False), ["can_restrict_members"]) == [
        "can_restrict_members"
    ]
