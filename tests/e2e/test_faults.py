"""Telegram faults, end to end: missing rights at /launch, the bot removed or demoted,
a group migrated to a supergroup, a member who blocked the bot, 429s, taps answered
while bulk sends wait for their slots, and a Bot API that cannot be reached at all."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiogram.types import Update
from sqlalchemy import select

from bot.telegram.i18n import Catalog
from bot.telegram.throttle import Limits, Throttle, Window
from funnels.kernel.messaging import ScriptPost
from storage.models import Envelope, EnvelopeShare, User
from storage.uow import SqlStore
from tests.support.harness import ADMIN, LEADER, TASKS, WARMUP, Harness, at, running_bot
from tests.support.process import free_port

CATALOG = Catalog.load()


def world(h: Harness, *, supergroup: bool = True, **group: object) -> None:
    h.api.add_user(ADMIN, "Ada", started_bot=True)
    h.api.add_user(LEADER, "Lena", started_bot=True)
    for user_id in range(1001, 1006):
        h.api.add_user(user_id, f"Member{user_id}")
    h.api.add_group(WARMUP, "Warm-up", supergroup=supergroup, owner=LEADER, **group)  # type: ignore[arg-type]
    h.api.add_group(TASKS, "Tasks", supergroup=True, owner=LEADER)


async def launched(h: Harness) -> str:
    await h.say(ADMIN, ADMIN, f"/grant_leader {LEADER} SEA")
    await h.say(WARMUP, LEADER, "/launch start=2026-03-02")
    async with h.store.transaction() as tx:
        cohort = await tx.cohorts.by_chat(WARMUP)
    assert cohort is not None, h.last_text(WARMUP)
    return cohort.code


async def status_of(h: Harness, chat_id: int = WARMUP) -> tuple[str, str | None]:
    async with h.store.transaction() as tx:
        cohort = await tx.cohorts.by_chat(chat_id)
    assert cohort is not None
    return cohort.status, cohort.status_reason


async def test_launch_says_exactly_which_rights_are_missing_and_starts_nothing(
    store: SqlStore,
) -> None:
    async with running_bot(store, at(0, "10:00")) as h:
        world(h, bot_rights={"can_pin_messages": False, "can_delete_messages": False})
        await h.say(ADMIN, ADMIN, f"/grant_leader {LEADER} SEA")
        await h.say(WARMUP, LEADER, "/launch")
        missing = ", ".join(
            CATALOG.text("en", f"right.{r}") for r in ("can_pin_messages", "can_delete_messages")
        )
        assert h.last_text(WARMUP) == CATALOG.text("en", "launch.missing_rights", missing=missing)
        async with h.store.transaction() as tx:
            assert await tx.cohorts.by_chat(WARMUP) is None


async def test_bad_launch_options_get_the_usage_and_change_nothing(store: SqlStore) -> None:
    async with running_bot(store, at(0, "10:00")) as h:
        world(h)
        await h.say(ADMIN, ADMIN, f"/grant_leader {LEADER} SEA")
        await h.say(WARMUP, LEADER, "/launch start=tomorrow")
        assert h.last_text(WARMUP) == CATALOG.text("en", "launch.bad_date", value="tomorrow")
        await h.say(WARMUP, LEADER, "/launch capacity=0")
        assert h.last_text(WARMUP) == CATALOG.text("en", "launch.bad_capacity", max=200_000)
        await h.say(WARMUP, LEADER, "/launch no-such-script")
        assert h.last_text(WARMUP).startswith(
            CATALOG.text("en", "launch.unknown_script", name="no-such-script", names="X")[:20]
        )
        await h.say(WARMUP, LEADER, "/launch start=2026-02-01")
        assert h.last_text(WARMUP) == CATALOG.text("en", "launch.past_date", value="2026-02-01")
        async with h.store.transaction() as tx:
            assert await tx.cohorts.by_chat(WARMUP) is None


async def test_a_removed_bot_pauses_the_cohort_and_tells_the_leader(store: SqlStore) -> None:
    async with running_bot(store, at(0, "10:00")) as h:
        world(h)
        code = await launched(h)
        await h.feed(h.api.kick_bot(WARMUP))
        assert (await status_of(h))[0] == "paused"
        notice = CATALOG.text(
            "en",
            "cohort.paused_notice",
            code=code,
            reason=CATALOG.text("en", "reason.removed"),
        )
        assert h.last_text(LEADER) == notice
        # Nothing runs while paused: the welcome post stays unsent.
        before = len(h.api.calls_of("sendMessage"))
        await h.run_until(at(1, "09:30"))
        assert len(h.api.calls_of("sendMessage")) == before


async def test_a_demoted_bot_pauses_and_resume_waits_for_the_rights(store: SqlStore) -> None:
    async with running_bot(store, at(0, "10:00")) as h:
        world(h)
        await launched(h)
        await h.feed(h.api.set_bot_rights(WARMUP, "administrator", can_pin_messages=False))
        assert (await status_of(h))[0] == "paused"
        assert CATALOG.text("en", "right.can_pin_messages") in h.last_text(LEADER)
        await h.say(WARMUP, LEADER, "/resume")
        assert CATALOG.text("en", "right.can_pin_messages") in h.last_text(WARMUP)
        assert (await status_of(h))[0] == "paused"
        await h.feed(h.api.set_bot_rights(WARMUP, "administrator"))
        await h.say(WARMUP, LEADER, "/resume")
        assert (await status_of(h))[0] == "running"
        await h.run_until(at(1, "09:00"))
        assert "Welcome" in h.texts(WARMUP)[-1]


async def test_status_says_why_the_cohort_paused_in_the_readers_language(
    store: SqlStore,
) -> None:
    async with running_bot(store, at(0, "10:00")) as h:
        h.api.add_user(ADMIN, "Ada", started_bot=True, language_code="zh-hans")
        h.api.add_user(LEADER, "Lena", started_bot=True, language_code="es")
        h.api.add_group(WARMUP, "Calentamiento", supergroup=True, owner=LEADER, members=[ADMIN])
        await h.feed(h.api.start_bot(LEADER))  # known to the bot before the grant: reads es
        await launched(h)

        def reason_line(locale: str, reason: str) -> str:
            return CATALOG.text(locale, "status.reason", reason=reason)

        await h.say(WARMUP, LEADER, "/pause")
        assert await status_of(h) == ("paused", "paused_by_leader")
        await h.say(WARMUP, LEADER, "/status")
        assert h.last_text(WARMUP).splitlines()[-1] == "En pausa porque: el líder envió /pause"
        assert h.last_text(WARMUP).splitlines()[-1] == reason_line(
            "es", CATALOG.text("es", "reason.paused_by_leader")
        )
        await h.say(WARMUP, ADMIN, "/status")  # the same reason, read by a Chinese admin
        assert h.last_text(WARMUP).splitlines()[-1] == "暂停原因：团长发送了 /pause"

        await h.say(WARMUP, LEADER, "/resume")
        assert (await status_of(h))[0] == "running"
        await h.feed(
            h.api.set_bot_rights(
                WARMUP, "administrator", can_pin_messages=False, can_delete_messages=False
            )
        )
        assert await status_of(h) == (
            "paused",
            "demoted: can_pin_messages, can_delete_messages",
        )
        await h.say(WARMUP, LEADER, "/status")
        assert h.last_text(WARMUP).splitlines()[-1] == (
            "En pausa porque: perdí permisos que necesito: fijar mensajes, eliminar mensajes"
        )
        await h.say(WARMUP, ADMIN, "/status")
        assert h.last_text(WARMUP).splitlines()[-1] == reason_line(
            "zh-CN",
            CATALOG.text(
                "zh-CN",
                "reason.demoted",
                missing=", ".join(
                    CATALOG.text("zh-CN", f"right.{r}")
                    for r in ("can_pin_messages", "can_delete_messages")
                ),
            ),
        )


async def test_status_shows_a_reason_stored_as_free_text_as_it_is(store: SqlStore) -> None:
    """Rows paused by hand or by an older release keep their words; the old wording of a
    leader's /pause is recognised and translated."""
    async with running_bot(store, at(0, "10:00")) as h:
        h.api.add_user(ADMIN, "Ada", started_bot=True)
        h.api.add_user(LEADER, "Lena", started_bot=True, language_code="es")
        h.api.add_group(WARMUP, "Calentamiento", supergroup=True, owner=LEADER)
        await h.feed(h.api.start_bot(LEADER))
        await launched(h)
        async with h.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(WARMUP)
            assert cohort is not None
            await tx.cohorts.set_status(cohort.id, "paused", "paused by the leader", h.clock.now())
            await tx.commit()
        await h.say(WARMUP, LEADER, "/status")
        assert h.last_text(WARMUP).splitlines()[-1] == "En pausa porque: el líder envió /pause"
        async with h.store.transaction() as tx:
            await tx.cohorts.set_status(cohort.id, "paused", "ops: venue change", h.clock.now())
            await tx.commit()
        await h.say(WARMUP, LEADER, "/status")
        assert h.last_text(WARMUP).splitlines()[-1] == "En pausa porque: ops: venue change"


