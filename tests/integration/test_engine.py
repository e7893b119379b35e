"""StartCohort and RunDueSteps over real SQLite and PostgreSQL on a virtual clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text

from funnels.cohorts.launch import StartCohort
from funnels.cohorts.lifecycle import GroupLost, PauseCohort
from funnels.cohorts.pauses import PauseReason
from funnels.cohorts.tick import RunDueSteps, TickReport
from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.messaging import (
    ChatUnavailable,
    DeliveryError,
    EnvelopeOffer,
    EnvelopeSummary,
    ScriptPost,
    TasksUnlocked,
)
from funnels.kernel.records import CohortRecord, MemberRef
from funnels.kernel.refusals import Refused
from funnels.ops.steps import RetryStep
from tests.support.funnel_kit import (
    ALL_KEYS,
    START,
    TASK_CHAT,
    WARMUP_CHAT,
    Kit,
    Rendezvous,
    cohorts_t,
    envelopes_t,
    load,
    steps_t,
    task_at,
    warmup_at,
)

# ---------------------------------------------------------------- StartCohort


async def test_start_writes_one_pending_run_per_planned_step(kit: Kit) -> None:
    cohort = await kit.start()

    runs = await kit.rows(
        steps_t.select()
        .where(steps_t.c.cohort_id == cohort.id)
        .order_by(steps_t.c.due_at, steps_t.c.key)
    )
    assert sorted(r.key for r in runs) == sorted(ALL_KEYS)
    assert {r.status for r in runs} == {"pending"}
    assert {r.attempts for r in runs} == {0}
    due = {r.key: r.due_at for r in runs}
    assert due["d1_welcome"] == warmup_at(1, "09:00")
    assert due["d1_talk"] == warmup_at(1, "10:00")
    assert due["d1_talk.p1"] == warmup_at(1, "10:02")
    assert due["d1_envelope"] == warmup_at(1, "12:00")
    assert due["d1_envelope.close"] == warmup_at(1, "12:10")
    assert due["d2_pitch"] == warmup_at(2, "20:00")
    assert due["d2_pitch.close"] == warmup_at(2, "21:00")
    assert due["task.invite_fans"] == task_at(1, "09:00")
    assert due["task.first_sale"] == task_at(2, "09:00")
    assert all(d.tzinfo is not None and d.utcoffset() == timedelta(0) for d in due.values())
    assert due["d1_welcome"] == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Singapore

    assert cohort.status == "running"
    assert (cohort.capacity, cohort.currency, cohort.budget_minor, cohort.spent_minor) == (
        50,
        "USD",
        170,
        0,
    )
    assert cohort.start_date == START
    assert cohort.warmup_chat_id == WARMUP_CHAT
    assert cohort.ends_at == task_at(4, "00:00")  # midnight after the last task day
    assert cohort.script_body == kit.loaded.text
    assert cohort.script_hash == kit.loaded.content_hash


async def test_second_cohort_in_the_same_warmup_chat_is_refused(kit: Kit) -> None:
    first = await kit.start(code="FIRST")

    with pytest.raises(Refused) as refused:
        await kit.start(code="SECOND")
    assert (refused.value.code, refused.value.params) == ("already_bound", {"code": "FIRST"})

    assert await kit.count(cohorts_t) == 1
    assert await kit.count(steps_t) == len(ALL_KEYS)
    assert (await kit.cohort(first.id)).status == "running"
    # Another group is fine.
    await kit.start(chat=WARMUP_CHAT - 1, code="THIRD")
    assert await kit.count(steps_t) == 2 * len(ALL_KEYS)


async def test_two_launches_racing_in_one_chat_give_one_cohort_and_one_refusal(kit: Kit) -> None:
    # On PostgreSQL both launches check the chat before either inserts, as two processes
    # can; on SQLite units of work take turns, so the second launch sees the first.
    store = kit.store if kit.dialect == "sqlite" else Rendezvous(kit.store, "cohorts", "by_chat", 2)
    launch = StartCohort(Deps(store, kit.messenger, kit.clock))  # type: ignore[arg-type]

    results = await asyncio.gather(
        launch(kit.loaded, start=START, code="RACE1", warmup_chat_id=WARMUP_CHAT),
        launch(kit.loaded, start=START, code="RACE2", warmup_chat_id=WARMUP_CHAT),
        return_exceptions=True,
    )

    assert sorted(type(r).__name__ for r in results) == ["CohortRecord", "Refused"]
    (refused,) = [r for r in results if isinstance(r, Refused)]
    assert refused.code == "already_bound"
    assert await kit.count(cohorts_t) == 1
    assert await kit.count(steps_t) == len(ALL_KEYS)


async def test_capacity_that_breaks_the_budget_is_refused_and_writes_nothing(kit: Kit) -> None:
    # Rewards planned per seat: 1.00 of envelopes + 0.70 per member; the budget is 1.70.
    loaded = load(reward_seats=None, capacity=1)

    with pytest.raises(Refused) as refused:
        await kit.start(loaded=loaded, capacity=2)
    assert (refused.value.code, refused.value.params) == (
        "over_budget",
        {"capacity": 2, "needed": 240, "budget": 170, "currency": "USD"},
    )

    assert await kit.count(cohorts_t) == 0
    assert await kit.count(steps_t) == 0

    cohort = await kit.start(loaded=loaded, capacity=1)
    assert cohort.capacity == 1
    assert await kit.count(steps_t) == len(ALL_KEYS)


async def test_bad_options_are_refused(kit: Kit) -> None:
    with pytest.raises(Refused) as zone:
        await StartCohort(kit.deps)(kit.loaded, start=START, code="X", timezone="Mars/Olympus")
    assert (zone.value.code, zone.value.params) == ("bad_timezone", {"timezone": "Mars/Olympus"})
    with pytest.raises(Refused) as capacity:
        await kit.start(capacity=0)
    assert (capacity.value.code, capacity.value.params) == ("bad_capacity", {"capacity": 0})
    assert await kit.count(cohorts_t) == 0


# ---------------------------------------------------------------- RunDueSteps: timing


async def test_nothing_runs_before_it_is_due(kit: Kit) -> None:
    cohort = await kit.start()

    report = await kit.tick(warmup_at(1, "08:59"))

    assert report.claimed == 0
    assert kit.messenger.sent == []
    assert set((await kit.statuses(cohort.id)).values()) == {"pending"}


async def test_a_due_post_runs_once_into_the_warmup_chat(kit: Kit) -> None:
    cohort = await kit.start()

    report = await kit.tick(warmup_at(1, "09:00"))

    assert (report.claimed, report.done) == (1, 1)
    [sent] = kit.messenger.sent
    assert sent.chat_id == WARMUP_CHAT
    assert sent.message == ScriptPost("Welcome to the group.", None, "en")
    assert sent.pinned is True
    run = await kit.step(cohort.id, "d1_welcome")
    assert run.status == "done"
    assert run.attempts == 1
    assert run.started_at == warmup_at(1, "09:00")
    assert run.outcome == {"late_seconds": 0, "message_id": sent.message_id}

    again = await kit.tick()
    later = await kit.tick(warmup_at(1, "09:30"))

    assert again.claimed == 0 and later.claimed == 0
    assert len(kit.messenger.sent) == 1
    assert (await kit.step(cohort.id, "d1_welcome")).attempts == 1


async def test_talk_parts_run_in_order_with_slow_mode_and_pin(kit: Kit) -> None:
    cohort = await kit.start()
    await kit.tick(warmup_at(1, "09:00"))  # the welcome post
    kit.messenger.sent.clear()

    await kit.tick(warmup_at(1, "10:00"))

    [first] = kit.messenger.sent
    assert first.chat_id == WARMUP_CHAT
    assert first.message == ScriptPost("Corner shops\n— Ana\n\nPart one of the talk.", None, "en")
    assert first.pinned is True
    assert kit.messenger.slow_mode == {WARMUP_CHAT: 30}
    assert kit.messenger.unpinned == []
    assert (await kit.step(cohort.id, "d1_talk.p1")).status == "pending"

    assert (await kit.tick(warmup_at(1, "10:01"))).claimed == 0

    await kit.tick(warmup_at(1, "10:02"))

    assert [s.message for s in kit.messenger.sent] == [
        first.message,
        ScriptPost("Part two of the talk.", None, "en"),
    ]
    assert kit.messenger.sent[1].pinned is False
    assert kit.messenger.slow_mode == {WARMUP_CHAT: 0}
    assert kit.messenger.unpinned == [(WARMUP_CHAT, first.message_id)]
    assert (await kit.step(cohort.id, "d1_talk")).status == "done"
    assert (await kit.step(cohort.id, "d1_talk.p1")).status == "done"


async def test_a_talk_found_late_runs_its_parts_in_order_in_one_tick(kit: Kit) -> None:
    cohort = await kit.start()
    await kit.tick(warmup_at(1, "09:00"))
    kit.messenger.sent.clear()

    report = await kit.tick(warmup_at(1, "11:00"))  # both parts overdue; talks run late

    assert report.done == 2
    assert [s.message.text for s in kit.messenger.sent] == [  # type: ignore[union-attr]
        "Corner shops\n— Ana\n\nPart one of the talk.",
        "Part two of the talk.",
    ]
    assert kit.messenger.unpinned == [(WARMUP_CHAT, kit.messenger.sent[0].message_id)]
    assert kit.messenger.slow_mode == {WARMUP_CHAT: 0}
    assert (await kit.step(cohort.id, "d1_talk.p1")).outcome == {
        "late_seconds": 58 * 60,
        "message_id": kit.messenger.sent[1].message_id,
    }


@pytest.mark.parametrize(("late_minutes", "status"), [(30, "done"), (31, "skipped")])
async def test_late_envelope_runs_within_grace_and_is_skipped_after(
    kit: Kit, late_minutes: int, status: str
) -> None:
    cohort = await kit.start()
    await kit.run_until(warmup_at(1, "11:00"))
    kit.messenger.sent.clear()

    report = await kit.tick(warmup_at(1, "12:00") + timedelta(minutes=late_minutes))

    run = await kit.step(cohort.id, "d1_envelope")
    assert run.status == status
    assert run.outcome is not None and run.outcome["late_seconds"] == late_minutes * 60
    if status == "skipped":
        assert report.skipped == 1
        assert kit.messenger.sent == []
        assert await kit.count(envelopes_t) == 0
        assert (await kit.cohort(cohort.id)).spent_minor == 0
        # The close step (also due) finds no envelope and sends nothing.
        close = await kit.step(cohort.id, "d1_envelope.close")
        assert close.status == "done"
        assert close.outcome is not None and close.outcome["note"] == "the envelope never opened"
        assert kit.messenger.edits == []
    else:
        assert [type(s.message) for s in kit.messenger.sent] == [EnvelopeOffer]
        assert await kit.count(envelopes_t) == 1


async def test_a_late_pitch_still_runs(kit: Kit) -> None:
    cohort = await kit.start()
    await kit.run_until(warmup_at(2, "19:00"))
    kit.messenger.sent.clear()

    report = await kit.tick(warmup_at(2, "20:45"))  # 45 minutes late, window still open

    assert report.done == 1 and report.skipped == 0
    [sent] = kit.messenger.sent
    assert sent.message == ScriptPost("Reply 1 to join the task group.", None, "en")
    assert sent.pinned is True  # the pitch pins by default
    run = await kit.step(cohort.id, "d2_pitch")
    assert run.status == "done"
    assert run.outcome == {"late_seconds": 45 * 60, "message_id": sent.message_id}
    record = await kit.cohort(cohort.id)
    assert record.pitch_opened_at == warmup_at(2, "20:45")
    assert record.pitch_closed_at is None
    assert (await kit.step(cohort.id, "d2_pitch.close")).status == "pending"


async def _before_the_pitch(kit: Kit) -> tuple[CohortRecord, MemberRef]:
    """A cohort with one member, an hour before its pitch is due."""
    cohort = await kit.start()
    [member] = await kit.members(1)
    await kit.run_until(warmup_at(2, "19:00"))
    return cohort, member


async def test_a_one_that_arrives_while_the_pitch_is_on_its_way_counts(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Members see the pitch before Telegram's answer to the send reaches the bot, and
    a quick one's "1" can be handled first: the window is open by then."""
    cohort, member = await _before_the_pitch(kit)
    send, answers = kit.messenger.send, []

    async def send_and_hear_back(chat_id: int, message: Any, *, pin: bool = False) -> int:
        if isinstance(message, ScriptPost) and "Reply 1" in message.text:
            answers.append(await kit.reply()(WARMUP_CHAT, member.user_id, "1"))
        return await send(chat_id, message, pin=pin)

    monkeypatch.setattr(kit.messenger, "send", send_and_hear_back)
    await kit.tick(warmup_at(2, "20:00"))

    assert answers == ["recorded"]
    assert (await kit.step(cohort.id, "d2_pitch")).status == "done"
    assert (await kit.cohort(cohort.id)).pitch_opened_at == warmup_at(2, "20:00")


