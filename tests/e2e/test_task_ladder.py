"""The ladder in Telegram against the local Bot API server: the task group's one message
a day, /tasks with a how-to button per open task, and proof screenshots reviewed by the
leader (approved; rejected then sent again; sent when no proof task is open)."""

from __future__ import annotations

import textwrap
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.telegram.i18n import Catalog
from funnels.cohorts.launch import StartCohort
from funnels.kernel.actor import Actor
from funnels.kernel.records import CohortRecord
from funnels.kernel.stages import Stage
from funnels.ladder.links import LinkFor
from funnels.scripts.loader import load_script_text
from storage.uow import SqlStore
from tests.support.harness import ADMIN, LEADER, TASKS, WARMUP, Harness, running_bot

CATALOG = Catalog.load()
SG = ZoneInfo("Asia/Singapore")
NOW = datetime(2026, 3, 1, 10, 0, tzinfo=SG)
MEMBER = 71


def task_day(day: int, hhmm: str) -> datetime:
    """Local time on task day ``day`` (warm-up 2026-03-02 and 03-03; task day 1 = 03-04)."""
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime(2026, 3, 3 + day, h, m, tzinfo=SG)


SCRIPT = textwrap.dedent("""\
    id: ladder-line
    version: 1
    locale: en
    title: Ladder line
    timezone: Asia/Singapore
    capacity: 50
    budget: {currency: USD, total: "50.00"}
    warmup:
      days: 2
      steps:
        - id: d1_welcome
          at: {day: 1, time: "09:00"}
          post: {text: "Welcome to the group."}
        - id: d2_pitch
          at: {day: 2, time: "20:00"}
          pitch: {text: "Reply 1 to join the task group.", reply: {window: 1h}}
    tasks:
      days: 3
      ladder:
        - id: invite_fans
          title: Invite a fan
          how: |-
            Share your personal link with a friend.
            The details nobody reads in the group.
          unlock: {day: 1, time: "09:00"}
          goal: {event: fan.locked, count: 1}
          reward: {amount: "0.50"}
          link: {target: "https://shop.example.com/join"}
        - id: share_story
          title: Share your story
          how: Post your story in your own words, then send me a screenshot.
          unlock: {day: 1, time: "09:00"}
          goal: {event: proof.approved, where: {task: share_story}, count: 1}
          reward: {amount: "0.30"}
          proof: true
        - id: quiet_task
          title: A quiet task
          how: Nobody is told about this one in the group.
          unlock: {day: 2, time: "09:00"}
          goal: {event: fan.locked, count: 5}
          announce: false
        - id: second_post
          title: A second post
          how: Post again and send a screenshot.
          unlock: {day: 2, time: "10:00"}
          goal: {event: proof.approved, where: {task: second_post}, count: 1}
          proof: true
    """)


async def ladder_cohort(h: Harness, members: tuple[int, ...] = (MEMBER,)) -> CohortRecord:
    """The script's cohort led by LEADER, its task group bound, ``members`` admitted."""
    h.api.add_user(ADMIN, "Ada", started_bot=True)
    h.api.add_user(LEADER, "Lena", started_bot=True)
    for user_id in members:
        h.api.add_user(user_id, f"Member{user_id}", started_bot=True, language_code="en")
    h.api.add_group(WARMUP, "Warm-up", supergroup=True, owner=LEADER)
    h.api.add_group(TASKS, "Tasks", supergroup=True, owner=LEADER)
    await h.say(ADMIN, ADMIN, f"/grant_leader {LEADER} SEA")
    async with h.store.transaction() as tx:
        leader = await tx.users.by_telegram(LEADER)
    assert leader is not None
    cohort = await StartCohort(h.services.deps)(
        load_script_text(SCRIPT, "ladder.yaml"),
        start=date(2026, 3, 2),
        code="LAD1",
        warmup_chat_id=WARMUP,
        leader_id=leader.user_id,
    )
    await h.say(TASKS, LEADER, f"/taskgroup {cohort.code}")
    admission = next(link for link, s in h.api.invite_links.items() if s.chat_id == TASKS)
    for user_id in members:
        await h.feed(h.api.join(WARMUP, user_id))
        async with h.store.transaction() as tx:
            ref = await tx.users.by_telegram(user_id)
            assert ref is not None
            await tx.members.advance(cohort.id, ref.user_id, Stage.REPLIED, h.clock.now())
            await tx.commit()
        await h.feed(h.api.request_join(TASKS, user_id, admission))
    return cohort


def day_messages(h: Harness) -> list[str]:
    header = CATALOG.text("en", "tasks_day.header")
    return [t for t in h.texts(TASKS) if t.startswith(header)]


def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    markup = message.get("reply_markup") or {"inline_keyboard": []}
    return [(b["text"], b["callback_data"]) for row in markup["inline_keyboard"] for b in row]


