"""``funnelbot cohort budget`` and ``funnelbot payout list|retry``: ops raise a cohort's
reward budget (owed rewards are then paid in order), see the payouts not delivered yet,
and send parked ones again. The running service delivers what these queue at its next
tick and tells the members."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.common import load_settings, operator, run_use_case
from bot.cli.output import error, fail
from funnels.kernel.actor import OpsAuthor
from funnels.kernel.money import format_minor
from funnels.kernel.text import cut
from funnels.ladder.payouts import PayoutLine, PayoutsNeedingAttention, RetryParked
from funnels.ladder.rewards import RaiseBudget

cohort_app = typer.Typer(help="Cohorts: their reward budget.")
payout_app = typer.Typer(
    help="Payouts: reward.granted events to the platform, and rewards owed past a budget."
)

_REFUSALS = {
    "no_cohort": "there is no cohort {code} (the code is in /status and in the answer to /launch)",
    "bad_amount": "--add: {reason}",
    "not_positive": "--add {amount}: the amount to add must be more than zero",
    "no_payout": "there is no payout {id} (`funnelbot payout list` shows them)",
    "not_parked": "payout {id} is {status}: only a parked payout can be retried "
    "(pending ones are retried on their own, owed ones wait for budget)",
}

LIST_LIMIT = 200


@cohort_app.command("budget")
def cohort_budget(
    code: Annotated[str, typer.Argument(metavar="CODE", help="Cohort code, as /status shows it.")],
    add: Annotated[
        str,
        typer.Option(
            "--add", metavar="AMOUNT", help='Amount to add, in the cohort\'s currency ("50.00").'
        ),
    ],
) -> None:
    """Raise a cohort's reward budget; owed rewards are paid in order while it lasts."""
    author = OpsAuthor(operator())
    raised = run_use_case(
        load_settings(), lambda deps: RaiseBudget(deps)(code, add, author=author), _REFUSALS
    )
    cur = raised.cohort.currency
    paid_minor = sum(p.amount_minor for p in raised.paid)
    typer.echo(
        f"cohort {raised.cohort.code}: budget raised by {format_minor(raised.added_minor, cur)} "
        f"to {format_minor(raised.budget_minor, cur)} {cur}; "
        f"{len(raised.paid)} owed rewards paid ({format_minor(paid_minor, cur)} {cur}), "
        f"{raised.still_owed} still owed ({format_minor(raised.still_owed_minor, cur)} {cur})"
    )


def _line(line: PayoutLine) -> str:
    p = line.payout
    amount = f"{format_minor(p.amount_minor, p.currency)} {p.currency}"
    member = f"tg:{line.telegram_id}" if line.telegram_id is not None else f"user:{p.user_id}"
    if p.status == "pending" and p.next_attempt_at is not None:
        when = f"next {p.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
    else:
        when = ""
    fields = [str(p.id), p.status, line.cohort_code, member, p.task_id, amount]
    fields += [f"attempts {p.attempts}", when, p.last_error or ""]
    return "\t".join(fields).rstrip()


@payout_app.command("list")
def payout_list(
    parked: Annotated[
        bool, typer.Option("--parked", help="Only payouts parked after 3 days of failures.")
    ] = False,
) -> None:
    """Payouts not delivered yet (owed, pending, parked), oldest first."""
    lines, total = run_use_case(
        load_settings(),
        lambda deps: PayoutsNeedingAttention(deps)(parked_only=parked, limit=LIST_LIMIT),
        _REFUSALS,
    )
    if not lines:
        typer.echo("no parked payouts" if parked else "every payout is delivered")
        return
    for line in lines:
        typer.echo(_line(line))
    if total > len(lines):
        typer.echo(f"… and {total - len(lines)} more")


@payout_app.command("retry")
def payout_retry(
    payout_id: Annotated[
        str | None, typer.Argument(metavar="ID", help="Payout id, as `payout list` shows it.")
    ] = None,
    all_parked: Annotated[bool, typer.Option("--all-parked", help="Every parked payout.")] = False,
) -> None:
    """Send parked payouts again (same id and body), with a new 3-day window of retries."""
    if (payout_id is None) == (not all_parked):
        error("give one payout ID or --all-parked (not both)")
        raise typer.Exit(2)
    wanted: int | None = None
    if payout_id is not None:
        text = payout_id.strip()
        if not (text.isascii() and text.isdigit() and 0 < len(text) <= 18):
            fail(
                f"{cut(payout_id)!r} is not a payout id: write it in digits, as `payout list` does"
            )
        wanted = int(text)
    ids = run_use_case(load_settings(), lambda deps: RetryParked(deps)(wanted), _REFUSALS)
    if not ids:
        typer.echo("no parked payouts")
        return
    shown = ", ".join(str(i) for i in ids)
    typer.echo(f"payouts {shown} go out again at the next tick of `funnelbot run`")
