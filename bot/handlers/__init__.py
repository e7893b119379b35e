"""aiogram routers, one per concern; handlers parse, call one use case, and render."""

from __future__ import annotations

from aiogram import Router

from bot.handlers import envelopes, group, leader, membership, private


def routers() -> list[Router]:
    # Group chatter first: it is most of the traffic, and every router it passes costs
    # time. The group router hands commands on (SkipHandler) to the leader router.
    return [
        group.make_router(),
        leader.make_router(),
        private.make_router(),
        envelopes.make_router(),
        membership.make_router(),
    ]
