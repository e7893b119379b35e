"""The ``funnelbot`` command line: run, migrate, script, simulate, demo, region, leader,
step, event, cohort, payout, apikey, stats."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bot.cli import admin, demo, events, keys, payouts, scripts, stats, steps
from bot.cli.checks import database_errors, one_line, require_database, require_folder
from bot.cli.common import load_settings
from bot.cli.output import error, fail
from funnels.kernel.money import format_minor
from funnels.scripts.library import DEFAULT_SCRIPT, script_path
from funnels.scripts.loader import LoadedScript, ScriptError, load_script

app = typer.Typer(
    help="funnelbot: 7+21 community onboarding funnels on Telegram.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(scripts.app, name="script")
app.command(
    "demo",
    short_help="Fill the database with a simulated month of 24 cohorts, to try the "
    "dashboard and the API.",
)(demo.demo)
app.add_typer(admin.region_app, name="region")
app.add_typer(admin.leader_app, name="leader")
app.add_typer(steps.step_app, name="step")
app.add_typer(events.event_app, name="event")
app.add_typer(payouts.cohort_app, name="cohort")
app.add_typer(payouts.payout_app, name="payout")
app.add_typer(keys.apikey_app, name="apikey")
app.add_typer(stats.stats_app, name="stats")
out = Console()
err = Console(stderr=True)


@app.command()
def run() -> None:
    """Run the bot, the scheduler tick and the HTTP API in one process."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from bot.service import run as run_service
    from bot.telegram.reach import BotApiRefused

    settings = load_settings()
    require_database(settings.database_url, "FUNNELBOT_DATABASE_URL")
    require_folder(settings.scripts_dir, "FUNNELBOT_SCRIPTS_DIR")
    try:
        run_service(settings)
    except (SQLAlchemyError, CommandError) as exc:  # at start-up: the migration, say
        error(f"FUNNELBOT_DATABASE_URL: {one_line(exc)}")
        raise typer.Exit(1) from None
    except BotApiRefused as exc:  # a token or webhook URL Telegram will not take
        error(str(exc))
        raise typer.Exit(1) from None


@app.command()
def migrate() -> None:
    """Upgrade the database to the newest schema (Alembic head)."""
    from storage.migrate import upgrade

    settings = load_settings()
    require_database(settings.database_url, "FUNNELBOT_DATABASE_URL")
    try:
        upgrade(settings.database_url)
    except Exception as exc:  # report, don't dump a traceback on an operator
        error(f"migration failed: {one_line(exc)}")
        raise typer.Exit(1) from None
    out.print(f"database at head: {settings.database_url.split('@')[-1]}")


