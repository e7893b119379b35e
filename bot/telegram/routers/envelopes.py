"""Taps on a red envelope's Grab button: claimed durably, then answered at once.

A crowd's taps are the bot's hottest path, so the dispatcher reads them straight from
the raw update (:func:`read_tap`, called by ``FunnelDispatcher.feed_raw_update``) without
building aiogram's models; a tap given as a parsed update (or one the quick reading does
not recognise) reaches the same :func:`grab` through the registered handler. The answer
goes out on the direct connections (callback answers are not bulk sends and must beat
the callback timeout), or in webhook mode as the method call in the webhook's own reply
(:meth:`TapAnswer.method`: one request fewer per tap); the summary edit after the last
share comes afterwards.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery

from bot import metrics
from bot.telegram.i18n import negotiate
from bot.telegram.raw import Sender, read_sender
from bot.telegram.routers.filters import EnvelopeTap
from bot.telegram.services import Services
from funnels.warmup.envelopes import CloseEnvelope

log = logging.getLogger("funnelbot.bot")


@dataclass(frozen=True, slots=True)
class Tap:
    query_id: str
    envelope_id: int
    user: Sender

    @classmethod
    def of(cls, query: CallbackQuery, envelope_id: int) -> Tap:
        user = query.from_user
        return cls(query.id, envelope_id, Sender(user.id, user.full_name, user.language_code))


def read_tap(update: dict[str, Any]) -> Tap | None:
    """The tap in a raw update, or None for anything else (or anything not well formed,
    which then takes aiogram's way and meets its validation)."""
    query = update.get("callback_query")
    if not isinstance(query, dict):
        return None
    data, query_id = query.get("data"), query.get("id")
    if not (isinstance(data, str) and isinstance(query_id, str)):
        return None
    envelope_id = EnvelopeTap.envelope_of(data)
    user = read_sender(query.get("from"))
    if envelope_id is None or user is None:
        return None
    return Tap(query_id, envelope_id, user)


@dataclass(frozen=True, slots=True)
class TapAnswer:
    """What a tap is answered (its callback answer), and the envelope to close after the
    answer when the tap took its last share."""

    text: str
    alert: bool
    close: int | None = None

    def method(self, query_id: str) -> dict[str, Any]:
        """The answer as a Bot API method call (for a webhook's reply)."""
        return {
            "method": "answerCallbackQuery",
            "callback_query_id": query_id,
            "text": self.text,
            "show_alert": self.alert,
        }


async def settle(tap: Tap, services: Services) -> TapAnswer:
    """Claim the tap's share (durably) and word its answer."""
    try:
        user_id, locale = await services.users.get(tap.user)
        claim = await services.taps.claim(tap.envelope_id, user_id, tap.query_id)
    except Exception:
        log.exception("tap on envelope %s by %s failed", tap.envelope_id, tap.user.id)
        return TapAnswer(services.text(negotiate(tap.user.language_code), "envelope.busy"), False)
    c = services.catalog
    if claim.outcome in ("claimed", "already") and claim.currency:  # a share has its money
        amount = c.money(locale, claim.amount_minor, claim.currency)
        key = "envelope.already" if claim.outcome == "already" else "envelope.grabbed"
        if claim.outcome == "claimed" and claim.last_share:
            key = "envelope.grabbed_last"
        text = c.text(locale, key, amount=amount)
    else:
        text = c.text(locale, f"envelope.{claim.outcome}")
    metrics.ENVELOPE_CLAIMS.labels(claim.outcome).inc()
    close = tap.envelope_id if claim.last_share else None
    return TapAnswer(text, claim.outcome == "claimed", close)


async def close_after(answer: TapAnswer, services: Services) -> None:
    """After the answer: the envelope whose last share went is closed (its summary)."""
    if answer.close is not None:
        await CloseEnvelope(services.deps)(answer.close)


async def grab(tap: Tap, services: Services) -> None:
    """Claim the tap's share and answer it on the direct connections."""
    began = time.perf_counter()
    answer = await settle(tap, services)
    await _answer(services, tap, answer.text, alert=answer.alert)
    metrics.TAP_ANSWER.observe(time.perf_counter() - began)
    await close_after(answer, services)


async def _answer(services: Services, tap: Tap, text: str, *, alert: bool = False) -> None:
    try:
        await services.direct.answer_callback(tap.query_id, text, alert=alert)
    except TelegramBadRequest as exc:
        # A re-delivered tap whose query was answered already, or one that waited too
        # long: the claim is stored either way, and the member sees it in /balance.
        log.info("tap not answered: %s", exc.message)


async def on_tap(query: CallbackQuery, envelope_id: int, services: Services) -> None:
    await grab(Tap.of(query, envelope_id), services)


def register(router: Router) -> None:
    router.callback_query.register(on_tap, EnvelopeTap())