async def test_a_post_refused_for_rights_pauses_the_cohort(store: SqlStore) -> None:
    """Demoted without a my_chat_member update reaching us: the tick finds out."""
    async with running_bot(store, at(0, "10:00")) as h:
        world(h)
        await launched(h)
        h.api.set_bot_rights(WARMUP, "restricted")  # the update is lost
        await h.run_until(at(1, "09:00"))
        status, _ = await status_of(h)
        assert status == "paused"
        async with h.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(WARMUP)
            assert cohort is not None
            run = await tx.steps.get(cohort.id, "d1_welcome")
        assert run is not None and run.status == "pending"  # nothing sent, runs on resume


async def test_a_post_answered_with_an_error_page_is_unknown_and_not_sent_again(
    store: SqlStore,
) -> None:
    """A proxy's HTML 502 instead of the Bot API's JSON: the post may have gone out, so
    it is marked unknown for ops, never posted twice on its own; the week goes on."""
    async with running_bot(store, at(0, "10:00")) as h:
        world(h)
        await launched(h)
        h.api.break_next("sendMessage")
        await h.run_until(at(1, "09:00"))
        async with h.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(WARMUP)
            assert cohort is not None
            run = await tx.steps.get(cohort.id, "d1_welcome")
        assert run is not None and run.status == "unknown"
        assert cohort.status == "running"
        [broken] = [c for c in h.api.calls_of("sendMessage") if not c.ok]
        assert broken.error_code == 502
        await h.run_until(at(2, "09:00"))
        assert not [c for c in h.api.calls_of("sendMessage") if not c.ok][1:]
        async with h.store.transaction() as tx:
            later = await tx.steps.get(cohort.id, "d1_welcome")
        assert later is not None and later.status == "unknown"


