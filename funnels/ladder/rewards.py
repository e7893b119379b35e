"""Task rewards: a finished task's reward is credited once, inside the cohort's budget,
and its ``reward.granted`` event is queued for the platform in the same transaction.

Past the budget a reward is **owed**: recorded in order, the member told it will be
paid, the leader told the budget ran out (once, until the owed rewards are paid). While
any reward of a cohort is owed, later ones queue behind it, so owed rewards are paid in
the order they were earned when ops raise the budget (:class:`RaiseBudget`). Members are
paid for their own tasks only: a reward is keyed by cohort, member and task, and only a
task of the member an event names can complete.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from funnels.deps import Deps
from funnels.kernel.actions import log_action
from funnels.kernel.actor import OpsAuthor
from funnels.kernel.messaging import BudgetUsedUp, Outgoing, RewardNotice, RewardOwed
from funnels.kernel.money import format_minor, to_minor
from funnels.kernel.records import (
    CohortRecord,
    LedgerCredit,
    MemberRef,
    PayoutRecord,
    RewardDue,
)
from funnels.kernel.refusals import Refused
from funnels.kernel.text import brief
from funnels.ladder.ports import LadderTx
from funnels.scripts.model import Task

REWARD_EVENT = "reward.granted"
MAX_BUDGET_MINOR = 2**63 - 1
"""The most a budget column holds (a signed 64-bit integer)."""


def reward_key(cohort_id: int, user_id: int, task_id: str) -> str:
    """The ledger entry's idempotency key, and the payout event's ``webhook-id``."""
    return f"reward:{cohort_id}:{user_id}:{task_id}"


@dataclass(frozen=True, slots=True)
class Grant:
    status: str
    """``paid``, ``over_budget`` (owed: recorded, paid when the budget is raised),
    ``duplicate`` (credited before under its key) or ``none`` (the task has no reward)."""
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Earned:
    """A finished task whose reward is to be granted."""

    cohort: CohortRecord
    member: MemberRef
    task: Task
    completed_at: datetime


async def grant_rewards(
    tx: LadderTx,
    earned: Sequence[Earned],
    now: datetime,
    record: Callable[[list[Grant]], Awaitable[None]] | None = None,
) -> list[Grant]:
    """Credit each finished task's reward with its event queued while the cohort's
    budget allows, else record it as owed: in the order they were earned (ties in the
    order given), in a handful of statements whatever their number. ``record`` writes
    the caller's own rows for the grants, with them.

    The cohorts' budget rows are held only for the last statements before the commit
    (call this last), so that appliers in other processes, which spend from the same
    cohorts, wait for little more than a commit: the rewards are decided on the budgets
    as committed and written, and only then are the rows held and the spend added. If
    the budgets as held decide otherwise (another process spent from them meanwhile),
    what was written is rolled back to a savepoint and written again as they decide.
    Where a reward would be owed, the rows are held first, as the rare case it is."""
    dues = _dues(earned)
    if not dues:
        grants = [Grant("none", 0)] * len(earned)
        if record is not None:
            await record(grants)
        return grants
    # Before the budgets are held: a key is credited only with its member's progress
    # row, which this transaction holds.
    credited = await tx.ledger.credited([d.key for _, d in dues])
    codes = await tx.users.ref_codes(sorted({d.user_id for _, d in dues}))
    cohort_ids = sorted({d.cohort_id for _, d in dues})

    async def decide(held: bool) -> _Plan:
        budgets = tx.cohorts.lock_budgets if held else tx.cohorts.read_budgets
        left = {c: budget - spent for c, (budget, spent) in (await budgets(cohort_ids)).items()}
        return _decide(dues, credited, left, await tx.payouts.owing(cohort_ids), len(earned))

    async def write(plan: _Plan) -> None:
        await _write(tx, plan, earned, codes, now)
        if record is not None:
            await record(plan.grants)

    plan = await decide(held=False)
    if not plan.owed:
        async with tx.savepoint() as attempt:
            await write(plan)
            if await decide(held=True) == plan:
                await tx.cohorts.spend_many(plan.spend)
                return plan.grants
            await attempt.rollback()  # (and the rows it held with it)
    plan = await decide(held=True)
    await write(plan)
    await tx.cohorts.spend_many(plan.spend)
    return plan.grants


def _dues(earned: Sequence[Earned]) -> list[tuple[int, RewardDue]]:
    """The rewards to grant (index in ``earned``, reward), in the order they were earned
    (ties in the order given)."""
    dues: list[tuple[int, RewardDue]] = []
    for i, e in enumerate(earned):
        amount = to_minor(e.task.reward.amount, e.cohort.currency) if e.task.reward else 0
        if amount:
            key = reward_key(e.cohort.id, e.member.user_id, e.task.id)
            due = RewardDue(
                key,
                e.cohort.id,
                e.member.user_id,
                e.task.id,
                amount,
                e.cohort.currency,
                e.completed_at,
            )
            dues.append((i, due))
    dues.sort(key=lambda item: (item[1].completed_at, item[0]))
    return dues


@dataclass(frozen=True, slots=True)
class _Plan:
    grants: list[Grant]
    paid: list[RewardDue]
    owed: list[tuple[RewardDue, bool]]
    """Rewards past the budget, and whether each tells the leader."""
    spend: dict[int, int]
    """Cohort id -> minor units the paid rewards spend."""


def _decide(
    dues: Sequence[tuple[int, RewardDue]],
    credited: set[str],
    left: dict[int, int],
    owing: set[int],
    count: int,
) -> _Plan:
    """Which rewards are paid, owed or credited already, given what each cohort's budget
    has left and which cohorts owe rewards already."""
    grants = [Grant("none", 0)] * count
    credited, left, owing = set(credited), dict(left), set(owing)
    paid: list[RewardDue] = []
    owed: list[tuple[RewardDue, bool]] = []
    spend: Counter[int] = Counter()
    for i, due in dues:
        if due.key in credited:
            grants[i] = Grant("duplicate", due.amount_minor)
        elif due.cohort_id not in owing and due.amount_minor <= left.get(due.cohort_id, 0):
            left[due.cohort_id] -= due.amount_minor
            spend[due.cohort_id] += due.amount_minor
            credited.add(due.key)
            paid.append(due)
            grants[i] = Grant("paid", due.amount_minor)
        else:
            # While a reward is owed, later ones queue behind it; the first of a run of
            # them tells the leader.
            owed.append((due, due.cohort_id not in owing))
            owing.add(due.cohort_id)
            grants[i] = Grant("over_budget", due.amount_minor)
    return _Plan(grants, paid, owed, dict(spend))


async def _write(
    tx: LadderTx,
    plan: _Plan,
    earned: Sequence[Earned],
    codes: dict[int, tuple[str, int | None]],
    now: datetime,
) -> None:
    """The plan's ledger credits and payouts (the spend is the caller's)."""
    if plan.paid:
        await tx.ledger.credit_many([_entry(due) for due in plan.paid], now)
        cohorts = {e.cohort.id: e.cohort for e in earned}
        await tx.payouts.queue_many(
            [
                (due, _event_body(cohorts[due.cohort_id], due, codes[due.user_id], now))
                for due in plan.paid
            ],
            now,
        )
    # After the paid ones: within a cohort, rows are in the order the rewards were earned.
    await tx.payouts.owe_many(plan.owed, now)


def _entry(due: RewardDue) -> LedgerCredit:
    return LedgerCredit(
        due.key, due.user_id, due.cohort_id, "reward", due.task_id, due.amount_minor, due.currency
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event_body(
    cohort: CohortRecord, due: RewardDue, member: tuple[str, int | None], now: datetime
) -> str:
    """The ``reward.granted`` event as the platform receives it, fixed at the credit so
    every delivery attempt sends the same bytes. Shaped like the events the platform
    sends us (``id``, ``type``, ``occurred_at``, ``member``, ``data``). ``member``: the
    member's ref code and Telegram id."""
    ref, telegram_id = member
    event = {
        "id": due.key,
        "type": REWARD_EVENT,
        "occurred_at": _iso(now),
        "member": {"ref": ref, "telegram_user_id": telegram_id},
        "data": {
            "cohort": cohort.code,
            "task": due.task_id,
            "amount_minor": due.amount_minor,
            "amount": format_minor(due.amount_minor, due.currency),
            "currency": due.currency,
            "completed_at": _iso(due.completed_at),
        },
    }
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------- raising the budget