async def test_a_pitch_refused_by_telegram_opens_no_window_until_it_goes_out(kit: Kit) -> None:
    cohort, member = await _before_the_pitch(kit)
    kit.messenger.fail_next.append(DeliveryError("message is too long", definite=True))

    await kit.tick(warmup_at(2, "20:00"))

    assert (await kit.step(cohort.id, "d2_pitch")).status == "failed"
    assert (await kit.cohort(cohort.id)).pitch_opened_at is None
    assert await kit.reply()(WARMUP_CHAT, member.user_id, "1") == "closed"

    await RetryStep(kit.deps)(cohort.code, "d2_pitch", by="ops")
    await kit.tick(warmup_at(2, "20:30"))

    assert (await kit.step(cohort.id, "d2_pitch")).status == "done"
    assert (await kit.cohort(cohort.id)).pitch_opened_at == warmup_at(2, "20:30")
    assert await kit.reply()(WARMUP_CHAT, member.user_id, "1") == "recorded"


async def test_a_pitch_whose_send_is_in_doubt_keeps_its_window(kit: Kit) -> None:
    """It may be in the group: the members who saw it can answer."""
    cohort, member = await _before_the_pitch(kit)
    kit.messenger.fail_next.append(DeliveryError("timed out", definite=False))

    await kit.tick(warmup_at(2, "20:00"))

    assert (await kit.step(cohort.id, "d2_pitch")).status == "unknown"
    assert (await kit.cohort(cohort.id)).pitch_opened_at == warmup_at(2, "20:00")
    assert await kit.reply()(WARMUP_CHAT, member.user_id, "1") == "recorded"