async def test_a_migrated_group_keeps_its_cohort(store: SqlStore) -> None:
    async with running_bot(store, at(0, "10:00")) as h:
        world(h, supergroup=False)
        await launched(h)
        new_id = h.api.migrate(WARMUP)
        # The service message is lost; the next post finds out from Telegram's answer.
        await h.run_until(at(1, "09:00"))
        assert "Welcome" in h.texts(new_id)[-1]
        async with h.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(new_id)
        assert cohort is not None and cohort.status == "running"
        # Members keep joining the new chat and are counted in the same cohort.
        await h.feed(h.api.join(new_id, 1001))
        async with h.store.transaction() as tx:
            assert await tx.members.count(cohort.id) == 1


async def test_a_member_who_blocked_the_bot_is_marked_unreachable(store: SqlStore) -> None:
    async with running_bot(store, at(0, "10:00")) as h:
        world(h)
        await h.feed(h.api.start_bot(1001))
        h.api.block_bot(1001)
        async with h.store.transaction() as tx:
            ref = await tx.users.by_telegram(1001)
        assert ref is not None
        delivered = await h.services.messenger.notify(ref, ScriptPost("hello"))
        assert not delivered
        async with h.store.engine.connect() as conn:
            from sqlalchemy import select

            from storage.models import User

            row = (
                await conn.execute(select(User.unreachable_at).where(User.telegram_id == 1001))
            ).one()
        assert row.unreachable_at is not None
        await h.feed(h.api.start_bot(1001))  # they come back: reachable again
        async with h.store.engine.connect() as conn:
            row = (
                await conn.execute(select(User.unreachable_at).where(User.telegram_id == 1001))
            ).one()
        assert row.unreachable_at is None


