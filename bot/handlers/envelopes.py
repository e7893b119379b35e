"""Taps on a red envelope's Grab button: claimed durably, then answered at once.

The answer goes straight to Telegram (callback answers are not bulk sends and must beat
the callback timeout); the summary edit after the last share comes afterwards.
"""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery

from bot.render import Grab
from bot.services import Services
from funnels.cohorts import CloseEnvelope

log = logging.getLogger("funnelbot.bot")


async def grab(query: CallbackQuery, callback_data: Grab, services: Services) -> None:
    envelope_id = callback_data.envelope
    try:
        user_id, locale = await services.users.get(query.from_user)
        claim = await services.taps.claim(envelope_id, user_id, query.id)
    except Exception:
        log.exception("tap on envelope %s by %s failed", envelope_id, query.from_user.id)
        locale = await _fallback_locale(services, query)
        await _answer(query, services.text(locale, "envelope.busy"))
        return
    c = services.catalog
    if claim.outcome in ("claimed", "already"):
        amount = c.money(locale, claim.amount_minor, claim.currency or "USD")
        key = "envelope.already" if claim.outcome == "already" else "envelope.grabbed"
        if claim.outcome == "claimed" and claim.last_share:
            key = "envelope.grabbed_last"
        text = c.text(locale, key, amount=amount)
    else:
        text = c.text(locale, f"envelope.{claim.outcome}")
    await _answer(query, text, alert=claim.outcome == "claimed")
    if claim.last_share:
        await CloseEnvelope(services.deps)(envelope_id)


async def _answer(query: CallbackQuery, text: str, *, alert: bool = False) -> None:
    try:
        await query.answer(text, show_alert=alert)
    except TelegramBadRequest as exc:
        # A re-delivered tap whose query was answered already, or one that waited too
        # long: the claim is stored either way, and the member sees it in /balance.
        log.info("tap not answered: %s", exc.message)


async def _fallback_locale(services: Services, query: CallbackQuery) -> str:
    from bot.i18n import negotiate

    return negotiate(query.from_user.language_code)


def register(router: Router) -> None:
    router.callback_query.register(grab, Grab.filter())
