"""``POST /telegram/webhook``: Telegram's updates in webhook mode, stored in the update
inbox before they are answered 200; anything that is not an update gets a clear 4xx."""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from bot.http.bodies import TooLarge, read_body
from bot.telegram.inbox import UpdateInbox
from bot.telegram.updates import BadUpdate, check_update

log = logging.getLogger("funnelbot.http")

MAX_UPDATE_BYTES = 1024 * 1024
"""Telegram's updates are a few kilobytes; a message is at most 4,096 characters."""


@dataclass(frozen=True)
class TelegramWebhook:
    inbox: UpdateInbox
    secret: str


def routes(telegram: TelegramWebhook | None) -> APIRouter:
    """The webhook route; with ``telegram`` None (long polling) it answers 404."""
    router = APIRouter()

    @router.post("/telegram/webhook", include_in_schema=telegram is not None)
    async def telegram_webhook(
        request: Request,
        secret: str | None = Header(default=None, alias="X-Telegram-Bot-Api-Secret-Token"),
    ) -> JSONResponse:
        """Telegram updates in webhook mode; the secret header must match. The answer is
        200 once the update is stored, whatever its handling does later (Telegram sends
        an update again until it gets a 2xx)."""
        if telegram is None:
            return JSONResponse({"error": "webhook mode is off"}, 404)
        if secret is None or not hmac.compare_digest(
            secret.encode("utf-8", "surrogateescape"), telegram.secret.encode()
        ):
            return JSONResponse({"error": "bad or missing secret token"}, 401)
        try:
            body = await read_body(request, MAX_UPDATE_BYTES)
        except TooLarge:
            return JSONResponse({"error": f"the body is larger than {MAX_UPDATE_BYTES} bytes"}, 413)
        try:
            update = check_update(json.loads(body))
        except RecursionError:
            return JSONResponse({"error": "the body is JSON nested too deeply"}, 400)
        except BadUpdate as exc:
            return JSONResponse({"error": f"not a Telegram update: {exc}"}, 400)
        except ValueError:  # not JSON, not UTF-8, a number too long to read
            return JSONResponse({"error": "the body is not JSON"}, 400)
        try:
            await telegram.inbox.accept([update])
        except Exception as exc:  # not stored: Telegram must send it again
            log.error("could not store update %s: %s", update["update_id"], exc)
            return JSONResponse(
                {"error": "the update could not be stored; send it again"},
                503,
                headers={"Retry-After": "5"},
            )
        return JSONResponse({"ok": True})

    return router
