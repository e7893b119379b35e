"""``funnelbot demo``: a simulated month (six regions, 24 cohorts) in the configured
database, to look at through the stats API and the dashboard; refused where real cohorts
are (:mod:`bot.simulation.demo` says what is the demo's)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bot.cli.checks import database_errors, require_database
from bot.cli.common import load_settings
from bot.cli.output import fail
from bot.clock import SystemClock
from bot.settings import Settings
from bot.simulation import SimulationError
from bot.simulation.demo import COHORTS, MEMBERS, REGIONS, Demo, DemoMade, RealCohorts
from funnels.scripts.library import DEFAULT_SCRIPT, script_path
from funnels.scripts.loader import load_script

err = Console(stderr=True)


def demo(
    members: Annotated[
        int,
        typer.Option(
            min=10,
            max=500,
            help=f"Members per cohort. {MEMBERS} take under a minute on SQLite; "
            "500 (a full cohort) take a few minutes.",
        ),
    ] = MEMBERS,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same month.")] = 1,
) -> None:
    """Fill the database (FUNNELBOT_DATABASE_URL, by default ./funnelbot.db) with a
    simulated month: six regions (codes DEMO-…) launching a cohort a week each, 24
    cohorts run to their end through the real engine and storage. A database that holds
    real cohorts is refused, with nothing changed; one that holds the demo already is
    left as it is (exit 0): to make it again, delete the database file."""
    settings = load_settings()
    require_database(settings.database_url, "FUNNELBOT_DATABASE_URL")
    loaded = load_script(script_path(DEFAULT_SCRIPT))
    today = SystemClock().now().date()
    make = Demo(settings.database_url, loaded, today, members=members, seed=seed)
    with Progress(
        TextColumn(f"simulating {COHORTS} cohorts"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
        transient=True,
    ) as progress:
        bar = progress.add_task("demo", total=1.0)
        try:
            with database_errors("FUNNELBOT_DATABASE_URL"):
                made = asyncio.run(make(lambda f: progress.update(bar, completed=f)))
        except (RealCohorts, SimulationError) as exc:
            fail(str(exc))
    where = _shown(settings)
    if not isinstance(made, DemoMade):
        typer.echo(
            f"{where} holds the demo already ({made.cohorts} cohorts in the regions "
            f"{REGIONS[0][0]} … {REGIONS[-1][0]}); nothing changed. To make it again, "
            "delete the database file or point FUNNELBOT_DATABASE_URL at another one."
        )
        _how_to_look(settings)
        return
    s = made.stages
    typer.echo(
        f"demo made in {made.seconds:.0f} s: {made.cohorts} cohorts in {len(made.regions)} "
        f"regions ({', '.join(made.regions)}), {made.members:,} members, into {where}"
    )
    typer.echo(
        f"  cohorts started every Monday from {made.first_start} to {made.last_start}, "
        "one a week in each region, and have all run their course"
    )
    typer.echo(
        f"  {s.get('joined', 0):,} joined, {s.get('replied', 0):,} answered the pitch, "
        f"{s.get('admitted', 0):,} admitted, {s.get('sold', 0):,} sold, "
        f"{s.get('shopkeeper', 0):,} shopkeepers, {s.get('supervisor', 0):,} supervisors"
    )
    _how_to_look(settings)


def _shown(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


def _how_to_look(settings: Settings) -> None:
    served = f"http://{settings.http_host}:{settings.http_port}"
    base = (settings.public_url or served).rstrip("/")
    typer.echo("Look at it:")
    typer.echo(
        f"  scripts/serve      serves {served} (on a database with no API key yet it makes "
        "one and prints it once)"
    )
    typer.echo("  or make a key:     funnelbot apikey create NAME")
    typer.echo(f"  then:              curl -H 'Authorization: Bearer KEY' {base}/api/v1/cohorts")
    typer.echo(f"  or log in at       {base}/dashboard with the key")
