"""``funnelbot cohort budget`` and ``funnelbot payout list|retry`` on real SQLite and
PostgreSQL: what ops see, what changes, and one clear ``error:`` line for bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from funnels.kernel.records import CohortRecord, MemberRef
from storage.models import Payout
from tests.support.cli import error_line, funnelbot
from tests.support.funnel_kit import TASK_CHAT, Kit, cohorts_t, ledger_t, task_at

payouts_t = Payout.__table__


async def owing(kit: Kit, owed: int = 2) -> tuple[CohortRecord, list[MemberRef]]:
    """Cohort SPRING with three rewards paid and ``owed`` more owed (budget 1.70)."""
    cohort = await kit.start(code="SPRING")
    async with kit.store.transaction() as tx:
        await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
        await tx.commit()
    refs = await kit.admitted(cohort, 3 + owed)
    kit.clock.set(task_at(1, "12:00"))
    for m in refs:
        fans = [
            kit.event("fan.locked", task_at(1, "10:00") + timedelta(minutes=i), m) for i in range(3)
        ]
        await kit.ingest()("platform", fans)
    return cohort, refs


async def statuses(kit: Kit) -> list[str]:
    return [r.status for r in await kit.rows(select(payouts_t.c.status).order_by(payouts_t.c.id))]


async def test_budget_add_pays_owed_rewards_in_order(cli: Kit) -> None:
    _, refs = await owing(cli)

    result = await funnelbot("cohort", "budget", "spring", "--add", "0.50")

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "cohort SPRING: budget raised by 0.50 to 2.20 USD; 1 owed rewards paid (0.50 USD), "
        "1 still owed (0.50 USD)\n"
    )
    assert await statuses(cli) == ["pending"] * 4 + ["owed"]
    rows = await cli.rows(select(ledger_t.c.user_id).order_by(ledger_t.c.id))
    assert [r.user_id for r in rows] == [m.user_id for m in refs[:4]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("NOPE", "--add", "5"),
            "error: there is no cohort 'NOPE' (the code is in /status and in the answer to "
            "/launch)",
        ),
        (("SPRING", "--add", "abc"), "error: --add: 'abc' is not an amount; write it like"),
        (("SPRING", "--add", "0.001"), "error: --add: 0.001 has more than 2 decimal places"),
        (("SPRING", "--add", "0"), "error: --add '0': the amount to add must be more than zero"),
        (("SPRING", "--add", "-5"), "error: --add '-5': the amount to add must be more than"),
        (("SPRING", "--add", "NaN"), "error: --add: 'NaN' is not an amount;"),
        (("SPRING", "--add", "1" * 20), "error: --add: 11111111111111111111 is too large"),
    ],
)
async def test_budget_add_refuses_bad_input_and_changes_nothing(
    cli: Kit, args: tuple[str, ...], message: str
) -> None:
    cohort, _ = await owing(cli)

    line = error_line(await funnelbot("cohort", "budget", *args))

    assert line.startswith(message), line
    [row] = await cli.rows(select(cohorts_t.c.budget_minor, cohorts_t.c.spent_minor))
    assert (row.budget_minor, row.spent_minor) == (cohort.budget_minor, 150)
    assert await statuses(cli) == ["pending"] * 3 + ["owed"] * 2


async def test_payout_list_shows_what_is_not_delivered(cli: Kit) -> None:
    cohort, refs = await owing(cli, owed=1)
    async with cli.store.transaction() as tx:
        await tx.conn.execute(
            update(payouts_t)
            .where(payouts_t.c.id == 2)
            .values(status="parked", attempts=21, last_error="HTTP 500")
        )
        await tx.commit()

    everything = await funnelbot("payout", "list")
    parked = await funnelbot("payout", "list", "--parked")

    assert everything.exit_code == 0, everything.output
    lines = everything.stdout.splitlines()
    assert [line.split("\t")[:6] for line in lines] == [
        ["1", "pending", "SPRING", f"tg:{refs[0].telegram_id}", "invite_fans", "0.50 USD"],
        ["2", "parked", "SPRING", f"tg:{refs[1].telegram_id}", "invite_fans", "0.50 USD"],
        ["3", "pending", "SPRING", f"tg:{refs[2].telegram_id}", "invite_fans", "0.50 USD"],
        ["4", "owed", "SPRING", f"tg:{refs[3].telegram_id}", "invite_fans", "0.50 USD"],
    ]
    assert lines[1].endswith("attempts 21\t\tHTTP 500")
    assert parked.stdout.splitlines() == [lines[1]]
    assert cohort.code == "SPRING"


async def test_payout_retry_puts_parked_payouts_back(cli: Kit) -> None:
    await owing(cli, owed=0)
    async with cli.store.transaction() as tx:
        await tx.conn.execute(
            update(payouts_t).where(payouts_t.c.id.in_([1, 3])).values(status="parked")
        )
        await tx.commit()

    one = await funnelbot("payout", "retry", "3")
    rest = await funnelbot("payout", "retry", "--all-parked")
    none_left = await funnelbot("payout", "retry", "--all-parked")

    assert one.stdout == "payouts 3 go out again at the next tick of `funnelbot run`\n"
    assert rest.stdout == "payouts 1 go out again at the next tick of `funnelbot run`\n"
    assert none_left.stdout == "no parked payouts\n"
    assert await statuses(cli) == ["pending"] * 3
    assert (await funnelbot("payout", "list", "--parked")).stdout == "no parked payouts\n"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((), 2, "error: give one payout ID or --all-parked (not both)"),
        (("1", "--all-parked"), 2, "error: give one payout ID or --all-parked (not both)"),
        (("x1",), 1, "error: 'x1' is not a payout id: write it in digits"),
        (("99",), 1, "error: there is no payout 99 (`funnelbot payout list` shows them)"),
        (("1",), 1, "error: payout 1 is pending: only a parked payout can be retried"),
        (("4",), 1, "error: payout 4 is owed: only a parked payout can be retried"),
    ],
)
async def test_payout_retry_refuses_bad_input(
    cli: Kit, args: tuple[str, ...], code: int, message: str
) -> None:
    await owing(cli, owed=1)

    line = error_line(await funnelbot("payout", "retry", *args), code)

    assert line.startswith(message), line
    assert await statuses(cli) == ["pending"] * 3 + ["owed"]
