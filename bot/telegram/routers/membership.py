"""Who comes and goes: members joining or leaving the groups (``chat_member``), people
asking to join the task group (``chat_join_request``), and the bot's own membership
(``my_chat_member``): removed or demoted, it pauses the cohort and tells the leader; in a
group that is no cohort's, see :mod:`bot.telegram.routers.member_groups`."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import JOIN_TRANSITION, LEAVE_TRANSITION, ChatMemberUpdatedFilter
from aiogram.types import ChatJoinRequest, ChatMemberUpdated

from bot.telegram.i18n import negotiate
from bot.telegram.rights import lacking
from bot.telegram.routers.member_groups import bot_moved
from bot.telegram.services import Services
from funnels.cohorts.lifecycle import GroupLost
from funnels.kernel.messaging import TASK_GROUP_RIGHTS, WARMUP_RIGHTS
from funnels.warmup.admissions import DecideJoinRequest
from funnels.warmup.joins import MemberJoined, RecordLeave


async def joined(event: ChatMemberUpdated, services: Services) -> None:
    member = event.new_chat_member.user
    if member.is_bot:
        return
    link = event.invite_link.invite_link if event.invite_link else None
    adder = event.from_user if event.from_user.id != member.id else None
    result = await MemberJoined(services.deps)(
        event.chat.id,
        services.actor(member),
        invite_link=link,
        added_by=services.actor(adder) if adder else None,
    )
    # Known from now on, without another lookup when they tap or answer.
    services.users.remember(member.id, result.user_id, negotiate(result.language))


async def left(event: ChatMemberUpdated, services: Services) -> None:
    member = event.new_chat_member.user
    if member.is_bot:
        return
    user_id, _ = await services.users.get(member)
    await RecordLeave(services.deps)(event.chat.id, user_id)


async def join_request(request: ChatJoinRequest, services: Services) -> None:
    await DecideJoinRequest(services.deps)(request.chat.id, services.actor(request.from_user))


async def bot_membership(event: ChatMemberUpdated, services: Services) -> None:
    """The bot's own status changed in a group."""
    new = event.new_chat_member
    chat_id = event.chat.id
    cohort = await services.chats.cohort(chat_id)
    services.chats.forget(chat_id)
    if cohort is None:
        await bot_moved(event, services)  # perhaps a member's own group (the group task)
        return
    if new.status in ("left", "kicked"):
        await GroupLost(services.deps)(chat_id, "removed")
        return
    needs = WARMUP_RIGHTS if cohort.warms_up_in(chat_id) else TASK_GROUP_RIGHTS
    missing = lacking(new, needs)
    if missing:
        await GroupLost(services.deps)(chat_id, "demoted", missing)


def make_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="membership")
    router.chat_member.register(joined, ChatMemberUpdatedFilter(JOIN_TRANSITION))
    router.chat_member.register(left, ChatMemberUpdatedFilter(LEAVE_TRANSITION))
    router.chat_join_request.register(join_request)
    router.my_chat_member.register(bot_membership)
    return router
