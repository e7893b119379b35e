"""Self-cycling end to end: a member promoted to supervisor by the ladder launches a line
of their own in a fresh group with ``/launch``, and ``/status`` there names the cohort
the line grew out of and its generation."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.telegram.i18n import Catalog
from funnels.kernel.stages import Role, Stage
from storage.uow import SqlStore
from tests.support.harness import LEADER, WARMUP, launch, running_bot, setup_world

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=ZoneInfo("Asia/Singapore"))
CATALOG = Catalog.load()
GRADUATE = 1002  # an English speaker in the harness's world
OWN_LINE = -1_005


async def test_a_supervisor_launches_a_line_of_their_own(store: SqlStore) -> None:
    async with running_bot(store, NOW) as h:
        setup_world(h)
        parent_code = await launch(h)
        await h.feed(h.api.join(WARMUP, GRADUATE))
        h.api.add_group(OWN_LINE, "Graduate's line", supergroup=True, owner=GRADUATE)

        # Before graduating, the member may not launch.
        await h.say(OWN_LINE, GRADUATE, "/launch")
        assert h.last_text(OWN_LINE) == CATALOG.text("en", "launch.not_leader")

        # The ladder's rule made them a supervisor (the promotion itself is covered by
        # the integration tests).
        async with store.transaction() as tx:
            parent = await tx.cohorts.by_code(parent_code)
            user = await tx.users.by_telegram(GRADUATE)
            assert parent is not None and user is not None
            for stage in (Stage.ENGAGED, Stage.REPLIED, Stage.ADMITTED, Stage.SUPERVISOR):
                await tx.members.advance(parent.id, user.user_id, stage, NOW)
            await tx.users.set_role_at_least(user.user_id, Role.SUPERVISOR)
            await tx.commit()

        await h.say(OWN_LINE, GRADUATE, "/launch start=2026-03-09")
        async with store.transaction() as tx:
            child = await tx.cohorts.by_chat(OWN_LINE)
        assert child is not None
        assert child.code in h.last_text(OWN_LINE)  # launch.started names it
        assert (child.parent_cohort_id, child.generation) == (parent.id, 2)

        await h.say(OWN_LINE, GRADUATE, "/status")
        status = h.last_text(OWN_LINE)
        assert CATALOG.text("en", "status.line_from", generation=2, parent=parent_code) in status

        # The leader's own line says it is the first generation.
        await h.say(WARMUP, LEADER, "/status")
        assert CATALOG.text("en", "status.line_own", generation=1) in h.last_text(WARMUP)
