"""The FastAPI application: one routes module per area, put together here."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.http import health, links as tracked_links, webhook
from bot.http.links import LinkRedirects
from bot.http.webhook import TelegramWebhook


def create_app(
    engine: AsyncEngine,
    telegram: TelegramWebhook | None = None,
    *,
    links: LinkRedirects | None = None,
) -> FastAPI:
    app = FastAPI(title="funnelbot", version="0.1.0")
    app.include_router(health.routes(engine))
    app.include_router(webhook.routes(telegram))
    tracked_links.install(app, links)
    return app