async def send_screenshot(h: Harness, user_id: int) -> str:
    """The member sends a photo to the bot; returns its (largest) file id."""
    update = h.api.send_photo(user_id, user_id)
    await h.feed(update)
    return str(update["message"]["photo"][-1]["file_id"])


async def press(h: Harness, chat_id: int, message: dict[str, Any], user_id: int, data: str) -> str:
    """Tap a button; returns the callback's answer text ('' when answered silently)."""
    update = h.api.tap(chat_id, message["message_id"], user_id, data=data)
    await h.feed(update)
    answer = h.api.callback_answers[update["callback_query"]["id"]]
    return answer.text or ""


def review_in_leader_chat(h: Harness) -> dict[str, Any]:
    return [m for m in h.api.messages(LEADER) if m.get("photo")][-1]


# ------------------------------------------------------------ the day's message


async def test_one_message_for_a_day_on_which_two_tasks_unlock(store: SqlStore) -> None:
    async with running_bot(store, NOW) as h:
        await ladder_cohort(h)
        await h.run_until(task_day(1, "12:00"))
        [day1] = day_messages(h)
        assert day1.splitlines() == [
            CATALOG.text("en", "tasks_day.header"),
            "• Invite a fan: Share your personal link with a friend.",
            "   " + CATALOG.text("en", "tasks_day.reward", reward="$0.50"),
            "• Share your story: Post your story in your own words, then send me a screenshot.",
            "   " + CATALOG.text("en", "tasks_day.reward", reward="$0.30"),
            CATALOG.text("en", "tasks_day.footer"),
        ]
        # Day 2: the quiet task is left out; the message goes out with the day's first
        # announced task (at 10:00) and names it alone.
        await h.run_until(task_day(2, "12:00"))
        assert len(day_messages(h)) == 2
        day2 = day_messages(h)[1]
        assert "A second post" in day2 and "quiet" not in day2.lower()
        # Ticking again sends nothing more; day 3 unlocks nothing and says nothing.
        await h.tick()
        await h.run_until(task_day(3, "23:00"))
        assert len(day_messages(h)) == 2


# ------------------------------------------------------------ /tasks and its buttons


async def test_tasks_has_a_button_per_open_task_and_a_press_shows_the_how_to(
    store: SqlStore,
) -> None:
    async with running_bot(store, NOW) as h:
        cohort = await ladder_cohort(h)
        await h.run_until(task_day(1, "12:00"))
        await h.say(MEMBER, MEMBER, "/tasks")
        listing = h.api.messages(MEMBER)[-1]
        labels = [label for label, _ in buttons(listing)]
        assert labels == [
            CATALOG.text("en", "tasks.how_button", title="Invite a fan"),
            CATALOG.text("en", "tasks.how_button", title="Share your story"),
        ]
        sent_before = len(h.api.messages(MEMBER))
        assert await press(h, MEMBER, listing, MEMBER, buttons(listing)[1][1]) == ""
        how = h.last_text(MEMBER)
        assert how.startswith("Share your story\n\nPost your story in your own words")
        assert how.endswith(CATALOG.text("en", "tasks.how_proof"))
        assert len(h.api.messages(MEMBER)) == sent_before + 1
        # A task with a target shows the member's own tracked link for it.
        assert await press(h, MEMBER, listing, MEMBER, buttons(listing)[0][1]) == ""
        code = await LinkFor(h.services.deps)(Actor(MEMBER, "Member", "en"), "invite_fans")
        assert code is not None
        link = h.services.settings.tracked_link(code)
        assert h.last_text(MEMBER).endswith(CATALOG.text("en", "tasks.how_link", link=link))
        sent_before += 1

        # Forged or outdated buttons: a short answer, nothing sent.
        stale = CATALOG.text("en", "tasks.button_stale")
        for data in ("how:abc", f"how:{cohort.id}:2", f"how:{cohort.id + 1}:0", "how:1:2:3"):
            assert await press(h, MEMBER, listing, MEMBER, data) == stale
        assert len(h.api.messages(MEMBER)) == sent_before + 1

        # Once the cohort is over, the list comes without buttons, and an old button
        # is out of date.
        await h.run_until(task_day(4, "00:01"))
        await h.say(MEMBER, MEMBER, "/tasks")
        assert buttons(h.api.messages(MEMBER)[-1]) == []
        assert await press(h, MEMBER, listing, MEMBER, buttons(listing)[0][1]) == stale


# ------------------------------------------------------------ proofs


