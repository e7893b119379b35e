"""``POST /telegram/webhook``: Telegram's updates in webhook mode, stored in the update
inbox before they are answered 200; anything that is not an update gets a clear 4xx,
as RFC 9457 problem details like every error of the app."""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response

from bot.http.bodies import TooLarge, read_body
from bot.http.front import FastRoute
from bot.http.problems import documented, problem
from bot.telegram.inbox import UpdateInbox
from bot.telegram.updates import BadUpdate, check_update

log = logging.getLogger("funnelbot.http")

PATH = "/telegram/webhook"
SECRET_HEADER = "x-telegram-bot-api-secret-token"
MAX_UPDATE_BYTES = 1024 * 1024
"""Telegram's updates are a few kilobytes; a message is at most 4,096 characters."""


@dataclass(frozen=True)
class TelegramWebhook:
    inbox: UpdateInbox
    secret: str


def routes(telegram: TelegramWebhook | None) -> APIRouter:
    """The webhook route; with ``telegram`` None (long polling) it answers 404."""
    router = APIRouter()

    @router.post(
        PATH,
        include_in_schema=telegram is not None,
        responses={
            **documented(404),
            400: {"description": "not JSON, or not a Telegram update (named)"},
            401: {"description": "a bad or missing secret token: nothing stored"},
            413: {"description": f"the body is larger than {MAX_UPDATE_BYTES} bytes"},
            503: {"description": "not stored: Telegram sends it again"},
        },
    )
    async def telegram_webhook(
        request: Request,
        secret: str | None = Header(default=None, alias="X-Telegram-Bot-Api-Secret-Token"),
    ) -> Response:
        """Telegram updates in webhook mode; the secret header must match. The answer is
        200 once the update is stored, whatever its handling does later (Telegram sends
        an update again until it gets a 2xx); for a tap on a red envelope, once its share
        is claimed, with the tap's answer as the method call in the reply."""
        return await answer(request, telegram)

    return router


def fast_route(telegram: TelegramWebhook) -> FastRoute:
    """``POST /telegram/webhook`` for the front door (:mod:`bot.http.front`): it reads its
    body raw and needs nothing FastAPI adds per request. The FastAPI route of the same
    path (:func:`routes`) documents it."""

    async def webhook(request: Request) -> Response:
        return await answer(request, telegram)

    return FastRoute(PATH, frozenset({"POST"}), webhook)


async def answer(request: Request, telegram: TelegramWebhook | None) -> Response:
    """One update: checked, stored (or, for a tap, claimed), and answered."""
    if telegram is None:
        return problem(404, "Not found", "webhook mode is off: the bot polls Telegram")
    secret = request.headers.get(SECRET_HEADER)
    if secret is None or not hmac.compare_digest(
        secret.encode("utf-8", "surrogateescape"), telegram.secret.encode()
    ):
        return problem(401, "Bad secret token", "bad or missing secret token; nothing stored")
    try:
        body = await read_body(request, MAX_UPDATE_BYTES)
    except TooLarge:
        return problem(413, "Body too large", f"the limit is {MAX_UPDATE_BYTES} bytes")
    try:
        update = check_update(json.loads(body))
    except RecursionError:
        return problem(400, "Not JSON", "the body is JSON nested too deeply")
    except BadUpdate as exc:
        return problem(400, "Not a Telegram update", f"not a Telegram update: {exc}")
    except ValueError:  # not JSON, not UTF-8, a number too long to read
        return problem(400, "Not JSON", "the body is not JSON")
    try:
        # A tap's answer goes back in this reply, as the method call Telegram makes.
        reply = await telegram.inbox.accept_one(update)
    except Exception as exc:  # not stored: Telegram must send it again
        log.error("could not store update %s: %s", update["update_id"], exc)
        return problem(
            503,
            "Not stored",
            "the update could not be stored; send it again",
            headers={"Retry-After": "5"},
        )
    return JSONResponse(reply if reply is not None else {"ok": True})
