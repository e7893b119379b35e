"""Proof tasks in private chat: a member's screenshot (and, when several proof tasks are
open, which task it is for), and the leader's Approve / Reject under it."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.telegram.render import ProofFor, ProofVerdict
from bot.telegram.routers.filters import Button, HasPhoto, InPrivate
from bot.telegram.routers.middleware import WhoAsks
from bot.telegram.services import Services
from funnels.kernel.actor import Actor
from funnels.kernel.refusals import Refused
from funnels.kernel.text import cut
from funnels.ladder.proofs import REJECT_REASONS, DecideProof, ProofChoice, ProofSent, SubmitProof

log = logging.getLogger("funnelbot.bot")

_SUBMIT_REFUSALS = {
    "proof_no_task": "proof.no_task",
    "proof_pending": "proof.pending",
    "button_stale": "tasks.button_stale",
}
_DECIDE_REFUSALS = {
    "proof_unknown": "proof.unknown",
    "proof_not_yours": "proof.not_yours",
    "button_stale": "tasks.button_stale",
}


async def _answer(query: CallbackQuery, text: str = "") -> None:
    """Answer a tap; Telegram takes at most 200 characters (a task title can be long)."""
    await query.answer(cut(text, 200) if text else None)


async def _sent(services: Services, chat_id: int, locale: str, sent: ProofSent) -> None:
    if not sent.reached_leader:  # kept pending, but no one has it to decide: tell ops
        log.warning("proof %s is pending but its leader could not be reached", sent.proof_id)
    await services.say(chat_id, services.text(locale, "proof.sent", title=sent.task_title))


def _refusal(services: Services, locale: str, refused: Refused, keys: dict[str, str]) -> str:
    if refused.code == "proof_decided":
        return services.text(locale, f"proof.decided_{refused.params.get('state')}")
    key = keys.get(refused.code, "error.generic")
    return services.text(locale, key, **refused.params)


async def screenshot(message: Message, services: Services, actor: Actor, locale: str) -> None:
    assert message.photo  # the filter let only photos through
    try:
        outcome = await SubmitProof(services.deps)(actor, message.photo[-1].file_id)
    except Refused as refused:
        await services.say(message.chat.id, _refusal(services, locale, refused, _SUBMIT_REFUSALS))
        return
    if isinstance(outcome, ProofChoice):
        # The question replies to the photo: the pick finds the photo there, so nothing
        # is stored until the member says which task it is for.
        rows = [
            [
                InlineKeyboardButton(
                    text=cut(title, 60),
                    callback_data=ProofFor(cohort=outcome.cohort_id, task=index).pack(),
                )
            ]
            for index, title in outcome.options
        ]
        await services.say(
            message.chat.id,
            services.text(locale, "proof.which"),
            reply_to=message.message_id,
            keyboard=InlineKeyboardMarkup(inline_keyboard=rows),
        )
        return
    await services.say(
        message.chat.id, services.text(locale, "proof.sent", title=outcome.task_title)
    )


async def picked(
    query: CallbackQuery, button: ProofFor | None, services: Services, actor: Actor, locale: str
) -> None:
    asked = query.message if isinstance(query.message, Message) else None
    photo = asked.reply_to_message.photo if asked and asked.reply_to_message else None
    if button is None:
        await _answer(query, services.text(locale, "tasks.button_stale"))
        return
    if not photo:
        await _answer(query, services.text(locale, "proof.resend"))
        return
    try:
        outcome = await SubmitProof(services.deps)(
            actor, photo[-1].file_id, (button.cohort, button.task)
        )
    except Refused as refused:
        await _answer(query, _refusal(services, locale, refused, _SUBMIT_REFUSALS))
        return
    await _answer(query)
    assert not isinstance(outcome, ProofChoice)  # a pick names one task
    if asked is not None:
        await services.edit_buttons(asked.chat.id, asked.message_id)
    await services.say(
        actor.telegram_id, services.text(locale, "proof.sent", title=outcome.task_title)
    )


async def verdict(
    query: CallbackQuery,
    button: ProofVerdict | None,
    services: Services,
    actor: Actor,
    locale: str,
    is_admin: bool,
) -> None:
    """Approve, Reject (then a reason) or Back, under a screenshot in the leader's chat."""
    decide = DecideProof(services.deps)
    review = query.message if isinstance(query.message, Message) else None
    try:
        if button is None:
            raise Refused("button_stale")
        if button.verdict in ("no", "back"):
            await decide.check(actor, button.proof, is_admin=is_admin)
            reasons = REJECT_REASONS if button.verdict == "no" else ()
            await _answer(query)
            if review is not None:
                keyboard = services.renderer.proof_keyboard(locale, button.proof, reasons=reasons)
                await services.edit_buttons(review.chat.id, review.message_id, keyboard=keyboard)
            return
        approve = button.verdict == "ok"
        decision = await decide(
            actor,
            button.proof,
            approve=approve,
            reason=None if approve else button.verdict,
            is_admin=is_admin,
        )
    except Refused as refused:
        await _answer(query, _refusal(services, locale, refused, _DECIDE_REFUSALS))
        return
    if approve:
        note = services.text(locale, "proof.done_approved")
    else:
        reason = services.text(locale, f"proof.reason.{decision.proof.reason}")
        note = services.text(locale, "proof.done_rejected", reason=reason)
    await _answer(query, note)
    if review is not None:
        caption = f"{review.caption or ''}\n\n{note}".strip()
        await services.edit_buttons(review.chat.id, review.message_id, caption=caption)


def make_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="proofs")
    router.message.middleware(WhoAsks())
    router.callback_query.middleware(WhoAsks())
    router.message.filter(InPrivate())
    router.message.register(screenshot, HasPhoto())
    router.callback_query.register(picked, Button(ProofFor))
    router.callback_query.register(verdict, Button(ProofVerdict))
    return router