@dataclass(frozen=True, slots=True)
class BudgetRaised:
    cohort: CohortRecord
    added_minor: int
    budget_minor: int
    paid: list[PayoutRecord]
    """Owed rewards paid now, in the order they were earned."""
    still_owed: int
    still_owed_minor: int


def _amount(text: str, currency: str) -> int:
    try:
        minor = to_minor(text, currency)
    except ValueError as exc:
        raise Refused("bad_amount", amount=brief(text), reason=str(exc)) from None
    if minor <= 0:
        raise Refused("not_positive", amount=brief(text))
    return minor


class RaiseBudget:
    """Ops add to a cohort's reward budget (a decimal amount in its currency); owed
    rewards are then paid in the order they were earned until the budget runs out
    again, each credited with its event queued, as if it had fitted at once."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, code: str, amount: str, *, author: OpsAuthor | None = None
    ) -> BudgetRaised:
        """``author``: who in ops asked (the command line, an API key), recorded in the
        cohort's timeline."""
        now = self.deps.clock.now()
        code = code.strip().upper()
        async with self.deps.uow(LadderTx).transaction() as tx:
            cohort = await tx.cohorts.by_code(code) if 0 < len(code) <= 16 else None
            if cohort is None:
                raise Refused("no_cohort", code=brief(code))
            added = _amount(amount, cohort.currency)
            if cohort.budget_minor + added > MAX_BUDGET_MINOR:
                raise Refused("bad_amount", amount=brief(amount), reason="too large a budget")
            budget = await tx.cohorts.raise_budget(cohort.id, added)
            paid: list[PayoutRecord] = []
            waiting = await tx.payouts.owed(cohort.id)
            codes = await tx.users.ref_codes(sorted({owed.user_id for owed in waiting}))
            for owed in waiting:
                if not await tx.cohorts.reserve(cohort.id, owed.amount_minor):
                    break  # in order: a later, smaller reward does not jump the queue
                due = RewardDue(
                    owed.key,
                    owed.cohort_id,
                    owed.user_id,
                    owed.task_id,
                    owed.amount_minor,
                    owed.currency,
                    owed.completed_at,
                )
                if not await tx.ledger.credit(_entry(due), now):  # credited before: no spend
                    await tx.cohorts.release(cohort.id, owed.amount_minor)
                body = _event_body(cohort, due, codes[owed.user_id], now)
                await tx.payouts.grant_owed(owed, body, now)
                paid.append(owed)
            left = waiting[len(paid) :]
            raised = f"+{format_minor(added, cohort.currency)} {cohort.currency}"
            await log_action(tx.ops_actions, cohort.id, author, "budget", raised, now)
            await tx.commit()
        return BudgetRaised(
            cohort, added, budget, paid, len(left), sum(p.amount_minor for p in left)
        )


