"""What each kind of step run does when it falls due: one executor per ``PlanKind``.

The tick (:mod:`funnels.cohorts.tick`) claims a run and hands it here; the ``match``
covers every kind, so a new kind does not type-check until it has an executor. An
executor returns what to keep in the run's outcome; it raises ``DeliveryError`` (the
send failed or its outcome is unknown), ``ChatUnavailable`` (the bot lost the group) or
:class:`Postponed` (not yet: nothing was done).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import assert_never

from funnels.cohorts.member_groups import GroupTalkPart
from funnels.cohorts.ports import CohortsTx
from funnels.cohorts.talks import Outcome, post_talk_part
from funnels.deps import Deps
from funnels.kernel.messaging import DeliveryError, ScriptPost, TasksUnlocked, UnlockedTask
from funnels.kernel.money import to_minor
from funnels.kernel.records import CohortRecord, PlanKind, StepRunRecord
from funnels.kernel.text import cut
from funnels.scripts.model import Script, Task
from funnels.scripts.variants import cohort_arm, with_arm
from funnels.warmup.envelopes import CloseEnvelope, OpenEnvelope

UNTOLD_LISTED = 20
"""Members named in the day's message for rewards they could not be told of privately;
past that, how many more."""


class Postponed(Exception):
    """The run is not due after all (a pitch posted late keeps its full reply window, an
    envelope its full time to grab)."""

    def __init__(self, until: datetime) -> None:
        super().__init__(until.isoformat())
        self.until = until


def _mismatch(step_id: str, kind: str) -> DeliveryError:
    """A run whose step is not of its kind in the cohort's script (the plan and the
    stored script disagree): failed, never sent."""
    return DeliveryError(f"step {step_id!r} is not a {kind} in this cohort's script", definite=True)


class StepExecutor:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, run: StepRunRecord, cohort: CohortRecord, script: Script) -> Outcome:
        if run.kind is PlanKind.TASK_UNLOCK:
            return await self._unlock_task(cohort, script, run.source)
        if run.kind is PlanKind.GROUP_TALK_PART:  # in a member's group, not the warm-up's
            return await GroupTalkPart(self.deps)(run, cohort, script)
        chat = cohort.warmup_chat_id
        if chat is None:
            return {"note": "no warm-up group bound"}
        match run.kind:
            case PlanKind.POST:
                return await self._post(cohort, script, run.source, chat)
            case PlanKind.TALK_PART:
                return await self._talk_part(run, cohort, script, chat)
            case PlanKind.RED_ENVELOPE:
                return await OpenEnvelope(self.deps)(cohort, script, run.source, chat)
            case PlanKind.ENVELOPE_CLOSE:
                return await self._close_envelope(cohort, run.source)
            case PlanKind.PITCH:
                return await self._pitch(cohort, script, run.source, chat)
            case PlanKind.PITCH_CLOSE:
                return await self._close_pitch(cohort)
            case PlanKind.TASK_UNLOCK | PlanKind.GROUP_TALK_PART:  # handled above
                raise AssertionError("unreachable")
            case _:
                assert_never(run.kind)

    async def _post(self, cohort: CohortRecord, script: Script, step_id: str, chat: int) -> Outcome:
        post = script.step(step_id).post
        if post is None:
            raise _mismatch(step_id, "post")
        arm = cohort_arm(post, cohort.code, step_id)
        message = ScriptPost(arm.text, arm.media, cohort.locale)
        message_id = await self.deps.messenger.send(chat, message, pin=post.pin)
        return with_arm({"message_id": message_id}, post, arm)

    async def _talk_part(
        self, run: StepRunRecord, cohort: CohortRecord, script: Script, chat: int
    ) -> Outcome:
        talk = script.step(run.source).talk
        if talk is None:
            raise _mismatch(run.source, "talk")
        return await post_talk_part(self.deps, run, talk, chat, cohort.locale, cohort.code)

    async def _close_envelope(self, cohort: CohortRecord, step_key: str) -> Outcome:
        async with self.deps.uow(CohortsTx).one_statement() as tx:
            envelope = await tx.envelopes.by_step(cohort.id, step_key)
        if envelope is None:
            return {"note": "the envelope never opened"}
        if envelope.closed_at is None and self.deps.clock.now() < envelope.expires_at:
            # The envelope went out late: its time to grab runs its full length from then.
            raise Postponed(envelope.expires_at)
        closed = await CloseEnvelope(self.deps)(envelope.id)
        return {"envelope_id": envelope.id, "closed_here": closed}

    async def _pitch(
        self, cohort: CohortRecord, script: Script, step_id: str, chat: int
    ) -> Outcome:
        pitch = script.step(step_id).pitch
        if pitch is None:
            raise _mismatch(step_id, "pitch")
        arm = cohort_arm(pitch, cohort.code, step_id)
        message = ScriptPost(arm.text, arm.media, cohort.locale)
        # The window opens before the post goes out: members answer as soon as they see
        # it, and a "1" that came before the window was written down would not count.
        opened_at = self.deps.clock.now()
        async with self.deps.uow(CohortsTx).transaction() as tx:
            opened = await tx.cohorts.open_pitch(cohort.id, opened_at)
            await tx.commit()
        try:
            message_id = await self.deps.messenger.send(chat, message, pin=pitch.pin)
        except DeliveryError as exc:
            if opened and exc.definite:  # nothing was posted: no window either
                async with self.deps.uow(CohortsTx).transaction() as tx:
                    await tx.cohorts.withdraw_pitch(cohort.id, opened_at)
                    await tx.commit()
            raise
        return with_arm({"message_id": message_id}, pitch, arm)

    async def _close_pitch(self, cohort: CohortRecord) -> Outcome:
        now = self.deps.clock.now()
        async with self.deps.uow(CohortsTx).transaction() as tx:
            current = await tx.cohorts.get(cohort.id)
            opened = current.pitch_opened_at if current else None
            end = opened + self.deps.scripts.reply_window(cohort) if opened else None
            if end is not None and now < end:
                # The pitch went out late: its window runs its full length from then.
                raise Postponed(end)
            await tx.cohorts.close_pitch(cohort.id, now)
            await tx.commit()
        return {}

    async def _unlock_task(self, cohort: CohortRecord, script: Script, task_id: str) -> Outcome:
        """The day's message in the task group, sent by the run of the day's first
        announced task; the other runs of that day only note it. Each run is claimed
        once (see the tick), so the message goes out at most once a day."""
        task = script.task(task_id)
        if not task.announce:
            return {"note": "silent unlock"}
        day = announced_on_day(script, task.unlock.day)
        if day[0].id != task_id:
            return {"note": f"announced with task.{day[0].id}"}
        if cohort.task_chat_id is None:
            return {"note": "no task group bound"}
        unlocks = self.deps.scripts.unlock_times(cohort)
        first = unlocks[task_id]
        rewarded, more = await self._untold_rewards(cohort, script, task.unlock.day, unlocks)
        message = TasksUnlocked(
            tuple(
                UnlockedTask(
                    t.id,
                    t.title,
                    first_line(t.how),
                    to_minor(t.reward.amount, cohort.currency) if t.reward else None,
                    unlocks[t.id] if unlocks[t.id] > first else None,
                )
                for t in day
            ),
            cohort.currency,
            cohort.locale,
            cohort.timezone,
            rewarded,
            more,
        )
        message_id = await self.deps.messenger.send(cohort.task_chat_id, message)
        return {"message_id": message_id, "tasks": [t.id for t in day]}

    async def _untold_rewards(
        self, cohort: CohortRecord, script: Script, day: int, unlocks: dict[str, datetime]
    ) -> tuple[tuple[tuple[str, str], ...], int]:
        """Rewards credited since the last day's message to members the bot cannot write
        to privately (by name and task title; a few, and how many more)."""
        earlier = [
            unlocks[t.id]
            for t in script.tasks.ladder
            if t.announce and t.unlock.day < day and announced_on_day(script, t.unlock.day)[0] is t
        ]
        since = max(earlier, default=datetime.min.replace(tzinfo=UTC))
        async with self.deps.uow(CohortsTx).one_statement() as tx:
            listed, total = await tx.ledger.untold_rewards(
                cohort.id, since, self.deps.clock.now(), UNTOLD_LISTED
            )
        titles = {t.id: t.title for t in script.tasks.ladder}
        named = tuple((name or "—", titles.get(task_id, task_id)) for name, task_id in listed)
        return named, total - len(named)


def announced_on_day(script: Script, day: int) -> list[Task]:
    """The tasks announced in the task group on task day ``day``, in the order they
    unlock (ladder order for the same time); the first one's run sends the message."""
    tasks = [t for t in script.tasks.ladder if t.announce and t.unlock.day == day]
    return sorted(tasks, key=lambda t: t.unlock.time)  # stable: ladder order kept


def first_line(how: str, limit: int = 200) -> str:
    """The first non-empty line of a task's how-to, for the day's message."""
    line = next((x.strip() for x in how.splitlines() if x.strip()), "")
    return cut(line, limit)
