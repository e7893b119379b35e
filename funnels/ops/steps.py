"""Deciding on a step the tick could not settle: retry it or skip it.

A run whose send outcome is unknown (the process died mid-send, or Telegram's answer was
lost) or that Telegram refused (``failed``) is never re-sent on its own. Ops
(``funnelbot step retry|skip``) or the cohort's leader (``/retry``, ``/skip`` in the
group) decide: a retry sends it again at the next tick, whatever its lateness; a skip
marks it skipped and the cohort moves past it. Either way the later parts of its talk,
``held`` meanwhile, go on in order, keeping the talk's pace from the decision on.

Refusals are :class:`funnels.kernel.refusals.Refused` with a code the bot and the CLI word.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from funnels.cohorts.lifecycle import leaders_cohort
from funnels.deps import Deps
from funnels.kernel.actions import log_action
from funnels.kernel.actor import Actor, OpsAuthor
from funnels.kernel.messaging import DeliveryError
from funnels.kernel.records import CohortRecord, StepRunRecord
from funnels.kernel.refusals import Refused
from funnels.ops.ports import OpsTx

RETRYABLE = ("unknown", "failed", "skipped")
SKIPPABLE = ("unknown", "failed")
NEEDS_ATTENTION = ("unknown", "failed", "held")

# Longer than any stored key or code (step_runs.key is 96 characters): refused unread.
_MAX_KEY = 96
_MAX_CODE = 16


@dataclass(frozen=True, slots=True)
class Decided:
    cohort: CohortRecord
    key: str
    resumed: list[str] = field(default_factory=list)
    """Talk parts that were held behind the step and go on now."""


def _plausible(text: str, longest: int) -> bool:
    return 0 < len(text) <= longest and text.isprintable() and not any(c.isspace() for c in text)


async def _cohort(tx: OpsTx, code: str) -> CohortRecord:
    code = code.strip().upper()
    cohort = await tx.cohorts.by_code(code) if _plausible(code, _MAX_CODE) else None
    if cohort is None:
        raise Refused("no_cohort", code=code)
    return cohort


async def _step(tx: OpsTx, cohort: CohortRecord, key: str) -> StepRunRecord:
    key = key.strip()
    run = await tx.steps.get(cohort.id, key) if _plausible(key, _MAX_KEY) else None
    if run is None:
        raise Refused("no_step", step=key, code=cohort.code)
    if run.status == "held":
        parts = await tx.steps.talk_parts(cohort.id, run.source)
        blocking = next(
            (
                p.key
                for p in parts
                if p.status in ("unknown", "failed") and (p.part or 0) < (run.part or 0)
            ),
            run.key,
        )
        raise Refused("step_waiting", step=run.key, on=blocking)
    return run


async def _refuse_changed(
    tx: OpsTx, run: StepRunRecord, code: Literal["cannot_retry", "cannot_skip"]
) -> Refused:
    """The refusal for a run not (or no longer: another process decided first) in a
    state that allows the decision, with the state it is in now."""
    current = await tx.steps.get(run.cohort_id, run.key)
    return Refused(code, step=run.key, status=current.status if current else run.status)


async def _resume_held(
    tx: OpsTx, run: StepRunRecord, now: datetime, anchor: datetime | None
) -> list[str]:
    """Let the talk parts held behind ``run`` go on. Their due times move by how late the
    decision came, measured from ``anchor`` (the retried part's old due time) or else from
    the first held part's: the talk keeps its pace instead of pouring out in one tick,
    and no part becomes late enough for a ``late: skip`` talk to drop it."""
    if not run.kind.is_talk_part:  # a warm-up talk's part, or a member group's
        return []
    held = [
        p
        for p in await tx.steps.talk_parts(run.cohort_id, run.source)
        if p.status == "held" and (p.part or 0) > (run.part or 0)
    ]
    if not held:
        return []
    shift = max(now - (anchor or held[0].due_at), timedelta(0))
    for part in held:
        await tx.steps.release_held(part.id, part.due_at + shift)
    return [p.key for p in held]


class RetryStep:
    """Send a step again at the next tick: one whose outcome is unknown, that failed or
    that was skipped. A step already done is final; a held one waits for its talk's
    earlier part to be decided."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, code: str, key: str, *, by: str, author: OpsAuthor | None = None
    ) -> Decided:
        """``by`` goes into the step's record; ``author`` (someone in ops: the command
        line, an API key) also into the cohort's timeline."""
        now = self.deps.clock.now()
        async with self.deps.uow(OpsTx).transaction() as tx:
            cohort = await _cohort(tx, code)
            run = await _step(tx, cohort, key)
            if run.status not in RETRYABLE or not await tx.steps.retry(cohort.id, run.key, now, by):
                raise await _refuse_changed(tx, run, "cannot_retry")
            resumed = await _resume_held(tx, run, now, anchor=run.due_at)
            await log_action(tx.ops_actions, cohort.id, author, "retry", run.key, now)
            await tx.commit()
        return Decided(cohort, run.key, resumed)


