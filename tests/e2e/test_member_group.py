"""The group task end to end against the local Bot API server: a member in the task stage
adds the bot to a group of their own; the bot counts it at once (getChatMemberCount) and
a day later, records ``group.created`` at 50, gives the talk on the owner's ``/talk``,
records ``talk.given``, says goodbye and leaves (leaveChat). A stranger's group gets a
polite word and the bot leaves at once."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from bot.telegram.i18n import Catalog
from funnels.kernel.stages import Stage
from storage.models import InboundEvent, MemberGroup, StepRun
from storage.uow import SqlStore
from tests.support.harness import LEADER, WARMUP, Harness, launch, running_bot, setup_world

SG = ZoneInfo("Asia/Singapore")
NOW = datetime(2026, 3, 1, 10, 0, tzinfo=SG)
TASK_OPEN = datetime(2026, 3, 14, 12, 0, tzinfo=SG)  # task day 6, after the 10:00 unlock
CATALOG = Catalog.load()
OWNER = 1002  # an English speaker in the harness's world
GUEST = 1005
OWN = -1_200
STRANGERS_GROUP = -1_201
FRIENDS = list(range(5001, 5049))  # 48 friends: 50 people with the owner and the guest


def text(key: str, **params: object) -> str:
    return CATALOG.text("en", key, **params)


async def in_task_stage(h: Harness, code: str) -> None:
    """The owner replied and was admitted (set up in the store); the warm-up's steps are
    behind us (marked skipped: this test is about the member's own group)."""
    await h.feed(h.api.join(WARMUP, OWNER))
    async with h.store.transaction() as tx:
        cohort = await tx.cohorts.by_code(code)
        user = await tx.users.by_telegram(OWNER)
        assert cohort is not None and user is not None
        for stage in (Stage.ENGAGED, Stage.REPLIED, Stage.ADMITTED):
            await tx.members.advance(cohort.id, user.user_id, stage, NOW)
        await tx.conn.execute(
            update(StepRun.__table__)
            .where(StepRun.__table__.c.due_at <= TASK_OPEN)
            .values(status="skipped")
        )
        await tx.commit()


async def events(store: SqlStore) -> list[str]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(InboundEvent.__table__.c.event_id))).all()
    return sorted(r.event_id for r in rows)


async def test_a_members_group_is_counted_given_a_talk_and_left(store: SqlStore) -> None:
    async with running_bot(store, NOW) as h:
        setup_world(h)
        code = await launch(h)
        await in_task_stage(h, code)
        h.clock.set(TASK_OPEN)
        for friend in FRIENDS:
            h.api.add_user(friend, f"Friend{friend}")
        h.api.add_group(
            OWN,
            "Ana's neighbours",
            supergroup=True,
            owner=OWNER,
            bot_status="left",
            members=[GUEST, *FRIENDS[:28]],
        )

        # Added by the owner: counted at once (30 people and the bot).
        await h.feed(h.api.add_bot(OWN, by=OWNER))
        assert h.texts(OWN) == [text("group_task.welcome", count=30, needed=50)]
        assert h.api.calls_of("getChatMemberCount")

        # /talk: only the owner, and only at 50.
        await h.say(OWN, GUEST, "/talk")
        assert h.last_text(OWN) == text("group_talk.owner_only")
        await h.say(OWN, OWNER, "/talk")
        assert h.last_text(OWN) == text("group_talk.too_small", count=30, needed=50)

        # More friends come in; the next day's count finds 50 people.
        for friend in FRIENDS[28:]:
            h.api.set_member(OWN, friend, "member")
        await h.tick(TASK_OPEN + timedelta(days=1))
        assert h.last_text(OWN) == text("group_task.ready", count=50)
        async with store.transaction() as tx:
            cohort = await tx.cohorts.by_code(code)
            user = await tx.users.by_telegram(OWNER)
        assert cohort is not None and user is not None
        created = f"group.created:{cohort.id}:{user.user_id}:{OWN}"
        assert await events(store) == [created]

        # The owner's /talk: the talk goes out part by part, then goodbye, and it leaves.
        await h.say(OWN, OWNER, "/talk")
        assert h.last_text(OWN) == text("group_talk.started")
        start = h.clock.now()
        await h.run_until(start + timedelta(minutes=7))
        said = h.texts(OWN)
        first = said.index(next(t for t in said if t.startswith("Why we shop together")))
        assert len(said[first:]) == 5  # four parts and the goodbye
        assert said[-1] == text("group_task.goodbye")
        assert h.api.bot_member(OWN).status == "left"
        assert await events(store) == [created, f"talk.given:{cohort.id}:{user.user_id}:{OWN}"]
        async with store.engine.connect() as conn:
            [row] = (await conn.execute(select(MemberGroup.__table__))).all()
        assert (row.state, row.member_count) == ("given", 50) and row.left_at is not None

        # Telegram then reports the bot's own leaving: nothing more happens.
        [left] = [u for u in h.api.pending_updates() if "my_chat_member" in u][-1:]
        await h.feed(left)
        assert h.texts(OWN)[-1] == text("group_task.goodbye")


async def test_a_strangers_group_is_declined_and_left(store: SqlStore) -> None:
    async with running_bot(store, NOW) as h:
        setup_world(h)
        await launch(h)
        h.api.add_group(STRANGERS_GROUP, "Stamp collectors", owner=777, bot_status="left")
        await h.feed(h.api.add_bot(STRANGERS_GROUP, by=777))
        assert h.texts(STRANGERS_GROUP) == [text("group_task.not_in_task")]
        assert h.api.bot_member(STRANGERS_GROUP).status == "left"
        async with store.engine.connect() as conn:
            assert (await conn.execute(select(MemberGroup.__table__))).all() == []

        # A leader adding the bot to a fresh group is setting up a cohort: no word, it stays.
        h.api.add_group(-1_202, "Autumn line", supergroup=True, owner=LEADER, bot_status="left")
        await h.feed(h.api.add_bot(-1_202, by=LEADER, status="administrator"))
        assert h.texts(-1_202) == [] and h.api.bot_member(-1_202).status == "administrator"
        await h.say(-1_202, LEADER, "/launch")
        async with store.transaction() as tx:
            assert await tx.cohorts.by_chat(-1_202) is not None