async def test_a_429_is_waited_out_and_nothing_is_lost(store: SqlStore) -> None:
    # The bot believes it may send 40 a second into a group; the server allows 5.
    async with running_bot(store, at(0, "10:00"), group_per_minute=5, group_window=0.5) as h:
        world(h)
        loose = Limits(group=Window(40, 1.0), overall=Window(100, 1.0))
        h.services.throttle = h.services.messenger.throttle = Throttle(loose)
        ids = await asyncio.gather(
            *(h.services.messenger.send(WARMUP, ScriptPost(f"post {i}")) for i in range(12))
        )
        assert len(set(ids)) == 12
        assert h.api.too_many_requests > 0
        assert h.services.messenger.too_many_requests == h.api.too_many_requests
        texts = h.texts(WARMUP)
        assert sorted(texts) == sorted(f"post {i}" for i in range(12))


async def test_taps_are_answered_while_bulk_sends_wait(store: SqlStore) -> None:
    async with running_bot(store, at(0, "10:00")) as h:
        world(h)
        await launched(h)
        for user_id in range(1001, 1006):
            await h.feed(h.api.join(WARMUP, user_id))
        await h.run_until(at(1, "12:00"))
        envelope = h.api.messages(WARMUP)[-1]
        # Fill the group's window: 30 posts queue behind the 20-a-window limit.
        bulk = asyncio.gather(
            *(h.services.messenger.send(WARMUP, ScriptPost(f"bulk {i}")) for i in range(30))
        )
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        await h.feed(h.api.tap(WARMUP, envelope["message_id"], 1001))
        answered_in = time.perf_counter() - started
        assert not bulk.done()  # the bulk sends are still waiting for slots
        assert len(h.api.callback_answers) == 1
        # Behind the bulk sends it would wait for the group's window (1.15 s here) or
        # for 29 global slots queued ahead of it (about as long); on the answer lane it
        # waits for nothing but a loop busy with those sends.
        assert answered_in < 0.5
        await bulk
        assert h.api.too_many_requests == 0