async def test_a_paused_cohort_is_not_claimed(kit: Kit) -> None:
    cohort = await kit.start()
    async with kit.store.transaction() as tx:
        await tx.cohorts.set_status(cohort.id, "paused", "ops", kit.clock.now())
        await tx.commit()

    report = await kit.tick(warmup_at(1, "09:00"))

    assert report.claimed == 0
    assert kit.messenger.sent == []
    assert (await kit.step(cohort.id, "d1_welcome")).status == "pending"
    async with kit.store.transaction() as tx:
        assert await tx.steps.next_due_at() is None  # paused cohorts have nothing due
        await tx.cohorts.set_status(cohort.id, "running", None, kit.clock.now())
        await tx.commit()

    report = await kit.tick(warmup_at(1, "09:05"))

    assert report.done == 1
    assert len(kit.messenger.sent) == 1


async def test_other_cohorts_run_while_one_is_paused(kit: Kit) -> None:
    paused = await kit.start(chat=WARMUP_CHAT, code="PAUSED")
    running = await kit.start(chat=WARMUP_CHAT - 1, code="RUNNING")
    async with kit.store.transaction() as tx:
        await tx.cohorts.set_status(paused.id, "paused", "ops", kit.clock.now())
        await tx.commit()

    await kit.tick(warmup_at(1, "09:00"))

    assert [s.chat_id for s in kit.messenger.sent] == [WARMUP_CHAT - 1]
    assert (await kit.step(running.id, "d1_welcome")).status == "done"
    assert (await kit.step(paused.id, "d1_welcome")).status == "pending"


