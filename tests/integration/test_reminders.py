"""Daily reminders over SQLite and PostgreSQL on a virtual clock: one private message a
day per member of a task stage, chosen by their progress segment, in their language,
outside quiet hours, never to members who finished, left or cannot be reached, and
never twice on one local day whatever the number of ticks."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from sqlalchemy import select

from funnels.kernel.messaging import Reminder
from funnels.kernel.records import CohortRecord, MemberRef
from funnels.kernel.stages import Stage
from funnels.ladder.reminders import RemindMembers
from funnels.ops.keys import CreateApiKey
from funnels.scripts.variants import arms, member_arm
from storage.models import MemberReminder
from tests.integration.test_dashboard import _client, _field, _login
from tests.support.dashboard import DASHBOARD
from tests.support.funnel_kit import TASK_CHAT, Kit, load, task_at, warmup_at

reminders_t = MemberReminder.__table__


async def task_stage(kit: Kit, n: int) -> tuple[CohortRecord, list[MemberRef]]:
    """``n`` members admitted on warm-up day 1; the warm-up's steps run by task day 1."""
    cohort = await kit.start()
    async with kit.store.transaction() as tx:
        await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
        await tx.commit()
    refs = await kit.admitted(cohort, n)
    await kit.run_until(task_at(1, "09:30"))
    kit.messenger.notices.clear()
    return cohort, refs


def reminders(kit: Kit) -> dict[int, Reminder]:
    found: dict[int, Reminder] = {}
    for member, message in kit.messenger.notices:
        if isinstance(message, Reminder):
            assert member.user_id not in found, "two reminders to one member"
            found[member.user_id] = message
    return found


async def remind(kit: Kit, at: datetime) -> int:
    kit.clock.set(at)
    return await RemindMembers(kit.deps)()


async def test_each_member_gets_one_reminder_a_day_chosen_by_segment(kit: Kit) -> None:
    _, [ahead, on_track, behind, idle] = await task_stage(kit, 4)
    ingest = kit.ingest()
    early = task_at(1, "09:40")
    await ingest(
        "t",
        [kit.event("fan.locked", early, ahead) for _ in range(3)]
        + [kit.event("link.clicked", early, ahead, visitor=v) for v in ("a", "b")]
        + [kit.event("fan.locked", early, on_track) for _ in range(3)]
        + [kit.event("fan.locked", early, behind)],
    )
    assert await remind(kit, task_at(1, "09:59")) == 0  # not before 10:00
    assert await remind(kit, task_at(1, "10:00")) == 4
    got = reminders(kit)
    assert {uid: r.segment for uid, r in got.items()} == {
        ahead.user_id: "ahead",
        on_track.user_id: "on_track",
        behind.user_id: "behind",
        idle.user_id: "inactive",  # admitted two days ago and nothing since
    }
    assert got[ahead.user_id].next_unlock == task_at(2, "09:00")
    assert got[on_track.user_id].task_title == "Two distinct visitors"
    assert (got[behind.user_id].open_tasks, got[behind.user_id].task_title) == (
        2,
        "Invite three fans",
    )
    assert got[idle.user_id].locale == "en"

    # However often the tick runs that day, nobody gets a second one.
    for hhmm in ("10:00", "13:00", "21:59"):
        assert await remind(kit, task_at(1, hhmm)) == 0
    assert sum(isinstance(m, Reminder) for _, m in kit.messenger.notices) == 4

    # Quiet hours (22:00-08:00 by default) hold the next day's until 10:00.
    assert await remind(kit, task_at(1, "23:30")) == 0
    assert await remind(kit, task_at(2, "07:30")) == 0
    kit.messenger.notices.clear()
    assert await remind(kit, task_at(2, "10:05")) == 4
    assert len(reminders(kit)) == 4
    rows = await kit.rows(select(reminders_t.c.day, reminders_t.c.delivered))
    assert sorted({r.day.isoformat() for r in rows}) == ["2026-03-04", "2026-03-05"]
    assert all(r.delivered for r in rows)


async def test_finished_left_and_unreachable_members_get_none(kit: Kit) -> None:
    cohort, [done, gone, blocked, silent, spanish] = await task_stage(kit, 5)
    async with kit.store.transaction() as tx:
        await tx.users.set_reachable(blocked.telegram_id or 0, False, kit.clock.now())
        await tx.users.set_locale(spanish.user_id, "es")
        await tx.commit()
    await kit.leave()(cohort.warmup_chat_id or 0, gone.user_id)
    kit.messenger.unreachable.add(silent.telegram_id or 0)  # blocked the bot unnoticed
    day2 = task_at(2, "09:30")
    kit.clock.set(day2)
    await kit.ingest()(
        "t",
        [kit.event("fan.locked", day2, done) for _ in range(3)]
        + [kit.event("link.clicked", day2, done, visitor=v) for v in ("a", "b")]
        + [kit.event("order.paid", day2, done)],
    )
    assert await remind(kit, task_at(2, "10:00")) == 1
    assert list(reminders(kit)) == [spanish.user_id]
    assert reminders(kit)[spanish.user_id].locale == "es"
    rows = {
        r.user_id: (r.segment, r.delivered)
        for r in await kit.rows(
            select(reminders_t.c.user_id, reminders_t.c.segment, reminders_t.c.delivered)
        )
    }
    assert rows[done.user_id] == ("finished", None)  # claimed, never sent
    assert rows[silent.user_id][1] is False  # tried once, not again today
    assert gone.user_id not in rows and blocked.user_id not in rows
    assert await remind(kit, task_at(2, "15:00")) == 0


