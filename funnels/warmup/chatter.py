"""What members write in the warm-up group: counted per member and day, never stored."""

from __future__ import annotations

from collections.abc import Mapping
from zoneinfo import ZoneInfo

from funnels.deps import Deps
from funnels.kernel.records import UpdateBatch
from funnels.kernel.stages import Stage
from funnels.warmup.ports import WarmupTx


class RecordChatter:
    """Message counts from a group, keyed by Telegram id as the bot sees them; only the
    cohort's members count (not people who were in the group before the launch, nor
    users the bot knows from elsewhere).

    ``source``: the updates the counts came from, marked handled in the same unit of
    work, so that counts are neither lost nor counted twice when the process dies."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, chat_id: int, counts: Mapping[int, int], source: UpdateBatch | None = None
    ) -> int:
        now = self.deps.clock.now()
        by_user: dict[int, int] = {}
        async with self.deps.uow(WarmupTx).transaction() as tx:
            cohort = await tx.cohorts.warming_up_in(chat_id)
            if cohort is not None:
                _, known = await tx.users.resolve_many([], list(counts))
                ids = {tg: known[tg].user_id for tg in counts if tg in known}
                members = await tx.members.among(cohort.id, list(ids.values()))
                by_user = {ids[tg]: n for tg, n in counts.items() if ids.get(tg) in members}
                day = now.astimezone(ZoneInfo(cohort.timezone)).date()
                await tx.members.add_activity(cohort.id, by_user, day)
                await tx.members.advance_many(cohort.id, list(by_user), Stage.ENGAGED, now)
            if source is not None:
                await tx.updates.mark_handled(source.bot_id, source.update_ids, now)
            await tx.commit()
        return len(by_user)
