"""The answer to the pitch: a "1" inside the reply window, recorded once."""

from __future__ import annotations

from typing import Literal

from funnels.deps import Deps
from funnels.kernel.records import CohortRecord
from funnels.warmup.ports import WarmupTx

ReplyOutcome = Literal["recorded", "already", "not_answer", "closed", "not_member", "no_cohort"]


class RecordReply:
    """A group message during the pitch window: is it the answer ("1"), and is it new?"""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, chat_id: int, user_id: int, text: str, *, cohort: CohortRecord | None = None
    ) -> ReplyOutcome:
        """``cohort``: the group's cohort as the caller knows it (a cache may be behind on
        the pitch; the window is checked in the database either way). With it, a first
        "1" inside the window costs a single statement; anything else is told apart by
        reading the cohort and the member afresh."""
        now = self.deps.clock.now()
        scripts = self.deps.scripts
        if cohort is not None and cohort.warms_up_in(chat_id) and scripts.matcher(cohort)(text):
            opened_since = now - scripts.reply_window(cohort)
            async with self.deps.uow(WarmupTx).transaction() as tx:
                if await tx.members.record_reply(cohort.id, user_id, now, opened_since):
                    await tx.commit()
                    return "recorded"
        async with self.deps.uow(WarmupTx).transaction() as tx:
            cohort = await tx.cohorts.warming_up_in(chat_id)
            if cohort is None:
                return "no_cohort"
            if not scripts.matcher(cohort)(text):
                return "not_answer"
            window = scripts.reply_window(cohort)
            if (
                cohort.pitch_opened_at is None
                or cohort.pitch_closed_at is not None
                or now > cohort.pitch_opened_at + window
            ):
                # The window is measured from when the pitch actually went out (it
                # opens as the post is sent), so a late tick neither shortens nor
                # stretches it.
                return "closed"
            stage = await tx.members.stage(cohort.id, user_id)
            if stage is None:
                return "not_member"
            # Answering is taking part: the member is engaged too, if not yet.
            recorded = await tx.members.record_reply(cohort.id, user_id, now, now - window)
            await tx.commit()
        return "recorded" if recorded else "already"