async def test_a_tap_given_as_a_parsed_update_is_answered_alike(store: SqlStore) -> None:
    # Polling and the webhook feed raw updates, whose taps the dispatcher reads itself;
    # a tap handed over as aiogram's Update takes the router and must end the same way.
    async with running_bot(store, at(0, "10:00")) as h:
        world(h)
        await launched(h)
        for user_id in (1001, 1002):
            await h.feed(h.api.join(WARMUP, user_id))
        await h.run_until(at(1, "12:00"))
        envelope = h.api.messages(WARMUP)[-1]["message_id"]
        raw = h.api.tap(WARMUP, envelope, 1001)
        parsed = h.api.tap(WARMUP, envelope, 1002)
        await h.feed(raw)
        await h.dp.feed_update(h.bot, Update.model_validate(parsed, context={"bot": h.bot}))
        again = h.api.tap(WARMUP, envelope, 1002)
        await h.dp.feed_update(h.bot, Update.model_validate(again, context={"bot": h.bot}))
        async with h.store.engine.connect() as conn:
            won = dict(
                (
                    await conn.execute(
                        select(User.telegram_id, EnvelopeShare.amount_minor).join(
                            User, User.id == EnvelopeShare.user_id
                        )
                    )
                ).all()
            )
            (currency,) = (await conn.execute(select(Envelope.currency))).scalars()
        assert set(won) == {1001, 1002}  # one share each, the repeat tap none
        answers = h.api.callback_answers

        def said(update: dict[str, Any]) -> tuple[str | None, bool]:
            answer = answers[update["callback_query"]["id"]]
            return answer.text, answer.show_alert

        def money(telegram_id: int) -> str:
            return CATALOG.money("en", won[telegram_id], currency)

        assert said(raw) == (CATALOG.text("en", "envelope.grabbed", amount=money(1001)), True)
        assert said(parsed) == (CATALOG.text("en", "envelope.grabbed", amount=money(1002)), True)
        assert said(again) == (CATALOG.text("en", "envelope.already", amount=money(1002)), False)


async def test_a_stranger_asking_into_the_task_group_is_declined(store: SqlStore) -> None:
    async with running_bot(store, at(0, "10:00")) as h:
        world(h)
        code = await launched(h)
        await h.say(TASKS, LEADER, f"/taskgroup {code}")
        link = next(lk for lk, s in h.api.invite_links.items() if s.chat_id == TASKS)
        await h.feed(h.api.request_join(TASKS, 1005, link))
        (state,) = h.api.join_requests.values()
        assert state.status == "declined"
        assert h.last_text(1005) == CATALOG.text("en", "admission.refused")


async def test_only_the_leader_binds_and_pauses(store: SqlStore) -> None:
    async with running_bot(store, at(0, "10:00")) as h:
        world(h)
        code = await launched(h)
        h.api.set_member(TASKS, 1001, "member")
        h.api.set_member(WARMUP, 1001, "member")
        await h.say(TASKS, 1001, f"/taskgroup {code}")  # not a leader: told so, code unread
        assert h.last_text(TASKS) == CATALOG.text("en", "leader.only")
        await h.say(ADMIN, ADMIN, "/grant_leader 1002 SEA")
        h.api.set_member(TASKS, 1002, "member")
        await h.say(TASKS, 1002, f"/taskgroup {code}")  # another leader's cohort
        assert h.last_text(TASKS) == CATALOG.text("en", "taskgroup.not_yours", code=code)
        await h.say(WARMUP, 1001, "/pause")
        assert h.last_text(WARMUP) == CATALOG.text("en", "leader.only")
        await h.say(WARMUP, LEADER, "/pause")
        assert h.last_text(WARMUP) == CATALOG.text("en", "pause.done", code=code)
        await h.say(WARMUP, LEADER, "/status")
        assert code in h.last_text(WARMUP)
        await h.say(TASKS, LEADER, f"/taskgroup {code}")
        await h.say(WARMUP, LEADER, "/taskgroup NOPE")
        assert h.last_text(WARMUP) == CATALOG.text("en", "taskgroup.unknown", code="NOPE")


async def _run_of(h: Harness, key: str = "d1_welcome") -> Any:
    """The warm-up cohort's run of step ``key``."""
    async with h.store.transaction() as tx:
        cohort = await tx.cohorts.by_chat(WARMUP)
        assert cohort is not None
        return await tx.steps.get(cohort.id, key)


async def _in_doubt(h: Harness) -> list[str]:
    async with h.store.transaction() as tx:
        cohort = await tx.cohorts.by_chat(WARMUP)
        assert cohort is not None
        runs = await tx.steps.timeline(cohort.id)
    return [r.key for r in runs if r.status in ("unknown", "failed", "held")]


