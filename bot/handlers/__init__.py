"""aiogram routers, one per concern; handlers parse, call one use case, and render."""

from __future__ import annotations

from aiogram import Router

from bot.handlers import envelopes, group, leader, membership, private


def routers() -> list[Router]:
    # Commands first; the catch-all handler for group messages last.
    return [
        leader.make_router(),
        private.make_router(),
        envelopes.make_router(),
        membership.make_router(),
        group.make_router(),
    ]