# ---------------------------------------------------------------- RunDueSteps: faults


async def test_an_expired_lease_becomes_unknown_and_is_not_resent_until_retried(kit: Kit) -> None:
    cohort = await kit.start()
    claimed_at = warmup_at(1, "09:00")
    kit.clock.set(claimed_at)
    async with kit.store.transaction() as tx:  # a process claims, then dies mid-send
        [run] = await tx.steps.claim_due(
            claimed_at, "crashed", claimed_at + timedelta(minutes=5), 50
        )
        await tx.commit()
    assert run.key == "d1_welcome"

    report = await kit.tick(warmup_at(1, "09:03"))  # the lease still holds
    assert (report.claimed, report.unknown) == (0, 0)
    assert (await kit.step(cohort.id, "d1_welcome")).status == "running"

    report = await kit.tick(warmup_at(1, "09:06"))

    assert report.unknown == 1 and report.claimed == 0
    assert kit.messenger.sent == []
    assert (await kit.step(cohort.id, "d1_welcome")).status == "unknown"
    assert (await kit.tick(warmup_at(1, "09:07"))).claimed == 0
    assert kit.messenger.sent == []

    await RetryStep(kit.deps)(cohort.code, "d1_welcome", by="ops")
    assert (await kit.step(cohort.id, "d1_welcome")).status == "pending"

    report = await kit.tick(warmup_at(1, "09:08"))

    assert report.done == 1
    assert len(kit.messenger.sent) == 1
    run = await kit.step(cohort.id, "d1_welcome")
    assert (run.status, run.attempts) == ("done", 2)
    assert run.outcome is not None and run.outcome["retried_by"] == "ops"
    with pytest.raises(Refused) as refused:  # done is final
        await RetryStep(kit.deps)(cohort.code, "d1_welcome", by="ops")
    assert (refused.value.code, refused.value.params["status"]) == ("cannot_retry", "done")