@app.command()
def simulate(
    script: Annotated[
        Path | None, typer.Option(help="Script file (default: the shipped 7+21 script).")
    ] = None,
    cohorts: Annotated[int, typer.Option(help="Cohorts to run (6 regions launch weekly).")] = 24,
    members: Annotated[int, typer.Option(help="Members per cohort.")] = 500,
    reply_rate: Annotated[
        float, typer.Option(help="Share of members who answer the pitch with 1 (0..1).")
    ] = 0.35,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same run.")] = 1,
    database_url: Annotated[
        str | None,
        typer.Option(help="Database to run on (default: a temporary SQLite file)."),
    ] = None,
    arm_lift: Annotated[
        list[str] | None,
        typer.Option(
            "--arm-lift",
            metavar="ARM=FACTOR",
            help="A/B: members reply FACTOR times as often in cohorts whose pitch drew ARM "
            "(story=1.2), and go on down the task ladder FACTOR times as likely when their "
            "daily reminders drew ARM; repeatable. The report compares the arms.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run whole cohorts on a virtual clock through the real engine and storage."""
    from bot.simulation import Simulation, SimulationError, SimulationOptions

    loaded = _simulated_script(script)
    options = SimulationOptions(
        cohorts=cohorts,
        members=members,
        reply_rate=reply_rate,
        seed=seed,
        database_url=database_url,
        arm_lift=_arm_lifts(arm_lift or []),
    )
    try:
        options.check()
    except SimulationError as exc:
        error(str(exc))
        raise typer.Exit(1) from None
    if database_url is not None:
        require_database(database_url, "--database-url")

    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
        disable=as_json or not err.is_terminal,
        transient=True,
    ) as progress:
        bar = progress.add_task("sim", total=1.0)
        sim = Simulation(loaded, options, lambda f: progress.update(bar, completed=f))
        with database_errors("--database-url" if database_url else "simulation database"):
            result = asyncio.run(sim.run())
    data = result.as_dict()
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    _print_report(data)


def _arm_lifts(given: list[str]) -> dict[str, float]:
    lifts = {}
    for item in given:
        arm, _, factor = item.partition("=")
        try:
            lifts[arm.strip()] = float(factor)
        except ValueError:
            fail(f"--arm-lift {item!r}: write it as ARM=FACTOR, e.g. story=1.2")
        if not arm.strip():
            fail(f"--arm-lift {item!r}: write it as ARM=FACTOR, e.g. story=1.2")
    return lifts


def _simulated_script(script: Path | None) -> LoadedScript:
    """The script to simulate (``--script``, else the shipped one), or one line per
    problem and exit 1."""
    try:
        return load_script(script or script_path(DEFAULT_SCRIPT))
    except FileNotFoundError as exc:
        fail(str(exc))
    except ScriptError as exc:
        if len(exc.problems) == 1 and exc.problems[0].line is None:  # missing, unreadable
            fail(f"--script {exc.problems[0]}")
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None


def _print_report(data: dict[str, Any]) -> None:
    cur = str(data["currency"])
    funnel = Table(title=f"Funnel over {data['cohorts']} cohorts")
    funnel.add_column("stage")
    funnel.add_column("members", justify="right")
    funnel.add_column("from previous", justify="right")
    for row in data["funnel"]:
        conv = row["conversion"]
        funnel.add_row(row["stage"], str(row["members"]), "" if conv is None else f"{conv:.1%}")
    out.print(funnel)
    env = data["envelopes"]
    rewards = data["rewards"]
    steps = data["steps"]
    run = data["run"]
    money = Table(title="Spend against budget")
    money.add_column("")
    money.add_column(cur, justify="right")
    money.add_row(
        f"envelopes claimed ({env['claims']} shares of {env['count']} envelopes)",
        format_minor(env["claimed_minor"], cur),
    )
    money.add_row(
        f"task rewards paid ({rewards['paid']})", format_minor(rewards["paid_minor"], cur)
    )
    money.add_row("total spend", format_minor(int(data["spend_minor"]), cur))
    money.add_row("budget", format_minor(int(data["budget_minor"]), cur))
    money.add_row(
        f"task rewards owed past the budget ({rewards['owed']})",
        format_minor(rewards["owed_minor"], cur),
    )
    out.print(money)
    payouts = data["payouts"]
    reminders = data["reminders"]
    out.print(
        f"payouts: {payouts['delivered']} delivered, {payouts['pending']} pending, "
        f"{payouts['parked']} parked ({payouts['attempts']} attempts); reminders: "
        f"{reminders['sent']} sent, {reminders['per_member_day']} per member per day"
    )
    for e in data.get("experiments", []):
        arms = Table(title=f"A/B {e['step_key']} ({e['kind']}): {e['detail']}")
        went = "went on" if e["stage"] == "next" else e["stage"]
        for column in ("arm", "cohorts", "members", went, "rate"):
            arms.add_column(column, justify="left" if column == "arm" else "right")
        for a in e["arms"]:
            rate = "" if a["rate"] is None else f"{a['rate']:.1%}"
            arms.add_row(a["arm"], str(a["cohorts"]), str(a["members"]), str(a["converted"]), rate)
        out.print(arms)
    out.print(
        f"steps: {steps['status']}; lateness p95 {steps['late_p95_seconds']} s, "
        f"max {steps['late_max_seconds']} s"
    )
    out.print(
        f"run: {run['wall_seconds']} s wall, {run['steps_run']} steps, "
        f"{run['events']} events (+{run['duplicate_events']} duplicates), "
        f"{run['clicks']} link clicks, "
        f"{run['member_actions']} member actions, {run['messages_sent']} messages"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