async def test_a_bot_api_out_of_reach_keeps_the_post_due_and_sends_it_once_when_back(
    store: SqlStore,
) -> None:
    """Nothing listens where the Bot API was (no connection can be made, so nothing
    left): the welcome stays due through the ticks meanwhile, goes out once as soon as
    the Bot API is back, late by the outage, and nothing is left in doubt for ops."""
    async with running_bot(store, at(0, "10:00"), port=free_port()) as h:
        world(h)
        await launched(h)
        sends_before = len(h.api.calls_of("sendMessage"))
        await h.api.stop()
        for minute in ("09:00", "09:02", "09:05"):
            report = await h.tick(at(1, minute))
            assert report.unreached and report.claimed == 1 and report.done == 0
        waiting = await _run_of(h)
        assert waiting.status == "pending" and waiting.due_at == at(1, "09:00")
        assert waiting.attempts == 3
        await h.api.start()
        report = await h.tick(at(1, "09:10"))
        assert not report.unreached and report.done >= 1
        sent = await _run_of(h)
        assert sent.status == "done" and sent.outcome["late_seconds"] == 600
        (welcome,) = h.api.calls_of("sendMessage")[sends_before:]  # one, once
        assert welcome.ok and welcome.chat_id == WARMUP
        assert await _in_doubt(h) == []


async def test_a_post_whose_bot_api_stays_out_of_reach_past_its_grace_is_skipped(
    store: SqlStore,
) -> None:
    """The script skips a post more than 30 minutes late: an outage that long skips it
    (a morning post at noon reads oddly), where an unknown outcome would have waited for
    ops."""
    async with running_bot(store, at(0, "10:00"), port=free_port()) as h:
        world(h)
        await launched(h)
        await h.api.stop()
        assert (await h.tick(at(1, "09:00"))).unreached
        assert (await h.tick(at(1, "09:20"))).unreached
        await h.api.start()
        await h.tick(at(1, "09:45"))
        skipped = await _run_of(h)
        assert skipped.status == "skipped" and "past the grace" in (skipped.error or "")
        assert await _in_doubt(h) == []


async def test_a_red_envelope_out_of_reach_gives_its_full_time_to_grab_once_posted(
    store: SqlStore,
) -> None:
    """The envelope is opened (its shares split, its total reserved) before the post;
    the post cannot reach the Bot API, so it goes out later, and its ten minutes to grab
    count from then, not from the first try."""
    async with running_bot(store, at(0, "10:00"), port=free_port()) as h:
        world(h)
        await launched(h)
        await h.run_until(at(1, "11:59"))
        await h.api.stop()
        assert (await h.tick(at(1, "12:00"))).unreached
        assert (await h.tick(at(1, "12:04"))).unreached
        await h.api.start()
        await h.tick(at(1, "12:08"))
        run = await _run_of(h, "d1_envelope_noon")
        assert run is not None and run.status == "done"
        async with h.store.transaction() as tx:
            envelope = await tx.envelopes.by_step(run.cohort_id, "d1_envelope_noon")
        assert envelope is not None and envelope.message_id is not None
        assert envelope.expires_at == at(1, "12:18")
        offers = [c for c in h.api.calls_of("sendMessage") if c.chat_id == WARMUP and c.ok]
        assert sum("reply_markup" in c.params for c in offers) == 1  # one Grab button
        assert await _in_doubt(h) == []
        # Its close, due at 12:10, waits for the end of its time.
        await h.run_until(at(1, "12:30"))
        async with h.store.transaction() as tx:
            closed = await tx.envelopes.by_step(run.cohort_id, "d1_envelope_noon")
        assert closed is not None and closed.closed_at == at(1, "12:18")
        close = await _run_of(h, "d1_envelope_noon.close")
        assert close is not None and close.status == "done"
