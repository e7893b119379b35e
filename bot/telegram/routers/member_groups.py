"""A member's own group for the group task: the bot added to it or removed from it
(``my_chat_member`` for a group that is no cohort's), and the owner's ``/talk`` there.

Handlers parse, call one use case, and render its answer from the catalogue."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import ChatMemberUpdated, Message

from bot.telegram.routers.filters import InGroup
from bot.telegram.routers.middleware import WhoAsks
from bot.telegram.services import Services
from funnels.cohorts.member_groups import BotAddedToGroup, BotLeftGroup, StartGroupTalk
from funnels.kernel.actor import Actor
from funnels.people.leaders import MayLead

_GONE = ("left", "kicked")


async def bot_moved(event: ChatMemberUpdated, services: Services) -> None:
    """The bot's status changed in a group that is no cohort's (called by the membership
    router once it knows that)."""
    if event.chat.type not in ("group", "supergroup"):
        return  # a private chat: someone blocked or unblocked the bot
    chat_id = event.chat.id
    if event.new_chat_member.status in _GONE:
        await BotLeftGroup(services.deps)(chat_id)
        return
    if event.old_chat_member.status not in _GONE:
        return  # rights changed in a group it was already in
    adder = services.actor(event.from_user)
    # A leader (or supervisor, or admin) adding the bot is setting up a cohort's group:
    # /launch or /taskgroup follows, so the bot stays quietly if it is no group task.
    may_lead = await MayLead(services.deps)(adder, services.is_admin(adder.telegram_id))
    await BotAddedToGroup(services.deps)(chat_id, adder, may_lead=may_lead)


async def talk(message: Message, services: Services, actor: Actor, locale: str) -> None:
    answer = await StartGroupTalk(services.deps)(message.chat.id, actor)
    if answer.outcome == "gone":
        return  # the bot is not in the group any more: nobody to answer
    text = services.text(
        locale, f"group_talk.{answer.outcome}", count=answer.count, needed=answer.needed
    )
    await services.say(message.chat.id, text, reply_to=message.message_id)


def make_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="member_groups")
    router.message.middleware(WhoAsks())
    router.message.register(talk, Command("talk"), InGroup())
    return router
