"""``funnelbot step list|retry|skip``: ops decide on a cohort's steps that the tick could
not settle (a send whose outcome is unknown, a failed one, talk parts held behind one),
with the same use cases as ``/retry`` and ``/skip`` in the group."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from bot.cli.common import load_settings, operator, run_use_case
from funnels.kernel.actor import OpsAuthor
from funnels.kernel.records import StepRunRecord
from funnels.ops.steps import Decided, RetryStep, SkipStep, StepsNeedingAttention

step_app = typer.Typer(
    help="Steps that need a decision: a send whose outcome is unknown, one that failed, "
    "and talk parts held behind one."
)

_REFUSALS = {
    "no_cohort": "there is no cohort {code} (the code is in /status and in the answer to /launch)",
    "no_step": "cohort {code} has no step {step!r} (`funnelbot step list {code}` shows the "
    "steps that need a decision, /status the next one)",
    "cannot_retry": "step {step} is {status}: only a step whose outcome is unknown, that "
    "failed or that was skipped can be retried",
    "cannot_skip": "step {step} is {status}: only a step whose outcome is unknown or that "
    "failed can be skipped",
    "step_waiting": "step {step} waits for a decision on {on}: retry or skip {on} first",
}

Cohort = Annotated[
    str, typer.Argument(metavar="COHORT", help="Cohort code, as /status and /launch show it.")
]
Step = Annotated[
    str, typer.Argument(metavar="STEP", help="Step key, as /status shows it (e.g. d2_talk.p1).")
]


def _goes_on(decided: Decided) -> str:
    return (
        f"; the rest of its talk goes on: {', '.join(decided.resumed)}" if decided.resumed else ""
    )


@step_app.command("list")
def step_list(cohort: Cohort) -> None:
    """The cohort's steps that need a decision (unknown, failed, held)."""
    found, steps = run_use_case(
        load_settings(), lambda deps: StepsNeedingAttention(deps)(cohort), _REFUSALS
    )
    if not steps:
        typer.echo(f"cohort {found.code}: no step needs a decision")
        return
    zone = ZoneInfo(found.timezone)
    for run in steps:
        typer.echo(_line(run, zone))


def _line(run: StepRunRecord, zone: ZoneInfo) -> str:
    due = run.due_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
    return f"{run.key}\t{run.status}\tdue {due}\t{run.error or ''}".rstrip()


@step_app.command("retry")
def step_retry(cohort: Cohort, step: Step) -> None:
    """Send a step again at the next tick (unknown, failed or skipped)."""
    by = operator()
    decided = run_use_case(
        load_settings(),
        lambda deps: RetryStep(deps)(cohort, step, by=by, author=OpsAuthor(by)),
        _REFUSALS,
    )
    typer.echo(
        f"step {decided.key} of cohort {decided.cohort.code} goes out again at the next "
        f"tick{_goes_on(decided)}"
    )


@step_app.command("skip")
def step_skip(cohort: Cohort, step: Step) -> None:
    """Move past a step whose outcome is unknown or that failed; it is not sent again."""
    by = operator()
    decided = run_use_case(
        load_settings(),
        lambda deps: SkipStep(deps)(cohort, step, by=by, author=OpsAuthor(by)),
        _REFUSALS,
    )
    typer.echo(f"step {decided.key} of cohort {decided.cohort.code} skipped{_goes_on(decided)}")