async def test_no_reminders_during_the_warm_up_or_after_the_cohort(kit: Kit) -> None:
    cohort = await kit.start()
    await kit.admitted(cohort, 2)
    assert await remind(kit, warmup_at(2, "12:00")) == 0
    await kit.run_until(cohort.ends_at)
    kit.messenger.notices.clear()
    assert await remind(kit, cohort.ends_at) == 0
    assert reminders(kit) == {}


async def test_the_tick_sends_them(kit: Kit) -> None:
    _, refs = await task_stage(kit, 2)
    report = await kit.tick(task_at(1, "10:00"))
    assert report.reminders == 2
    assert (await kit.tick(task_at(1, "11:00"))).reminders == 0
    assert set(reminders(kit)) == {r.user_id for r in refs}


async def test_a_pass_with_nothing_left_to_send_lets_the_ticks_skip_a_minute(kit: Kit) -> None:
    """Ticks come twice a second; once every running cohort is done for its day or may
    not be reminded yet, they skip reading the cohorts for a minute (so the day's
    reminders go out at most a minute late)."""
    await task_stage(kit, 2)
    remind = RemindMembers(kit.deps)
    kit.clock.set(task_at(1, "09:59") + timedelta(seconds=30))
    assert await remind() == 0  # before 10:00: nothing to send, none left over
    kit.clock.set(task_at(1, "10:00"))
    assert await remind() == 0  # within the minute: not read
    kit.clock.set(task_at(1, "10:00") + timedelta(seconds=30))
    assert await remind() == 2  # a minute after the first look: read, and sent
    kit.clock.set(task_at(1, "10:00") + timedelta(seconds=45))
    assert await remind() == 0
    assert len(reminders(kit)) == 2


IDLE_WORDING = """\
    inactive:
      text: "Still there? {title} is waiting, {count} open."
      variants: [{id: short, text: "{title}: one small step today."}]
"""


async def test_a_scripts_own_wording_goes_out_each_member_drawing_their_arm(
    kit: Kit, api: httpx.AsyncClient
) -> None:
    loaded = load(reminders=IDLE_WORDING)
    cohort = await kit.start(loaded=loaded)
    async with kit.store.transaction() as tx:
        await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
        await tx.commit()
    refs = await kit.admitted(cohort, 40)
    await kit.run_until(task_at(1, "09:30"))
    kit.messenger.notices.clear()
    assert await remind(kit, task_at(1, "10:00")) == 40
    first = reminders(kit)
    assert {r.segment for r in first.values()} == {"inactive"}  # nothing done for two days
    own = loaded.script.tasks.reminders
    assert own is not None and own.inactive is not None
    wordings = {ref.user_id: first[ref.user_id].wording for ref in refs}
    for ref in refs:
        arm = member_arm(own.inactive, cohort.code, "inactive", ref.user_id)
        assert wordings[ref.user_id] == arm.text
    assert set(wordings.values()) == {a.text for a in arms(own.inactive)}  # both arms ran
    # The next day, each member gets the same wording again.
    kit.messenger.notices.clear()
    assert await remind(kit, task_at(2, "10:00")) == 40
    assert {uid: r.wording for uid, r in reminders(kit).items()} == wordings

    # Those who went on: the experiment counts them by arm, member by member.
    short = [r for r in refs if wordings[r.user_id] == own.inactive.variants[0].text]
    moved = short[:5] + [r for r in refs if r not in short][:2]
    for ref in moved:
        await kit.force_stage(cohort.id, ref.user_id, Stage.TASKED)
    answer = await api.get("/api/v1/experiments")
    assert answer.status_code == 200, answer.text
    [found] = [e for e in answer.json()["items"] if e["kind"] == "reminder"]
    assert (found["step_key"], found["stage"], found["verdict"]) == (
        "reminder.inactive",
        "next",
        "too_small",
    )
    by_arm = {a["arm"]: a for a in found["arms"]}
    assert by_arm["short"]["members"] == len(short)
    assert by_arm["a"]["members"] == 40 - len(short)
    assert (by_arm["short"]["converted"], by_arm["a"]["converted"]) == (5, 2)
    assert "too few members to tell" in found["detail"]

    # The dashboard's A/B page says the same, member by member, in the reader's language.
    _, key = await CreateApiKey(kit.deps)("web")
    async with _client(kit) as web:
        await _login(web, key)
        page = (await web.get(f"{DASHBOARD}/experiments")).text
        spanish = (
            await web.get(f"{DASHBOARD}/experiments", headers={"Accept-Language": "es"})
        ).text
    assert 'data-experiment="reminder.inactive" data-verdict="too_small"' in page
    assert _field(page, 'data-arm="short"', "members") == str(len(short))
    assert _field(page, 'data-arm="short"', "replied") == "5"
    assert "Went on" in page and "Too few members to tell" in page
    assert "Muy pocos miembros para saberlo" in spanish


async def test_a_reminder_without_the_scripts_wording_keeps_the_built_in_one(kit: Kit) -> None:
    await task_stage(kit, 2)
    assert await remind(kit, task_at(1, "10:00")) == 2
    assert {r.wording for r in reminders(kit).values()} == {None}