async def test_an_uncertain_delivery_error_marks_the_run_unknown(kit: Kit) -> None:
    cohort = await kit.start()
    kit.messenger.fail_next.append(DeliveryError("timed out", definite=False))

    report = await kit.tick(warmup_at(1, "09:00"))

    assert (report.claimed, report.done, report.unknown, report.failed) == (1, 0, 1, 0)
    assert kit.messenger.sent == []
    [row] = await kit.rows(
        steps_t.select().where(steps_t.c.cohort_id == cohort.id, steps_t.c.key == "d1_welcome")
    )
    assert (row.status, row.error, row.lease_owner) == ("unknown", "timed out", "tick")
    assert (await kit.tick(warmup_at(1, "09:10"))).claimed == 0
    assert kit.messenger.sent == []
    assert (await kit.cohort(cohort.id)).status == "running"


async def test_a_definite_delivery_error_marks_the_run_failed(kit: Kit) -> None:
    cohort = await kit.start()
    kit.messenger.fail_next.append(DeliveryError("message is too long", definite=True))

    report = await kit.tick(warmup_at(1, "09:00"))

    assert (report.failed, report.unknown) == (1, 0)
    assert (await kit.step(cohort.id, "d1_welcome")).status == "failed"
    assert (await kit.tick(warmup_at(1, "09:10"))).claimed == 0


