"""The scheduler tick: claim a due step run with a lease, commit the claim, and only
then talk to Telegram.

The database is the source of truth for scheduling. A crash leaves a ``running`` run
whose lease expires into ``unknown`` (shown to ops, never re-sent on its own: a
duplicate post in a 500-person group is worse than a late one)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from funnels.cohorts.pauses import PauseReason
from funnels.deps import Deps
from funnels.kernel.money import to_minor
from funnels.ports import (
    AdmissionsOpen,
    ChatUnavailable,
    CohortPaused,
    CohortRecord,
    DeliveryError,
    EnvelopeOffer,
    ScriptPost,
    StepRunRecord,
    TaskAnnouncement,
    Transaction,
)
from funnels.scripts.model import Script, Task
from funnels.warmup.envelopes import CloseEnvelope, CloseFullEnvelopes, envelope_seed, split


class _Postponed(Exception):
    def __init__(self, until: datetime) -> None:
        super().__init__(until.isoformat())
        self.until = until


@dataclass
class TickReport:
    claimed: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    unknown: int = 0
    paused_cohorts: list[int] = field(default_factory=list)
    finished_cohorts: list[int] = field(default_factory=list)
    closed_envelopes: list[int] = field(default_factory=list)
    stopped: bool = False
    """Told to stop: it claimed nothing more after the step it was running."""


def _held_reason(key: str) -> str:
    return f"waiting for a decision on {key}"


class RunDueSteps:
    """One scheduler tick: expire stale leases, then claim, run and finish due runs one at
    a time (up to ``batch``), then close envelopes left full and open.

    One claim per step, not a batch under one lease: a process killed mid-tick leaves only
    the run it was sending in doubt, and the steps it had not reached stay pending for the
    next tick. ``stop()`` (graceful shutdown) lets the current step finish and claims
    nothing more, in this tick or any later call.
    """

    def __init__(
        self,
        deps: Deps,
        *,
        owner: str = "tick",
        lease: timedelta = timedelta(minutes=5),
        batch: int = 50,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self.deps = deps
        self.owner = owner
        self.lease = lease
        self.batch = batch
        self.stopping = stopping if stopping is not None else asyncio.Event()

    def stop(self) -> None:
        """Claim nothing more; a step being sent still finishes and records its outcome."""
        self.stopping.set()

    async def __call__(self) -> TickReport:
        report = TickReport()
        for n in range(self.batch):
            if self.stopping.is_set():
                break
            claimed = await self._claim_next(report, expire=n == 0)
            if claimed is None:
                break
            report.claimed += 1
            status = await self._run(*claimed, report)
            if status == "done":
                report.done += 1
            elif status == "skipped":
                report.skipped += 1
            elif status == "failed":
                report.failed += 1
        if self.stopping.is_set():
            report.stopped = True
            return report
        report.closed_envelopes = await CloseFullEnvelopes(self.deps)()
        await self._announce_responders()
        async with self.deps.store.transaction() as tx:
            report.finished_cohorts = await tx.cohorts.finish_due(self.deps.clock.now())
            await tx.commit()
        return report

    async def _claim_next(
        self, report: TickReport, *, expire: bool
    ) -> tuple[StepRunRecord, CohortRecord] | None:
        """The oldest claimable due run, leased and committed before anything is sent.
        With ``expire``, runs whose lease ran out first become ``unknown`` (in the same
        transaction: one round trip when nothing is due)."""
        now = self.deps.clock.now()
        async with self.deps.store.transaction() as tx:
            if expire:
                expired = await tx.steps.expire_leases(now)
                report.unknown += len(expired)
                for run in expired:
                    await self._hold_later_parts(tx, run)
            claimed = await tx.steps.claim_due(now, self.owner, now + self.lease, 1)
            cohort = await tx.cohorts.get(claimed[0].cohort_id) if claimed else None
            await tx.commit()
        if not claimed:
            return None
        assert cohort is not None  # step runs reference their cohort
        return claimed[0], cohort

    @staticmethod
    async def _hold_later_parts(tx: Transaction, run: StepRunRecord) -> None:
        """A talk part in doubt or failed: its later parts wait for a decision rather
        than go on without it (the claim would not take them anyway; ``held`` says why)."""
        if run.kind == "talk_part":
            await tx.steps.hold_later_parts(
                run.cohort_id, run.source, run.part or 0, _held_reason(run.key)
            )

    async def _run(self, run: StepRunRecord, cohort: CohortRecord, report: TickReport) -> str:
        script = self.deps.scripts.get(cohort)
        now = self.deps.clock.now()
        late = max(now - run.due_at, timedelta(0))
        outcome: dict[str, object] = {"late_seconds": int(late.total_seconds())}
        if run.outcome and "retried_by" in run.outcome:  # who sent it again stays on record
            outcome["retried_by"] = run.outcome["retried_by"]
        if run.kind in ("post", "talk_part", "red_envelope", "pitch"):
            policy, grace = script.step(run.source).late_policy()
            if policy == "skip" and late > grace:
                await self._finish(run, "skipped", outcome, f"{late} late, past the grace {grace}")
                return "skipped"
        try:
            outcome.update(await self._execute(run, cohort, script))
        except _Postponed as later:
            async with self.deps.store.transaction() as tx:
                await tx.steps.postpone(run.id, later.until)
                await tx.commit()
            return "postponed"
        except ChatUnavailable as exc:
            async with self.deps.store.transaction() as tx:
                await tx.steps.release_claim(run.id)
                # The code, not Telegram's English words: /status says it in the reader's
                # language.
                reason = PauseReason(exc.cause).stored()
                await tx.cohorts.set_status(cohort.id, "paused", reason, now)
                leader = await tx.users.ref(cohort.leader_id) if cohort.leader_id else None
                await tx.commit()
            report.paused_cohorts.append(cohort.id)
            if leader is not None:
                await self.deps.messenger.notify(
                    leader,
                    CohortPaused(cohort.code, exc.cause, (), leader.language or cohort.locale),
                )
            return "paused"
        except DeliveryError as exc:
            status = "failed" if exc.definite else "unknown"
            await self._finish(run, status, outcome, exc.reason)
            if status == "unknown":
                report.unknown += 1
            return status
        await self._finish(run, "done", outcome, None)
        return "done"

    async def _finish(
        self, run: StepRunRecord, status: str, outcome: dict[str, object], error: str | None
    ) -> None:
        async with self.deps.store.transaction() as tx:
            await tx.steps.finish(run.id, status, self.deps.clock.now(), outcome, error)  # type: ignore[arg-type]
            if status in ("unknown", "failed"):
                await self._hold_later_parts(tx, run)
            await tx.commit()

    async def _execute(
        self, run: StepRunRecord, cohort: CohortRecord, script: Script
    ) -> dict[str, object]:
        m = self.deps.messenger
        if run.kind == "task_unlock":
            return await self._unlock_task(cohort, script.task(run.source))
        chat = cohort.warmup_chat_id
        if chat is None:
            return {"note": "no warm-up group bound"}
        step = script.step(run.source)
        if run.kind == "post" and step.post:
            post = ScriptPost(step.post.text, step.post.media, cohort.locale)
            return {"message_id": await m.send(chat, post, pin=step.post.pin)}
        if run.kind == "talk_part" and step.talk:
            return await self._talk_part(run, cohort, chat)
        if run.kind == "red_envelope" and step.red_envelope:
            return await self._open_envelope(run, cohort, chat, script)
        if run.kind == "envelope_close":
            return await self._close_envelope(cohort, run.source)
        if run.kind == "pitch" and step.pitch:
            pitch = ScriptPost(step.pitch.text, step.pitch.media, cohort.locale)
            message_id = await m.send(chat, pitch, pin=step.pitch.pin)
            async with self.deps.store.transaction() as tx:
                await tx.cohorts.open_pitch(cohort.id, self.deps.clock.now())
                await tx.commit()
            return {"message_id": message_id}
        if run.kind == "pitch_close":
            async with self.deps.store.transaction() as tx:
                current = await tx.cohorts.get(cohort.id)
                opened = current.pitch_opened_at if current else None
                end = opened + self.deps.scripts.reply_window(cohort) if opened else None
                if end is not None and self.deps.clock.now() < end:
                    # The pitch went out late: its window runs its full length from then.
                    raise _Postponed(end)
                await tx.cohorts.close_pitch(cohort.id, self.deps.clock.now())
                await tx.commit()
            return {}
        raise DeliveryError(f"step kind {run.kind!r} does not match the script", definite=True)

    async def _talk_part(
        self, run: StepRunRecord, cohort: CohortRecord, chat: int
    ) -> dict[str, object]:
        script = self.deps.scripts.get(cohort)
        talk = script.step(run.source).talk
        assert talk is not None
        part = run.part or 0
        m = self.deps.messenger
        if part == 0 and talk.slow_mode:
            await m.set_slow_mode(chat, int(talk.slow_mode.total_seconds()))
        text = talk.parts[part].text
        if part == 0:
            text = f"{talk.title}\n— {talk.speaker}\n\n{text}"
        message_id = await m.send(
            chat,
            ScriptPost(text, talk.parts[part].media, cohort.locale),
            pin=talk.pin and part == 0,
        )
        if part == len(talk.parts) - 1:
            if talk.slow_mode:
                await m.set_slow_mode(chat, 0)
            if talk.pin:
                first_id = message_id
                if part > 0:
                    async with self.deps.store.transaction() as tx:
                        first = await tx.steps.get(cohort.id, run.source)
                    raw = (first.outcome or {}).get("message_id") if first else None
                    first_id = raw if isinstance(raw, int) else 0
                if first_id:
                    await m.unpin(chat, first_id)
        return {"message_id": message_id}

    async def _open_envelope(
        self, run: StepRunRecord, cohort: CohortRecord, chat: int, script: Script
    ) -> dict[str, object]:
        spec = script.step(run.source).red_envelope
        assert spec is not None
        total = to_minor(spec.total, cohort.currency)
        amounts = split(
            total,
            spec.shares,
            to_minor(spec.min_share, cohort.currency),
            random.Random(envelope_seed(cohort.id, run.source)),
        )
        now = self.deps.clock.now()
        async with self.deps.store.transaction() as tx:
            envelope = await tx.envelopes.by_step(cohort.id, run.source)
            if envelope is None:
                if not await tx.cohorts.reserve(cohort.id, total):
                    raise DeliveryError(
                        "the cohort budget cannot cover this envelope", definite=True
                    )
                envelope = await tx.envelopes.open(
                    cohort.id, run.source, cohort.currency, amounts, now, now + spec.expires_in
                )
            await tx.commit()
        message_id = await self.deps.messenger.send(
            chat,
            EnvelopeOffer(
                envelope.id,
                envelope.total_minor,
                envelope.currency,
                envelope.shares,
                envelope.expires_at,
                spec.text,
                cohort.locale,
                cohort.timezone,
            ),
        )
        async with self.deps.store.transaction() as tx:
            await tx.envelopes.set_message(envelope.id, chat, message_id)
            await tx.commit()
        return {"message_id": message_id, "envelope_id": envelope.id}

    async def _close_envelope(self, cohort: CohortRecord, step_key: str) -> dict[str, object]:
        async with self.deps.store.transaction() as tx:
            envelope = await tx.envelopes.by_step(cohort.id, step_key)
        if envelope is None:
            return {"note": "the envelope never opened"}
        closed = await CloseEnvelope(self.deps)(envelope.id)
        return {"envelope_id": envelope.id, "closed_here": closed}

    async def _unlock_task(self, cohort: CohortRecord, task: Task) -> dict[str, object]:
        if not task.announce:
            return {"note": "silent unlock"}
        if cohort.task_chat_id is None:
            return {"note": "no task group bound"}
        reward = to_minor(task.reward.amount, cohort.currency) if task.reward else None
        message_id = await self.deps.messenger.send(
            cohort.task_chat_id,
            TaskAnnouncement(task.id, task.title, task.how, reward, cohort.currency, cohort.locale),
        )
        return {"message_id": message_id}

    async def _announce_responders(self) -> None:
        """One batched "come on over" message per cohort at most every few minutes."""
        now = self.deps.clock.now()
        async with self.deps.store.transaction() as tx:
            cohorts = await tx.cohorts.open_pitches()
        for cohort in cohorts:
            if cohort.warmup_chat_id is None:
                continue
            previous = cohort.admissions_noted_at
            if previous is not None and now - previous < self.deps.admissions_every:
                continue
            async with self.deps.store.transaction() as tx:
                new, total = await tx.members.responders_since(cohort.id, previous)
                # Compare-and-set on the stamp: of several ticking processes, one sends.
                if new == 0 or not await tx.cohorts.note_admissions(cohort.id, previous, now):
                    continue
                link = await tx.links.find(cohort.id, "admission")
                await tx.commit()
            try:
                await self.deps.messenger.send(
                    cohort.warmup_chat_id,
                    AdmissionsOpen(new, total, cohort.locale, link.link if link else None),
                )
            except DeliveryError:
                continue  # a missed nudge is harmless; the next batch counts these too