class SkipStep:
    """Give up on a step whose outcome is unknown or that failed: it is marked skipped,
    with who decided, and the cohort (or its talk) moves past it."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, code: str, key: str, *, by: str, author: OpsAuthor | None = None
    ) -> Decided:
        """``by`` and ``author`` as for :class:`RetryStep`."""
        now = self.deps.clock.now()
        async with self.deps.uow(OpsTx).transaction() as tx:
            cohort = await _cohort(tx, code)
            run = await _step(tx, cohort, key)
            skipped = run.status in SKIPPABLE and await tx.steps.skip(
                cohort.id, run.key, now, f"skipped by {by}"
            )
            if not skipped:
                raise await _refuse_changed(tx, run, "cannot_skip")
            resumed = await _resume_held(tx, run, now, anchor=None)
            await log_action(tx.ops_actions, cohort.id, author, "skip", run.key, now)
            await tx.commit()
        if not resumed:
            await self._end_talk(cohort, run)
        return Decided(cohort, run.key, resumed)

    async def _end_talk(self, cohort: CohortRecord, run: StepRunRecord) -> None:
        """A talk's last part skipped: nothing else will lift its slow mode. (Kept by the
        process that runs the bot: a skip from the command line leaves it to the
        restart.)"""
        if run.kind != "talk_part" or cohort.warmup_chat_id is None:
            return
        talk = self.deps.scripts.get(cohort).step(run.source).talk
        if talk is None or not talk.slow_mode or (run.part or 0) != len(talk.parts) - 1:
            return
        with contextlib.suppress(DeliveryError):
            await self.deps.messenger.set_slow_mode(cohort.warmup_chat_id, 0)


class StepsNeedingAttention:
    """A cohort's steps that wait for a decision: unknown, failed, or held behind one."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, code: str) -> tuple[CohortRecord, list[StepRunRecord]]:
        async with self.deps.uow(OpsTx).transaction() as tx:
            cohort = await _cohort(tx, code)
            return cohort, await tx.steps.attention(cohort.id)


class DecideStepInGroup:
    """``/retry KEY`` and ``/skip KEY`` in a cohort's group, for its leader or an admin.

    Who asks is checked before what they asked for: a member gets the same refusal
    whatever they typed after the command.
    """

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self,
        *,
        chat_id: int,
        actor: Actor,
        is_admin: bool,
        action: Literal["retry", "skip"],
        key: str | None,
    ) -> Decided:
        cohort = await leaders_cohort(self.deps, chat_id, actor, is_admin)
        if not key:
            raise Refused("step_usage", command=action)
        by = f"{actor.name} (Telegram {actor.telegram_id})"
        use = RetryStep(self.deps) if action == "retry" else SkipStep(self.deps)
        return await use(cohort.code, key, by=by)