async def test_chat_unavailable_pauses_the_cohort_and_puts_the_run_back(kit: Kit) -> None:
    cohort = await kit.start()
    kit.messenger.fail_next.append(
        ChatUnavailable("Forbidden: bot was kicked from the supergroup chat", "removed")
    )

    report = await kit.tick(warmup_at(1, "09:00"))

    assert report.paused_cohorts == [cohort.id]
    assert (report.done, report.failed, report.unknown) == (0, 0, 0)
    assert kit.messenger.sent == []
    [row] = await kit.rows(
        steps_t.select().where(steps_t.c.cohort_id == cohort.id, steps_t.c.key == "d1_welcome")
    )
    assert (row.status, row.lease_owner, row.lease_until, row.attempts) == (
        "pending",
        None,
        None,
        1,
    )
    [c] = await kit.rows(cohorts_t.select().where(cohorts_t.c.id == cohort.id))
    # A code, not Telegram's English: /status words it in the reader's language.
    assert (c.status, c.status_reason) == ("paused", "removed")
    assert (await kit.tick(warmup_at(1, "09:01"))).claimed == 0

    async with kit.store.transaction() as tx:  # the leader re-adds the bot: /resume
        await tx.cohorts.set_status(cohort.id, "running", None, kit.clock.now())
        await tx.commit()
    report = await kit.tick(warmup_at(1, "09:02"))

    assert report.done == 1
    assert [s.message for s in kit.messenger.sent] == [
        ScriptPost("Welcome to the group.", None, "en")
    ]


async def test_pause_reasons_are_stored_as_codes_that_read_in_any_language(kit: Kit) -> None:
    cohort = await kit.start()
    await GroupLost(kit.deps)(WARMUP_CHAT, "demoted", ["can_pin_messages", "can_delete_messages"])
    [c] = await kit.rows(cohorts_t.select().where(cohorts_t.c.id == cohort.id))
    assert (c.status, c.status_reason) == (
        "paused",
        "demoted: can_pin_messages, can_delete_messages",
    )
    assert PauseReason.parse(c.status_reason) == PauseReason(
        "demoted", ("can_pin_messages", "can_delete_messages")
    )

    async with kit.store.transaction() as tx:
        await tx.cohorts.set_status(cohort.id, "running", None, kit.clock.now())
        await tx.commit()
    await PauseCohort(kit.deps)(chat_id=WARMUP_CHAT, actor=Actor(42, "Ops"), is_admin=True)
    [c] = await kit.rows(cohorts_t.select().where(cohorts_t.c.id == cohort.id))
    assert (c.status, c.status_reason) == ("paused", "paused_by_leader")


async def test_an_envelope_the_budget_cannot_cover_fails_without_a_send(kit: Kit) -> None:
    cohort = await kit.start()
    await kit.run_until(warmup_at(1, "11:00"))
    async with kit.store.transaction() as tx:  # rewards already spent 1.20 of 1.70
        assert await tx.cohorts.reserve(cohort.id, 120)
        await tx.commit()
    kit.messenger.sent.clear()

    report = await kit.tick(warmup_at(1, "12:00"))

    assert report.failed == 1
    assert kit.messenger.sent == []
    assert await kit.count(envelopes_t) == 0
    assert (await kit.cohort(cohort.id)).spent_minor == 120
    [row] = await kit.rows(
        steps_t.select().where(steps_t.c.cohort_id == cohort.id, steps_t.c.key == "d1_envelope")
    )
    assert row.status == "failed"
    assert "budget" in row.error


