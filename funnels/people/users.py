"""Users: the locale they chose, whether the bot may write to them."""

from __future__ import annotations

from datetime import datetime

from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.records import MemberRef
from funnels.people.ports import KnowsUsers, PeopleTx


async def user_id_of(tx: KnowsUsers, actor: Actor, at: datetime) -> int:
    """The user id of whoever acts, made for them on first sight (inside ``tx``)."""
    return (await tx.users.ensure_user(actor.telegram_id, actor.name, actor.language, at)).user_id


class ChooseLocale:
    """``/lang``: the member's choice wins over what their Telegram app says."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, member: Actor, locale: str) -> MemberRef:
        now = self.deps.clock.now()
        async with self.deps.uow(PeopleTx).transaction() as tx:
            user = await tx.users.ensure_user(member.telegram_id, member.name, member.language, now)
            await tx.users.set_locale(user.user_id, locale)
            await tx.commit()
        return MemberRef(user.user_id, user.telegram_id, locale)


class StartedBot:
    """The member pressed Start (or wrote to the bot): they can be messaged again."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, member: Actor) -> MemberRef:
        now = self.deps.clock.now()
        async with self.deps.uow(PeopleTx).transaction() as tx:
            user = await tx.users.ensure_user(member.telegram_id, member.name, member.language, now)
            await tx.users.set_reachable(member.telegram_id, True, now)
            await tx.commit()
        return user


class MarkUnreachable:
    """A private message bounced (the member blocked the bot): stop counting on DMs to
    them; the cohort goes on."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, telegram_id: int) -> None:
        async with self.deps.uow(PeopleTx).transaction() as tx:
            await tx.users.set_reachable(telegram_id, False, self.deps.clock.now())
            await tx.commit()


class MeetUser:
    """Whoever writes or taps: known from now on (made on first sight), with the locale
    they read in."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, actor: Actor) -> MemberRef:
        async with self.deps.uow(PeopleTx).transaction() as tx:
            ref = await tx.users.ensure_user(
                actor.telegram_id, actor.name, actor.language, self.deps.clock.now()
            )
            await tx.commit()
        return ref
