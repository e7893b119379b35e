"""Rewards and payouts on SQLite and PostgreSQL, delivered to a real local HTTP receiver
that checks the Standard Webhooks signatures: the outbox row written with the credit,
retries on the virtual clock, parking after three days, owed rewards paid in order when
the budget is raised, duplicates, a crash before delivery, and concurrent deliverers."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

import bot.payouts
from bot.clock import SystemClock
from bot.payouts import PayoutWorker, WebhookSender
from funnels.deps import Deps
from funnels.kernel.messaging import BudgetUsedUp, RewardNotice, RewardOwed
from funnels.kernel.records import CohortRecord, IncomingEvent, LedgerCredit, MemberRef
from funnels.kernel.stages import Stage
from funnels.ladder.events import IngestEvents
from funnels.ladder.payouts import DeliverPayouts, RetryParked
from funnels.ladder.rewards import RaiseBudget, SendRewardNotices
from storage.models import Payout
from tests.support.funnel_kit import (
    TASK_CHAT,
    WARMUP_CHAT,
    Kit,
    Rendezvous,
    ledger_t,
    load,
    task_at,
)
from tests.support.loopback import until
from tests.support.payout_receiver import Receiver, new_secret, payout_receiver

payouts_t = Payout.__table__
DAY1 = task_at(1, "10:00")
DAY2 = task_at(2, "10:00")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with payout_receiver() as running:
        yield running


@pytest.fixture
async def sender(receiver: Receiver) -> AsyncIterator[WebhookSender]:
    # The signature's timestamp is the real time of the attempt, as a receiver checks it.
    sending = WebhookSender(receiver.url, receiver.secret, SystemClock(), timeout=0.5)
    yield sending
    await sending.close()


def deliverer(
    kit: Kit, sender: WebhookSender, owner: str = "test:1", **kw: object
) -> DeliverPayouts:
    """Deliveries with no jitter, so the schedule reads exactly: 30 s, 1 m, 2 m…"""
    return DeliverPayouts(kit.deps, sender, owner=owner, draw=lambda: 0.0, **kw)  # type: ignore[arg-type]


async def task_cohort(kit: Kit, admitted: int) -> tuple[CohortRecord, list[MemberRef], MemberRef]:
    [leader] = await kit.users(1)
    cohort = await kit.start(leader=leader)
    async with kit.store.transaction() as tx:
        await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
        await tx.commit()
    refs = await kit.admitted(cohort, admitted)
    kit.clock.set(task_at(1, "12:00"))
    return cohort, refs, leader


def fans(kit: Kit, member: MemberRef, n: int = 3) -> list[IncomingEvent]:
    return [kit.event("fan.locked", DAY1 + timedelta(minutes=i), member) for i in range(n)]


async def payouts(kit: Kit) -> list[dict[str, object]]:
    rows = await kit.rows(select(payouts_t).order_by(payouts_t.c.id))
    return [dict(r._mapping) for r in rows]


async def ledger_keys(kit: Kit) -> list[str]:
    rows = await kit.rows(select(ledger_t.c.idempotency_key).order_by(ledger_t.c.id))
    return [r.idempotency_key for r in rows]


async def test_a_credit_queues_its_signed_event_and_delivery_sends_it_once(
    kit: Kit, receiver: Receiver, sender: WebhookSender
) -> None:
    cohort, [m], _ = await task_cohort(kit, 1)
    [done] = (await kit.ingest()("platform", fans(kit, m))).completions
    assert done.reward_status == "paid"
    key = f"reward:{cohort.id}:{m.user_id}:invite_fans"

    [row] = await payouts(kit)  # written in the credit's transaction
    assert (row["key"], row["status"], row["amount_minor"], row["attempts"]) == (
        key,
        "pending",
        50,
        0,
    )
    assert await ledger_keys(kit) == [key]

    report = await deliverer(kit, sender)()

    assert (report.claimed, report.delivered) == (1, 1)
    async with kit.store.transaction() as tx:
        ref_code = await tx.users.ref_code(m.user_id)
    assert receiver.received == [
        (
            key,
            {
                "id": key,
                "type": "reward.granted",
                "occurred_at": "2026-03-04T04:00:00.000Z",
                "member": {"ref": ref_code, "telegram_user_id": m.telegram_id},
                "data": {
                    "cohort": cohort.code,
                    "task": "invite_fans",
                    "amount_minor": 50,
                    "amount": "0.50",
                    "currency": "USD",
                    "completed_at": "2026-03-04T02:02:00.000Z",
                },
            },
        )
    ]
    [row] = await payouts(kit)
    assert (row["status"], row["attempts"], row["delivered_at"]) == (
        "delivered",
        1,
        kit.clock.now(),
    )
    assert (await deliverer(kit, sender)()).claimed == 0
    assert receiver.bad_signatures == 0 and len(receiver.attempts) == 1


async def test_a_failing_receiver_is_retried_with_backoff_until_it_recovers(
    kit: Kit, receiver: Receiver, sender: WebhookSender
) -> None:
    _, [m], _ = await task_cohort(kit, 1)
    await kit.ingest()("platform", fans(kit, m))
    receiver.answers = [503, 500, 429, "hang", 404]
    deliver = deliverer(kit, sender)
    start = kit.clock.now()
    errors = []

    for wait in (30, 60, 120, 240, 480):
        report = await deliver()
        assert (report.claimed, report.retried) == (1, 1)
        [row] = await payouts(kit)
        errors.append(row["last_error"])
        assert row["status"] == "pending"
        assert row["next_attempt_at"] == kit.clock.now() + timedelta(seconds=wait)
        assert row["first_attempt_at"] == start
        # Not due yet: nothing is claimed a second early.
        kit.clock.advance(timedelta(seconds=wait - 1))
        assert (await deliver()).claimed == 0
        kit.clock.advance(timedelta(seconds=1))

    report = await deliver()

    assert report.delivered == 1
    assert [e.split(":")[0] for e in errors] == [
        "HTTP 503",
        "HTTP 500",
        "HTTP 429",
        "timed out",
        "HTTP 404",
    ]
    [row] = await payouts(kit)
    assert (row["status"], row["attempts"], row["last_error"]) == ("delivered", 6, None)
    # Every attempt carried the one id; exactly one was accepted.
    assert len(set(receiver.attempts)) == 1 and len(receiver.attempts) == 6
    assert len(receiver.received) == 1


async def test_a_receiver_out_of_reach_is_retried(kit: Kit) -> None:
    _, [m], _ = await task_cohort(kit, 1)
    await kit.ingest()("platform", fans(kit, m))
    async with payout_receiver() as gone:
        url, secret = gone.url, gone.secret
    closed = WebhookSender(url, secret, SystemClock())
    try:
        report = await DeliverPayouts(kit.deps, closed, owner="t", draw=lambda: 0.0)()
    finally:
        await closed.close()

    assert (report.claimed, report.retried) == (1, 1)
    [row] = await payouts(kit)
    assert row["status"] == "pending" and "Cannot connect" in str(row["last_error"])


async def test_a_receiver_that_never_recovers_gets_the_row_parked_after_three_days_then_retried(
    kit: Kit, receiver: Receiver, sender: WebhookSender
) -> None:
    _, [m], _ = await task_cohort(kit, 1)
    await kit.ingest()("platform", fans(kit, m))
    receiver.then = 500
    deliver = deliverer(kit, sender)
    first = kit.clock.now()
    parked = []

    for _ in range(100):
        report = await deliver()
        parked += report.parked
        [row] = await payouts(kit)
        if row["status"] != "pending":
            break
        kit.clock.set(row["next_attempt_at"])  # type: ignore[arg-type]

    assert row["status"] == "parked"
    assert row["parked_at"] == first + timedelta(days=3)
    assert [p.id for p in parked] == [row["id"]]
    assert 15 < int(row["attempts"]) < 30  # type: ignore[call-overload]
    assert len(receiver.attempts) == row["attempts"] and len(set(receiver.attempts)) == 1
    kit.clock.advance(timedelta(days=1))
    assert (await deliver()).claimed == 0  # parked stays parked

    # Ops retry it: the same event goes out again, and this time it is taken.
    receiver.then = 200
    assert await RetryParked(kit.deps)(int(row["id"])) == [row["id"]]  # type: ignore[call-overload]
    report = await deliver()

    assert report.delivered == 1
    [row] = await payouts(kit)
    assert (row["status"], row["attempts"]) == ("delivered", 1)
    assert receiver.ids() == [row["key"]]


async def test_the_budget_runs_out_and_owed_rewards_are_paid_in_order_when_raised(
    kit: Kit, receiver: Receiver, sender: WebhookSender
) -> None:
    # Budget 1.70: three 0.50 rewards fit; the fourth and fifth are owed, in order.
    cohort, refs, leader = await task_cohort(kit, 5)
    ingest = kit.ingest()
    for m in refs:
        await ingest("platform", fans(kit, m))
    assert [p["status"] for p in await payouts(kit)] == ["pending"] * 3 + ["owed"] * 2
    assert (await kit.cohort(cohort.id)).spent_minor == 150
    kit.messenger.notices.clear()

    told = await SendRewardNotices(kit.deps)()

    assert [(c.code, n, s) for c, n, s in told.budget_used_up] == [(cohort.code, 2, 100)]
    assert kit.messenger.notices == [
        (refs[3], RewardOwed("invite_fans", "Invite three fans", 50, "USD", "en")),
        (leader, BudgetUsedUp(cohort.code, 2, 100, "USD", "en")),
        (refs[4], RewardOwed("invite_fans", "Invite three fans", 50, "USD", "en")),
    ]
    assert (await SendRewardNotices(kit.deps)()).told == 0  # told once
    kit.messenger.notices.clear()

    # 0.40 more: 0.60 left, one reward fits; the next waits (the 0.10 left is not enough).
    raised = await RaiseBudget(kit.deps)(cohort.code.lower(), "0.40")

    assert (raised.added_minor, raised.budget_minor, raised.still_owed) == (40, 210, 1)
    assert [p.user_id for p in raised.paid] == [refs[3].user_id]
    assert (await kit.cohort(cohort.id)).spent_minor == 200
    raised = await RaiseBudget(kit.deps)(cohort.code, "1")
    assert [p.user_id for p in raised.paid] == [refs[4].user_id]
    assert (raised.still_owed, raised.still_owed_minor) == (0, 0)
    assert (await kit.cohort(cohort.id)).spent_minor == 250

    await SendRewardNotices(kit.deps)()
    assert kit.messenger.notices == [
        (refs[3], RewardNotice("invite_fans", "Invite three fans", 50, "USD", None, "en")),
        (refs[4], RewardNotice("invite_fans", "Invite three fans", 50, "USD", None, "en")),
    ]
    keys = [f"reward:{cohort.id}:{m.user_id}:invite_fans" for m in refs]
    assert await ledger_keys(kit) == keys
    while (await deliverer(kit, sender, batch=2)()).claimed:
        pass
    assert receiver.ids() == keys  # in the order they were earned
    assert {p["status"] for p in await payouts(kit)} == {"delivered"}

    # The budget runs out again: the next reward is owed, and the leader hears again.
    await ingest("platform", [kit.event("order.paid", DAY2, refs[0])])
    assert (await payouts(kit))[-1]["status"] == "pending"  # 0.20 of the 0.60 left
    kit.clock.set(DAY2)
    for m in refs[1:]:
        await ingest("platform", [kit.event("order.paid", DAY2, m)])
    assert [p["status"] for p in await payouts(kit)][5:] == ["pending"] * 3 + ["owed"] * 2
    kit.messenger.notices.clear()
    await SendRewardNotices(kit.deps)()
    assert [type(n).__name__ for _, n in kit.messenger.notices] == [
        "RewardOwed",
        "BudgetUsedUp",
        "RewardOwed",
    ]


async def test_one_batch_past_the_budget_pays_in_the_order_earned_and_tells_the_leader_once(
    kit: Kit,
) -> None:
    # Budget 1.70: three 0.50 rewards fit. Five members finish in one batch, the last
    # one first: rewards go in the order they were earned, not in the batch's order.
    cohort, refs, _ = await task_cohort(kit, 5)
    events = [
        kit.event("fan.locked", DAY1 + timedelta(minutes=10 * (4 - n) + i), m)
        for n, m in enumerate(refs)
        for i in range(3)
    ]

    result = await kit.ingest()("platform", events)

    assert {c.member: c.reward_status for c in result.completions} == {
        refs[4]: "paid",
        refs[3]: "paid",
        refs[2]: "paid",
        refs[1]: "over_budget",
        refs[0]: "over_budget",
    }
    assert [(p["user_id"], p["status"], p["leader_notice"]) for p in await payouts(kit)] == [
        (refs[4].user_id, "pending", False),
        (refs[3].user_id, "pending", False),
        (refs[2].user_id, "pending", False),
        (refs[1].user_id, "owed", True),  # the first owed tells the leader
        (refs[0].user_id, "owed", False),
    ]
    assert (await kit.cohort(cohort.id)).spent_minor == 150
    assert len(await ledger_keys(kit)) == 3
    raised = await RaiseBudget(kit.deps)(cohort.code, "0.30")
    assert [p.user_id for p in raised.paid] == [refs[1].user_id]


async def test_a_reward_credited_before_under_its_key_is_not_paid_again(kit: Kit) -> None:
    cohort, [m], _ = await task_cohort(kit, 1)
    key = f"reward:{cohort.id}:{m.user_id}:invite_fans"
    async with kit.store.transaction() as tx:
        credit = LedgerCredit(key, m.user_id, cohort.id, "reward", "invite_fans", 50, "USD")
        assert await tx.ledger.credit(credit, DAY1)
        await tx.commit()

    [done] = (await kit.ingest()("platform", fans(kit, m))).completions

    assert (done.task_id, done.reward_status) == ("invite_fans", "duplicate")
    assert await ledger_keys(kit) == [key]
    assert await payouts(kit) == []
    assert (await kit.cohort(cohort.id)).spent_minor == 0
    assert kit.messenger.notices == []


async def test_batches_racing_for_one_budget_spend_it_once_and_owe_the_rest(kit: Kit) -> None:
    # Budget 1.70: room for three rewards; two batches of three finishers each, applied
    # at once (on PostgreSQL both hold their progress rows before either grants).
    cohort, refs, _ = await task_cohort(kit, 6)
    store = (
        kit.store if kit.dialect == "sqlite" else Rendezvous(kit.store, "tasks", "progress_many", 2)
    )
    ingest = IngestEvents(Deps(store, kit.messenger, kit.clock))  # type: ignore[arg-type]

    results = await asyncio.gather(
        ingest("platform", [e for m in refs[:3] for e in fans(kit, m)]),
        ingest("platform", [e for m in refs[3:] for e in fans(kit, m)]),
    )

    statuses = Counter(c.reward_status for r in results for c in r.completions)
    assert statuses == Counter({"paid": 3, "over_budget": 3})
    assert (await kit.cohort(cohort.id)).spent_minor == 150
    assert len(await ledger_keys(kit)) == 3
    rows = await payouts(kit)
    assert Counter(p["status"] for p in rows) == Counter({"pending": 3, "owed": 3})
    assert [p["leader_notice"] for p in rows].count(True) == 1


async def test_a_duplicated_event_never_pays_twice(
    kit: Kit, receiver: Receiver, sender: WebhookSender
) -> None:
    cohort, [m], _ = await task_cohort(kit, 1)
    events = fans(kit, m)
    ingest = kit.ingest()

    results = await asyncio.gather(*(ingest("platform", events) for _ in range(4)))
    await ingest("platform", events[::-1])

    assert sum(len(r.completions) for r in results) == 1
    assert len(await payouts(kit)) == 1
    assert len(await ledger_keys(kit)) == 1
    for _ in range(3):
        await deliverer(kit, sender)()
    assert receiver.ids() == [f"reward:{cohort.id}:{m.user_id}:invite_fans"]
    assert (await kit.cohort(cohort.id)).spent_minor == 50


async def test_a_sale_about_member_b_never_credits_member_a(kit: Kit) -> None:
    [leader] = await kit.users(1)
    cohort = await kit.start(leader=leader)
    a, b = await kit.users(2)
    join = kit.join()
    await join(WARMUP_CHAT, kit.actor(a))
    await join(WARMUP_CHAT, kit.actor(b), added_by=kit.actor(a))  # A brought B in
    for ref in (a, b):
        await kit.force_stage(cohort.id, ref.user_id, Stage.REPLIED)
        assert await kit.admit()(cohort.id, ref.user_id) == "admitted"
    kit.clock.set(DAY2)
    async with kit.store.transaction() as tx:
        a_code = await tx.users.ref_code(a.user_id)

    sale = kit.event("order.paid", DAY2, b, amount=5000, referrer=a_code, inviter=a.telegram_id)
    result = await kit.ingest()("platform", [sale])

    assert [(c.member.user_id, c.task_id) for c in result.completions] == [
        (b.user_id, "first_sale")
    ]
    rows = await kit.rows(select(ledger_t.c.user_id, ledger_t.c.ref))
    assert [(r.user_id, r.ref) for r in rows] == [(b.user_id, "first_sale")]
    assert [p["user_id"] for p in await payouts(kit)] == [b.user_id]
    assert await kit.stage(cohort.id, a.user_id) == Stage.ADMITTED


async def test_a_crash_between_the_credit_and_its_delivery_loses_nothing(
    kit: Kit, receiver: Receiver, sender: WebhookSender
) -> None:
    cohort, [m, n], _ = await task_cohort(kit, 2)
    # The credit commits; the process dies before any delivery ran.
    await kit.ingest()("platform", fans(kit, m))
    [row] = await payouts(kit)
    assert row["status"] == "pending"

    # Another process (or the restart) delivers it at its next tick.
    assert (await deliverer(kit, sender, owner="restarted:2")()).delivered == 1
    assert receiver.ids() == [row["key"]]

    # A process that claimed a row and died mid-send: the row waits for its lease.
    await kit.ingest()("platform", fans(kit, n))
    async with kit.store.transaction() as tx:
        [claimed] = await tx.payouts.claim_due(
            kit.clock.now(), "died:1", kit.clock.now() + timedelta(minutes=2), 10
        )
        await tx.commit()
    other = deliverer(kit, sender, owner="alive:3")
    assert (await other()).claimed == 0
    kit.clock.advance(timedelta(minutes=2, seconds=1))

    assert (await other()).delivered == 1
    assert receiver.ids() == [row["key"], claimed.key]
    assert {p["status"] for p in await payouts(kit)} == {"delivered"}
    assert cohort.id == claimed.cohort_id


async def test_the_worker_delivers_right_after_the_credit_commits(
    kit: Kit, receiver: Receiver, sender: WebhookSender
) -> None:
    _, [m, n], _ = await task_cohort(kit, 2)
    worker = PayoutWorker(kit.deps, sender, "woken:1")
    kit.store.on_rewards = worker.wake
    try:
        await kit.ingest()("platform", fans(kit, m))
        await until(lambda: len(receiver.received) == 1)
        await kit.ingest()("platform", fans(kit, n))
        await until(lambda: len(receiver.received) == 2)
    finally:
        kit.store.on_rewards = None
        await worker.close()
    assert {p["status"] for p in await payouts(kit)} == {"delivered"}


class Burst:
    """Stands in for the event applier's ``settled``: a burst being applied until
    :attr:`over` is set."""

    def __init__(self) -> None:
        self.over = asyncio.Event()
        self.asked: list[float] = []

    async def settled(self, at_most: float) -> None:
        self.asked.append(at_most)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.over.wait(), max(at_most, 0.0))


async def test_deliveries_wait_for_a_burst_of_events_to_be_applied(
    kit: Kit, receiver: Receiver, sender: WebhookSender
) -> None:
    _, [m, n], _ = await task_cohort(kit, 2)
    for member in (m, n):
        await kit.ingest()("platform", fans(kit, member))
    burst = Burst()
    worker = PayoutWorker(kit.deps, sender, "polite:1", give_way=burst.settled)
    try:
        round_ = asyncio.create_task(worker.run())
        await asyncio.sleep(0.3)
        assert receiver.received == []
        assert not round_.done()

        burst.over.set()
        await asyncio.wait_for(round_, 5)
    finally:
        await worker.close()
    assert len(receiver.received) == 2
    assert {p["status"] for p in await payouts(kit)} == {"delivered"}


async def test_deliveries_give_way_for_a_bounded_time_only(
    kit: Kit, receiver: Receiver, sender: WebhookSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.payouts, "GIVE_WAY", 0.3)
    _, [m, n], _ = await task_cohort(kit, 2)
    for member in (m, n):
        await kit.ingest()("platform", fans(kit, member))
    burst = Burst()  # never over: events keep coming
    worker = PayoutWorker(kit.deps, sender, "polite:1", batch=1, give_way=burst.settled)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await asyncio.wait_for(worker.run(), 5)
    finally:
        await worker.close()

    assert loop.time() - started >= 0.3
    assert len(receiver.received) == 2
    # One wait for the round, not one per batch (each look at the queue is a read).
    assert burst.asked == [0.3]


async def test_without_a_payout_url_rows_stay_pending_and_members_are_still_told(
    kit: Kit,
) -> None:
    _, refs, _ = await task_cohort(kit, 4)
    worker = PayoutWorker(kit.deps, None, "no-url:1")
    for m in refs:
        await kit.ingest()("platform", fans(kit, m))
    kit.messenger.notices.clear()

    await worker.run()

    assert [p["status"] for p in await payouts(kit)] == ["pending"] * 3 + ["owed"]
    assert [type(n).__name__ for _, n in kit.messenger.notices] == ["RewardOwed", "BudgetUsedUp"]
    await worker.close()


@pytest.mark.postgres
async def test_concurrent_deliverers_never_send_one_row_twice(kit: Kit, receiver: Receiver) -> None:
    if kit.dialect != "postgresql":
        pytest.skip("SQLite's units of work take turns in one process")
    # Nothing here hangs: a timeout that a loaded machine cannot trip (the shared
    # sender's half second did, once, under the full suite).
    sender = WebhookSender(receiver.url, receiver.secret, SystemClock(), timeout=10)
    try:
        kit.loaded = load(budget="30.00", reward_seats=30)
        _, refs, _ = await task_cohort(kit, 24)
        for m in refs:
            await kit.ingest()("platform", fans(kit, m))
        assert [p["status"] for p in await payouts(kit)] == ["pending"] * 24
        receiver.then = "sleep0.05"
        # Both claim at the same moment (each waits after its claim for the other).
        store = Rendezvous(kit.store, "payouts", "claim_due", 2)
        deps = Deps(store, kit.messenger, kit.clock)  # type: ignore[arg-type]
        first = DeliverPayouts(deps, sender, owner="p:1", batch=8)
        second = DeliverPayouts(deps, sender, owner="p:2", batch=8)

        reports = await asyncio.gather(first(), second())

        assert [r.claimed for r in reports] == [8, 8]
        more = [DeliverPayouts(kit.deps, sender, owner=f"q:{i}", batch=3) for i in range(4)]
        while sum(r.claimed for r in await asyncio.gather(*(d() for d in more))):
            pass
        ids = receiver.ids()
        assert len(ids) == 24 and len(set(ids)) == 24
        assert len(receiver.attempts) == 24
        assert {p["status"] for p in await payouts(kit)} == {"delivered"}
        assert {event["type"] for _, event in receiver.received} == {"reward.granted"}
    finally:
        await sender.close()


async def test_a_receiver_that_refuses_the_signature_gets_it_again_later(
    kit: Kit, receiver: Receiver
) -> None:
    _, [m], _ = await task_cohort(kit, 1)
    await kit.ingest()("platform", fans(kit, m))
    wrong = WebhookSender(receiver.url, new_secret(), SystemClock())
    try:
        report = await DeliverPayouts(kit.deps, wrong, owner="t", draw=lambda: 0.0)()
    finally:
        await wrong.close()

    assert (report.claimed, report.retried, receiver.bad_signatures) == (1, 1, 1)
    assert receiver.received == []
    [row] = await payouts(kit)
    assert (row["status"], row["last_error"]) == ("pending", "HTTP 401: bad signature")


async def test_a_receiver_down_for_an_hour_loses_no_payout_and_pays_none_twice(
    kit: Kit, receiver: Receiver, sender: WebhookSender
) -> None:
    """Fault drill: the platform's receiver answers 503 for an hour of virtual time while
    the worker runs every minute; then it recovers, and every reward arrives once."""
    _, members, _ = await task_cohort(kit, 3)
    for m in members:
        await kit.ingest()("platform", fans(kit, m))
    receiver.then = 503
    deliver = deliverer(kit, sender)
    for _ in range(60):  # the hour, a round a minute
        await deliver()
        kit.clock.advance(timedelta(minutes=1))
    down = await payouts(kit)
    assert {p["status"] for p in down} == {"pending"} and len(down) == 3
    assert receiver.received == []
    assert max(int(p["attempts"]) for p in down) <= 8  # backing off, not hammering it
    receiver.then = 200
    for _ in range(120):  # back: delivered at each row's next attempt
        await deliver()
        if {p["status"] for p in await payouts(kit)} == {"delivered"}:
            break
        kit.clock.advance(timedelta(minutes=1))
    assert {p["status"] for p in await payouts(kit)} == {"delivered"}
    ids = [webhook_id for webhook_id, _ in receiver.received]
    assert len(ids) == 3 and len(set(ids)) == 3  # each reward once
