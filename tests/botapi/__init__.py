"""A local stand-in for the Telegram Bot API, for end-to-end tests and benchmarks.

See :mod:`tests.botapi.server` for how to use it.
"""

from tests.botapi.limits import FloodLimits
from tests.botapi.model import (
    ApiError,
    Call,
    CallbackAnswer,
    InviteLinkState,
    JoinRequestState,
    MemberState,
    Reaction,
)
from tests.botapi.server import SECRET_HEADER, LocalBotAPI

__all__ = [
    "SECRET_HEADER",
    "ApiError",
    "Call",
    "CallbackAnswer",
    "FloodLimits",
    "InviteLinkState",
    "JoinRequestState",
    "LocalBotAPI",
    "MemberState",
    "Reaction",
]
