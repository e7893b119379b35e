"""``funnelbot stats reconcile``: prove the rollups the stats API reads equal a recount
from the rows they sum, and put them right where they do not."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.common import load_settings, run_use_case
from funnels.ops.rollups import Reconciled, ReconcileRollups

stats_app = typer.Typer(help="The stats the HTTP API and the dashboard read.")

_SHOWN = 10
"""Drifting cohorts listed one by one; the rest are counted."""


@stats_app.command(
    "reconcile",
    short_help="Recount the funnel and message rollups from the members' rows; repair any "
    "that differ.",
)
def stats_reconcile(
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Only compare: change nothing, exit 1 if any rollup differs from the recount.",
        ),
    ] = False,
) -> None:
    """Recount every cohort's funnel per day and stage, and its messages per day, from
    the members' rows; compare with the rollups and repair those that differ (exit 0
    when all agree or were repaired)."""
    done = run_use_case(load_settings(), lambda deps: ReconcileRollups(deps)(repair=not check), {})
    typer.echo(_report(done))
    if done.drifts and check:
        raise typer.Exit(1)


def _report(done: Reconciled) -> str:
    if not done.drifts:
        return f"{done.cohorts} cohort(s) checked: the rollups equal the recount"
    verb = "repaired" if done.repaired else "differ (run without --check to repair them)"
    lines = [
        f"{done.cohorts} cohort(s) checked: {len(done.drifts)} {verb}",
    ]
    for drift in done.drifts[:_SHOWN]:
        lines.append(
            f"  cohort {drift.cohort_id}: {len(drift.funnel)} funnel row(s), "
            f"{len(drift.activity)} activity row(s) off"
        )
    if len(done.drifts) > _SHOWN:
        lines.append(f"  … and {len(done.drifts) - _SHOWN} more")
    return "\n".join(lines)
