"""aiogram routers, one per concern; handlers parse, call one use case, and render."""

from __future__ import annotations

from aiogram import Dispatcher, Router

from bot.telegram.routers import (
    envelopes,
    group,
    leader,
    member_groups,
    membership,
    private,
    proofs,
)


def routers() -> list[Router]:
    # Group chatter first: it is most of the traffic, and every router it passes costs
    # time. The group router hands commands on (SkipHandler) to the leader router.
    return [
        group.make_router(),
        leader.make_router(),
        private.make_router(),
        proofs.make_router(),
        membership.make_router(),
        member_groups.make_router(),
    ]


def include(dp: Dispatcher) -> None:
    """Everything on the dispatcher. Taps on red envelopes are handled by the dispatcher
    itself, ahead of every router: a crowd's taps are the hottest path and passing each
    router costs time; no message passes an extra router for it."""
    envelopes.register(dp)
    dp.include_routers(*routers())
