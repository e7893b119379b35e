"""A cohort's leader in its group: ``/status``, ``/pause`` and ``/resume``, ``/retry``
and ``/skip`` of a step in doubt."""

from __future__ import annotations

from typing import Literal

from aiogram.filters import CommandObject
from aiogram.types import Message

from bot.telegram.routers.refusals import refusal_text
from bot.telegram.services import Services
from funnels.cohorts.lifecycle import PauseCohort, ResumeCohort
from funnels.cohorts.pauses import PauseReason
from funnels.cohorts.status import CohortStatus
from funnels.kernel.actor import Actor
from funnels.kernel.records import CohortRecord, StepRunRecord
from funnels.kernel.refusals import Refused
from funnels.kernel.stages import Stage
from funnels.ops.steps import DecideStepInGroup


async def status(
    message: Message, services: Services, actor: Actor, locale: str, is_admin: bool
) -> None:
    try:
        view = await CohortStatus(services.deps)(
            chat_id=message.chat.id, actor=actor, is_admin=is_admin
        )
    except Refused as refused:
        await services.say(message.chat.id, refusal_text(services, locale, refused, {}))
        return
    cohort = view.cohort
    if view.next_step is not None:
        when = services.catalog.when(locale, view.next_step.due_at, cohort.timezone)
        next_text = f"{view.next_step.key} · {when}"
    else:
        next_text = services.text(locale, "status.nothing_next")
    lines = [
        services.text(
            locale,
            "status.body",
            code=cohort.code,
            status=services.text(locale, f"status.name.{cohort.status}"),
            day=view.day,
            days=view.days,
            joined=view.counts[Stage.JOINED],
            engaged=view.counts[Stage.ENGAGED],
            replied=view.counts[Stage.REPLIED],
            admitted=view.counts[Stage.ADMITTED],
            next=next_text,
        )
    ]
    if view.parent is not None:
        lines.append(
            services.text(
                locale, "status.line_from", generation=cohort.generation, parent=view.parent.code
            )
        )
    else:
        lines.append(services.text(locale, "status.line_own", generation=cohort.generation))
    lines.append(admission_line(services, locale, cohort))
    if cohort.status == "paused" and cohort.status_reason:
        reason = services.renderer.pause_reason(locale, PauseReason.parse(cohort.status_reason))
        lines.append(services.text(locale, "status.reason", reason=reason))
    lines.extend(_attention_lines(services, locale, view.attention))
    await services.say(message.chat.id, "\n".join(lines))


def admission_line(services: Services, locale: str, cohort: CohortRecord) -> str:
    """How responders get into the cohort's task group, as /launch and /status say it."""
    mode = services.text(locale, f"admission.mode.{cohort.admission}")
    return services.text(locale, "cohort.admission", mode=mode)


async def pause_or_resume(
    message: Message,
    command: CommandObject,
    services: Services,
    actor: Actor,
    locale: str,
    is_admin: bool,
) -> None:
    """``/pause`` and ``/resume``."""
    pausing = command.command == "pause"
    use = PauseCohort(services.deps) if pausing else ResumeCohort(services.deps)
    try:
        cohort = await use(chat_id=message.chat.id, actor=actor, is_admin=is_admin)
    except Refused as refused:
        text = refusal_text(services, locale, refused, {})
    else:
        services.chats.forget(message.chat.id)
        done = "pause.done" if pausing else "resume.done"
        text = services.text(locale, done, code=cohort.code)
    await services.say(message.chat.id, text)


# ---------------------------------------------------------------- /retry, /skip

_STEPS = {
    "step_usage": "step.usage",
    "no_step": "step.no_step",
    "cannot_retry": "step.cannot_retry",
    "cannot_skip": "step.cannot_skip",
    "step_waiting": "step.waiting",
}


_SHOWN = 10  # steps named in one /status line


def _attention_lines(services: Services, locale: str, runs: list[StepRunRecord]) -> list[str]:
    """What /status says about steps in doubt: which, what waits on them, and how to
    decide."""
    undecided = [r for r in runs if r.status != "held"]
    held = [r.key for r in runs if r.status == "held"]
    lines = []
    if undecided:
        steps = ", ".join(
            f"{r.key} ({services.text(locale, f'step.state.{r.status}')})"
            for r in undecided[:_SHOWN]
        )
        lines.append(services.text(locale, "status.attention", count=len(undecided), steps=steps))
    if held:
        lines.append(services.text(locale, "status.held", steps=", ".join(held[:_SHOWN])))
    if undecided:
        lines.append(services.text(locale, "status.decide", step=undecided[0].key))
    return lines


async def decide_step(
    message: Message,
    command: CommandObject,
    services: Services,
    actor: Actor,
    locale: str,
    is_admin: bool,
) -> None:
    """``/retry KEY`` and ``/skip KEY``: a step in doubt, decided."""
    action: Literal["retry", "skip"] = "retry" if command.command == "retry" else "skip"
    words = (command.args or "").split()
    try:
        # The use case checks who asks before it looks at the key.
        decided = await DecideStepInGroup(services.deps)(
            chat_id=message.chat.id,
            actor=actor,
            is_admin=is_admin,
            action=action,
            key=words[0] if len(words) == 1 else None,
        )
    except Refused as refused:
        if refused.code in ("cannot_retry", "cannot_skip"):  # the state, in words
            state = services.text(locale, f"step.state.{refused.params['status']}")
            refused = Refused(refused.code, **{**refused.params, "status": state})
        text = refusal_text(services, locale, refused, _STEPS)
    else:
        done = "step.retried" if action == "retry" else "step.skipped"
        text = services.text(locale, done, step=decided.key)
        if decided.resumed:
            goes_on = services.text(locale, "step.talk_goes_on", steps=", ".join(decided.resumed))
            text += "\n" + goes_on
    await services.say(message.chat.id, text, reply_to=message.message_id)