async def test_concurrent_ticks_run_each_step_once(kit: Kit) -> None:
    chats = [WARMUP_CHAT - i for i in range(4)]
    cohorts = [await kit.start(chat=chat, code=f"K{i}") for i, chat in enumerate(chats)]
    kit.clock.set(warmup_at(1, "09:00"))

    reports = await asyncio.gather(
        *(RunDueSteps(kit.deps, owner=f"process-{i}", batch=2)() for i in range(3))
    )

    assert sum(r.done for r in reports) == 4
    assert sorted(s.chat_id for s in kit.messenger.sent) == sorted(chats)
    for cohort in cohorts:
        run = await kit.step(cohort.id, "d1_welcome")
        assert (run.status, run.attempts) == ("done", 1)


async def _plans_at_a_busy_instant(
    kit: Kit, wanted: Callable[[str], bool], batch: int = 50
) -> tuple[TickReport, list[str]]:
    """120 cohorts launched together, their statistics gathered (as autovacuum would
    have by then), and a tick of ``batch`` at 09:00, when all of their welcomes are due:
    the plans PostgreSQL makes for the tick's statements that are ``wanted``, as sent."""
    for i in range(120):
        await kit.start(chat=WARMUP_CHAT - i, code=f"K{i}")
    async with kit.store.engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()
    caught: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if wanted(statement):
            caught.append((statement, parameters))

    event.listen(kit.store.engine.sync_engine, "before_cursor_execute", seen)
    try:
        kit.clock.set(warmup_at(1, "09:00"))
        report = await RunDueSteps(kit.deps, batch=batch)()
    finally:
        event.remove(kit.store.engine.sync_engine, "before_cursor_execute", seen)
    plans = []
    async with kit.store.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        for statement, parameters in caught:
            rows = await raw.fetch(f"EXPLAIN {statement}", *parameters)
            plans.append("\n".join(row[0] for row in rows))
        await conn.rollback()
    return report, plans


@pytest.mark.postgres
async def test_a_claim_reads_the_first_due_run_off_its_index_without_sorting(kit: Kit) -> None:
    """Cohorts launched together have their runs due at one instant: each claim (one a
    step) takes the first of them off the (status, due_at, id) index rather than reading
    and sorting them all, as it did on (status, due_at): 0.4 ms a claim on 200 cohorts
    then, 0.1 ms now."""
    if kit.dialect != "postgresql":
        pytest.skip("the plan is PostgreSQL's; SQLite's claims take turns in one process")
    report, plans = await _plans_at_a_busy_instant(
        kit, lambda sql: "FOR UPDATE OF step_runs SKIP LOCKED" in sql
    )

    assert report.done == len(plans) == 50  # a full batch, a claim a step
    assert "ix_step_runs_status_due_at_id" in plans[-1], plans[-1]
    assert "Sort" not in plans[-1], plans[-1]


@pytest.mark.postgres
async def test_the_next_due_instant_is_read_off_the_index_not_from_every_pending_run(
    kit: Kit,
) -> None:
    """Each tick of each process ends by asking when the next run is due. Asked as the
    least due time of every claimable run, PostgreSQL read the whole table (each pending
    run with its cohort, each talk part with its earlier parts): 4 ms on 200 idle
    cohorts, 13 to 43 ms a tick beside a burst of events, long after the last step was
    done. Asked as the first claimable run in due order, it reads one off the index."""
    if kit.dialect != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    # The whole instant in one tick, which then asks what is next (a plain read of a
    # run's due time; the claims lock, and the lease expiry writes).
    report, [plan] = await _plans_at_a_busy_instant(
        kit,
        lambda sql: sql.startswith("SELECT") and "due_at" in sql and "FOR UPDATE" not in sql,
        batch=200,
    )

    assert report.done == 120 and report.next_due == warmup_at(1, "10:00")
    assert "ix_step_runs_status_due_at_id" in plan, plan
    assert "Seq Scan on step_runs" not in plan and "Aggregate" not in plan, plan


# ---------------------------------------------------------------- a whole cohort


