"""API keys on the HTTP API: ``Authorization: Bearer <key>`` (``funnelbot apikey
create``), checked on every request to the stats and ops routes; a missing, unknown or
revoked key is a 401 problem that says which."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bot.http.problems import ApiProblem
from bot.http.rates import KeyRates
from funnels.deps import Deps
from funnels.kernel.records import ApiKeyRecord
from funnels.ops.board import FiguresBoard
from funnels.ops.keys import Authenticate

_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="api key",
    description="A key from `funnelbot apikey create NAME`, as `Authorization: Bearer KEY`.",
)


def _refused(detail: str, *, presented: bool) -> ApiProblem:
    challenge = 'Bearer realm="funnelbot"'
    if presented:
        challenge += ', error="invalid_token"'
    return ApiProblem(401, "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


def api_key(
    deps: Deps, board: FiguresBoard | None = None, rates: KeyRates | None = None
) -> Callable[..., Awaitable[ApiKeyRecord]]:
    """A FastAPI dependency: the request's API key, or a 401 problem (a 429 one past the
    key's ``rates``). With a figures board, a key it holds costs no statement (one it
    does not hold is looked up: it may be a minute old)."""
    authenticate = Authenticate(deps)

    async def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
    ) -> ApiKeyRecord:
        if credentials is None:
            raise _refused(
                "send an API key as `Authorization: Bearer KEY` "
                "(make one with `funnelbot apikey create NAME`)",
                presented=False,
            )
        presented = credentials.credentials.strip()
        key = board.key(presented) if board is not None and board.ready else None
        if key is None:
            key = await authenticate(presented)
        if key is None:
            raise _refused("the API key is unknown or revoked", presented=True)
        if rates is not None:
            await rates.check(key.id, key.name)
        return key

    return check
