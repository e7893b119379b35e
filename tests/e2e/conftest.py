"""Fixtures shared by the end-to-end tests of the direct Bot API calls and polling."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.botapi import LocalBotAPI

TOKEN = "42:TEST"
GROUP = -1001
ANN, BOB = 101, 102


@pytest.fixture
async def api() -> AsyncIterator[LocalBotAPI]:
    """A local Bot API server with two members who started the bot, in one group."""
    async with LocalBotAPI(TOKEN, limits=False) as server:
        server.add_user(ANN, "Ann", started_bot=True)
        server.add_user(BOB, "Bob", started_bot=True)
        server.add_group(GROUP, "Envelopes", supergroup=True, members=[ANN, BOB])
        yield server