async def test_a_proof_approved_tells_the_member_and_moves_the_task(store: SqlStore) -> None:
    async with running_bot(store, NOW) as h:
        await ladder_cohort(h)
        await h.run_until(task_day(1, "12:00"))
        file_id = await send_screenshot(h, MEMBER)
        assert h.last_text(MEMBER) == CATALOG.text("en", "proof.sent", title="Share your story")

        review = review_in_leader_chat(h)
        assert review["media_source"] == file_id  # the member's photo, sent on by its id
        assert review["caption"] == CATALOG.text(
            "en", "proof.review", name="Member71", title="Share your story", code="LAD1"
        )
        [(approve, ok), (_reject, _)] = buttons(review)
        assert approve == CATALOG.text("en", "proof.approve")
        # Only the leader decides.
        h.api.add_user(777, "Stranger", started_bot=True)
        assert await press(h, LEADER, review, 777, ok) == CATALOG.text("en", "proof.not_yours")

        done = CATALOG.text("en", "proof.done_approved")
        assert await press(h, LEADER, review, LEADER, ok) == done
        review = review_in_leader_chat(h)
        assert review["caption"].endswith(done) and buttons(review) == []
        texts = h.texts(MEMBER)
        assert CATALOG.text("en", "proof.approved", title="Share your story") in texts
        assert any(t.startswith("✅ Task done: Share your story") for t in texts)

        await h.say(MEMBER, MEMBER, "/tasks")
        assert "✅ Share your story" in h.last_text(MEMBER).splitlines()
        # A second press is refused: nothing counted twice, nothing said to the member.
        told = len(h.api.messages(MEMBER))
        again = await press(h, LEADER, review, LEADER, ok)
        assert again == CATALOG.text("en", "proof.decided_approved")
        assert len(h.api.messages(MEMBER)) == told


async def test_a_proof_rejected_then_sent_again(store: SqlStore) -> None:
    async with running_bot(store, NOW) as h:
        await ladder_cohort(h)
        await h.run_until(task_day(1, "12:00"))
        await send_screenshot(h, MEMBER)
        review = review_in_leader_chat(h)
        [(_, _ok), (_, reject)] = buttons(review)
        assert await press(h, LEADER, review, LEADER, reject) == ""
        review = review_in_leader_chat(h)
        reasons = buttons(review)
        assert [label for label, _ in reasons] == [
            *(CATALOG.text("en", f"proof.reason.{r}") for r in ("unreadable", "wrong_post")),
            *(CATALOG.text("en", f"proof.reason.{r}") for r in ("not_public", "other")),
            CATALOG.text("en", "proof.back"),
        ]
        not_public = reasons[2][1]
        reason = CATALOG.text("en", "proof.reason.not_public")
        answer = await press(h, LEADER, review, LEADER, not_public)
        assert answer == CATALOG.text("en", "proof.done_rejected", reason=reason)
        rejected = CATALOG.text("en", "proof.rejected", title="Share your story", reason=reason)
        assert h.last_text(MEMBER) == rejected

        # The member sends a new one; the leader gets it and approves it.
        await send_screenshot(h, MEMBER)
        assert h.last_text(MEMBER) == CATALOG.text("en", "proof.sent", title="Share your story")
        second = review_in_leader_chat(h)
        assert second["message_id"] != review["message_id"]
        await press(h, LEADER, second, LEADER, buttons(second)[0][1])
        assert CATALOG.text("en", "proof.approved", title="Share your story") in h.texts(MEMBER)


async def test_a_proof_for_a_task_that_is_not_open(store: SqlStore) -> None:
    async with running_bot(store, NOW) as h:
        await ladder_cohort(h)
        await h.run_until(task_day(1, "08:00"))  # the proof task opens at 09:00
        await send_screenshot(h, MEMBER)
        assert h.last_text(MEMBER) == CATALOG.text("en", "proof.no_task")
        assert [m for m in h.api.messages(LEADER) if m.get("photo")] == []


async def test_with_two_proof_tasks_open_the_member_picks_which(store: SqlStore) -> None:
    async with running_bot(store, NOW) as h:
        cohort = await ladder_cohort(h)
        await h.run_until(task_day(2, "11:00"))
        await send_screenshot(h, MEMBER)
        question = h.api.messages(MEMBER)[-1]
        assert question["text"] == CATALOG.text("en", "proof.which")
        assert [label for label, _ in buttons(question)] == ["Share your story", "A second post"]
        assert [m for m in h.api.messages(LEADER) if m.get("photo")] == []
        forged = f"pfor:{cohort.id}:0"  # a task that takes no screenshots
        assert await press(h, MEMBER, question, MEMBER, forged) == CATALOG.text(
            "en", "tasks.button_stale"
        )
        assert await press(h, MEMBER, question, MEMBER, buttons(question)[1][1]) == ""
        assert h.last_text(MEMBER) == CATALOG.text("en", "proof.sent", title="A second post")
        review = review_in_leader_chat(h)
        assert "A second post" in review["caption"]