# ---------------------------------------------------------------- telling people


@dataclass
class NoticeReport:
    told: int = 0
    unreachable: int = 0
    budget_used_up: list[tuple[CohortRecord, int, int]] = field(default_factory=list)
    """Cohorts whose budget just ran out: (cohort, rewards owed, their sum), for the log."""


class SendRewardNotices:
    """Tell members about rewards recorded where the reward itself could not tell them
    at once: owed ones (recorded, paid later) and owed ones paid since (ops raised the
    budget, maybe from the command line); and tell a cohort's leader when its budget
    ran out. Each notice is marked told before it is sent: a crash loses a notice,
    never sends one twice."""

    def __init__(self, deps: Deps, *, batch: int = 100) -> None:
        self.deps = deps
        self.batch = batch

    async def __call__(self) -> NoticeReport:
        report = NoticeReport()
        sends: list[tuple[MemberRef, Outgoing]] = []
        async with self.deps.uow(LadderTx).transaction() as tx:
            taken = await tx.payouts.take_notices(self.batch)
            cohorts: dict[int, CohortRecord] = {}
            for payout in taken:
                cohort = cohorts.get(payout.cohort_id) or await tx.cohorts.get(payout.cohort_id)
                member = await tx.users.ref(payout.user_id)
                if cohort is None or member is None:
                    continue
                cohorts[cohort.id] = cohort
                sends.append((member, self._member_notice(payout, cohort, member)))
                if payout.leader_notice:
                    owed, owed_minor = await tx.payouts.owed_totals(cohort.id)
                    report.budget_used_up.append((cohort, owed, owed_minor))
                    leader = await tx.users.ref(cohort.leader_id) if cohort.leader_id else None
                    if leader is not None:
                        locale = leader.language or cohort.locale
                        told = BudgetUsedUp(cohort.code, owed, owed_minor, cohort.currency, locale)
                        sends.append((leader, told))
            await tx.commit()
        for member, message in sends:
            if await self.deps.messenger.notify(member, message):
                report.told += 1
            else:
                report.unreachable += 1
        return report

    def _member_notice(
        self, payout: PayoutRecord, cohort: CohortRecord, member: MemberRef
    ) -> Outgoing:
        title = self.deps.scripts.get(cohort).task(payout.task_id).title
        locale = member.language or cohort.locale
        amount, currency = payout.amount_minor, payout.currency
        if payout.member_notice == "owed":
            return RewardOwed(payout.task_id, title, amount, currency, locale)
        return RewardNotice(payout.task_id, title, amount, currency, None, locale)
