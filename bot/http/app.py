"""The FastAPI application: health, readiness and the Telegram webhook; routes stay thin."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from aiogram import Bot, Dispatcher
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True)
class TelegramWebhook:
    dispatcher: Dispatcher
    bot: Bot
    secret: str


def create_app(engine: AsyncEngine, telegram: TelegramWebhook | None = None) -> FastAPI:
    app = FastAPI(title="funnelbot", version="0.1.0")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # any database failure means not ready
            return JSONResponse({"status": "unavailable", "reason": str(exc)[:200]}, 503)
        return JSONResponse({"status": "ready"})

    @app.post("/telegram/webhook", include_in_schema=telegram is not None)
    async def telegram_webhook(
        request: Request,
        secret: str | None = Header(default=None, alias="X-Telegram-Bot-Api-Secret-Token"),
    ) -> JSONResponse:
        """Telegram updates in webhook mode; the secret header must match."""
        if telegram is None:
            return JSONResponse({"error": "webhook mode is off"}, 404)
        if secret is None or not hmac.compare_digest(secret, telegram.secret):
            return JSONResponse({"error": "bad or missing secret token"}, 401)
        try:
            update: Any = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, 400)
        if not isinstance(update, dict) or "update_id" not in update:
            return JSONResponse({"error": "the body is not a Telegram update"}, 422)
        # Handled before answering: Telegram re-sends an update until it gets a 2xx.
        await telegram.dispatcher.feed_raw_update(telegram.bot, update)
        return JSONResponse({"ok": True})

    return app