async def test_a_whole_cohort_runs_every_step_once_and_finishes(kit: Kit) -> None:
    cohort = await kit.start()
    async with kit.store.transaction() as tx:
        await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
        await tx.commit()

    reports = await kit.run_until(task_at(4, "00:01"))

    assert set((await kit.statuses(cohort.id)).values()) == {"done"}
    assert sum(r.done for r in reports) == len(ALL_KEYS)
    warmup = [type(s.message).__name__ for s in kit.messenger.in_chat(WARMUP_CHAT)]
    assert warmup == ["ScriptPost", "ScriptPost", "ScriptPost", "EnvelopeOffer", "ScriptPost"]
    offer = kit.messenger.sent_of(EnvelopeOffer)[0].message
    assert isinstance(offer, EnvelopeOffer)
    assert (offer.total_minor, offer.shares, offer.currency, offer.caption) == (
        100,
        3,
        "USD",
        "Grab it",
    )
    assert offer.expires_at == warmup_at(1, "12:10")
    tasks = [s.message for s in kit.messenger.in_chat(TASK_CHAT)]
    # One message a task day, with every task that unlocks that day (never one a task).
    days = [
        [(t.task_id, t.reward_minor) for t in m.tasks]
        for m in tasks
        if isinstance(m, TasksUnlocked)
    ]
    assert days == [[("invite_fans", 50), ("visitors", None)], [("first_sale", 20)]]
    assert len(tasks) == 2
    # Nobody grabbed: the close edits the offer once to an empty summary and gives the
    # money back to the budget.
    [(chat, message_id, summary)] = kit.messenger.edits
    assert (chat, message_id) == (WARMUP_CHAT, kit.messenger.sent_of(EnvelopeOffer)[0].message_id)
    assert isinstance(summary, EnvelopeSummary)
    assert (summary.claimed, summary.claimed_minor, summary.luckiest_user_id) == (0, 0, None)
    record = await kit.cohort(cohort.id)
    assert record.spent_minor == 0
    assert record.pitch_opened_at == warmup_at(2, "20:00")
    assert record.pitch_closed_at == warmup_at(2, "21:00")
    assert record.status == "finished"
    assert reports[-1].finished_cohorts == [cohort.id]


async def test_a_cohort_does_not_finish_before_its_end(kit: Kit) -> None:
    cohort = await kit.start()
    reports = await kit.run_until(task_at(3, "23:59"))
    assert all(r.finished_cohorts == [] for r in reports)
    assert (await kit.cohort(cohort.id)).status == "running"
    report = await kit.tick(task_at(4, "00:00"))
    assert report.finished_cohorts == [cohort.id]


async def test_an_ops_retry_after_the_grace_period_still_sends(kit: Kit) -> None:
    cohort = await kit.start()
    kit.messenger.fail_next.append(DeliveryError("timed out", definite=False))
    await kit.tick(warmup_at(1, "09:00"))
    assert (await kit.step(cohort.id, "d1_welcome")).status == "unknown"
    kit.clock.set(warmup_at(1, "09:45"))  # ops look at /status and press retry

    await RetryStep(kit.deps)(cohort.code, "d1_welcome", by="ops")
    await kit.tick()

    assert [s.message for s in kit.messenger.sent] == [
        ScriptPost("Welcome to the group.", None, "en")
    ]
    assert (await kit.step(cohort.id, "d1_welcome")).status == "done"


async def test_nothing_more_is_sent_in_a_tick_once_the_cohort_is_paused(kit: Kit) -> None:
    cohort = await kit.start()
    await kit.tick(warmup_at(1, "09:00"))
    kit.messenger.sent.clear()
    kit.messenger.fail_next.append(ChatUnavailable("the bot lost its admin rights"))

    report = await kit.tick(warmup_at(1, "10:05"))  # both talk parts are due

    assert report.paused_cohorts == [cohort.id]
    assert kit.messenger.sent == []
    assert (await kit.step(cohort.id, "d1_talk")).status == "pending"
    assert (await kit.step(cohort.id, "d1_talk.p1")).status == "pending"
