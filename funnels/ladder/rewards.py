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


async def grant_reward(
    tx: LadderTx,
    cohort: CohortRecord,
    member: MemberRef,
    task: Task,
    completed_at: datetime,
    now: datetime,
) -> Grant:
    """Credit ``member``'s reward for ``task`` and queue its event, or record it as owed."""
    amount = to_minor(task.reward.amount, cohort.currency) if task.reward else 0
    if not amount:
        return Grant("none", 0)
    due = RewardDue(
        reward_key(cohort.id, member.user_id, task.id),
        cohort.id,
        member.user_id,
        task.id,
        amount,
        cohort.currency,
        completed_at,
    )
    owing = await tx.payouts.has_owed(cohort.id)
    if not owing and await tx.cohorts.reserve(cohort.id, amount):
        if await _credit(tx, due, now):
            await tx.payouts.queue(due, await _event_body(tx, cohort, due, now), now)
            return Grant("paid", amount)
        await tx.cohorts.release(cohort.id, amount)  # paid before under this key
        return Grant("duplicate", amount)
    # The first owed reward of a run of them tells the leader; later ones queue quietly.
    await tx.payouts.owe(due, now, tell_leader=not owing)
    return Grant("over_budget", amount)


async def _credit(tx: LadderTx, due: RewardDue, now: datetime) -> bool:
    entry = LedgerCredit(
        due.key, due.user_id, due.cohort_id, "reward", due.task_id, due.amount_minor, due.currency
    )
    return await tx.ledger.credit(entry, now)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _event_body(tx: LadderTx, cohort: CohortRecord, due: RewardDue, now: datetime) -> str:
    """The ``reward.granted`` event as the platform receives it, fixed at the credit so
    every delivery attempt sends the same bytes. Shaped like the events the platform
    sends us (``id``, ``type``, ``occurred_at``, ``member``, ``data``)."""
    member = await tx.users.ref(due.user_id)
    event = {
        "id": due.key,
        "type": REWARD_EVENT,
        "occurred_at": _iso(now),
        "member": {
            "ref": await tx.users.ref_code(due.user_id),
            "telegram_user_id": member.telegram_id if member else None,
        },
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
                if not await _credit(tx, due, now):  # credited before: only the spend goes
                    await tx.cohorts.release(cohort.id, owed.amount_minor)
                await tx.payouts.grant_owed(owed, await _event_body(tx, cohort, due, now), now)
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
