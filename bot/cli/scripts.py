"""`funnelbot script ...`: check funnel scripts and preview their timeline before a launch.

``validate`` reports every problem as ``path:line: field: message`` (warnings prefixed
``warning:``) on stderr and exits 1 if any file has errors. ``preview`` prints, in local
time, every run a cohort of the script would schedule, and the planned spend against
the budget. Neither ever shows a traceback for a bad file or option.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bot.cli.output import fail
from bot.clock import today
from funnels.kernel.durations import format_duration
from funnels.kernel.money import format_minor, to_minor
from funnels.kernel.text import cut
from funnels.kernel.zones import find_zone
from funnels.scripts.checks import planned_spend
from funnels.scripts.loader import LoadedScript, Problem, ScriptError, load_script
from funnels.scripts.model import Script
from funnels.scripts.planner import PlannedStep, plan

app = typer.Typer(
    help="Check funnel scripts and preview their timeline.",
    no_args_is_help=True,
    add_completion=False,
)

_SUMMARY_CHARS = 60


@app.command()
def validate(
    paths: Annotated[
        list[Path],
        typer.Argument(metavar="PATH", help="Script files (YAML) to check.", show_default=False),
    ],
) -> None:
    """Check scripts; exit 0 when all are valid (warnings allowed), 1 otherwise."""
    failed = False
    for path in paths:
        loaded = _load(path)
        if loaded is None:
            failed = True
            continue
        script = loaded.script
        typer.echo(
            f"{path}: ok ({len(script.warmup.steps)} steps, {len(script.tasks.ladder)} tasks)"
        )
    if failed:
        raise typer.Exit(1)


@app.command()
def preview(
    path: Annotated[
        Path, typer.Argument(metavar="PATH", help="Script file (YAML).", show_default=False)
    ],
    start: Annotated[
        str | None,
        typer.Option(
            help="Local date of warm-up day 1, YYYY-MM-DD. Default: today in the zone.",
            metavar="YYYY-MM-DD",
            show_default=False,
        ),
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option(
            help="IANA time zone of the cohort. Default: the script's timezone.",
            metavar="ZONE",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show every scheduled run of a cohort in local time, and the planned spend."""
    start_date: date | None = None
    if start is not None:
        try:
            start_date = date.fromisoformat(start.strip())
        except ValueError:
            fail(f"--start {start!r} is not a date; write it like 2026-03-23")
    loaded = _load(path)
    if loaded is None:
        raise typer.Exit(1)
    script = loaded.script
    zone_name = tz if tz is not None else script.timezone
    zone = find_zone(zone_name)
    if zone is None:
        fail(
            f"--tz {zone_name!r} is not a known time zone; use an IANA name like "
            "Europe/Madrid or Asia/Shanghai"
        )
    if start_date is None:
        start_date = today(zone)

    console = Console(highlight=False)
    if not console.is_terminal:
        # Piped or captured output: keep each run on one line instead of wrapping at 80.
        console = Console(highlight=False, width=200)
    try:
        runs = plan(script, start_date, zone)
    except OverflowError:  # the ladder's days run past the end of the calendar
        fail(f"--start {start_date.isoformat()} is too late: the cohort would end after 9999")
    console.print(_timeline(script, runs, start_date, zone_name))
    for line in _spend_lines(script):
        console.print(Text(line))


def _load(path: Path) -> LoadedScript | None:
    """The script, with warnings echoed; ``None`` after echoing its problems."""
    try:
        loaded = load_script(path)
    except ScriptError as exc:
        _echo_problems(exc.problems)
        return None
    _echo_problems(loaded.warnings)
    return loaded


def _echo_problems(problems: list[Problem]) -> None:
    for problem in problems:
        typer.echo(str(problem), err=True)


def _timeline(script: Script, runs: list[PlannedStep], start: date, zone: str) -> Table:
    table = Table(
        title=Text(f"{script.id} v{script.version}: {script.title}"),
        caption=Text(f"warm-up day 1 is {start.isoformat()}, times in {zone}"),
    )
    table.add_column("Day", no_wrap=True)
    table.add_column("Local time", no_wrap=True)
    table.add_column("Kind", no_wrap=True)
    table.add_column("Key", no_wrap=True)
    table.add_column("Summary")
    for run in runs:
        # Label by the local date of the run, not of its source step, so that a pitch
        # closing on the first task day reads T1 next to that day's date.
        day = (run.local_at.date() - start).days + 1
        label = f"W{day}" if day <= script.warmup.days else f"T{day - script.warmup.days}"
        when = run.local_at.strftime("%a %Y-%m-%d %H:%M %Z")
        table.add_row(label, when, run.kind, Text(run.key), Text(_summary(script, run)))
    return table


def _short(text: str) -> str:
    return cut(" ".join(text.split()), _SUMMARY_CHARS)


def _summary(script: Script, run: PlannedStep) -> str:
    """One line about what a run does, from the script step or task it comes from."""
    currency = script.budget.currency
    if run.kind == "task_unlock":
        task = script.task(run.source)
        reward = f"reward {task.reward.amount} {currency}" if task.reward else "no reward"
        promote = f", promotes to {task.promote}" if task.promote else ""
        return f"{task.title} ({reward}{promote})"
    step = script.step(run.source)
    if run.kind == "post" and step.post is not None:
        return _short(step.post.text)
    if run.kind == "talk_part" and step.talk is not None:
        talk = step.talk
        index = run.part or 0
        if index == 0:
            return _short(f"{talk.title} · {talk.speaker} ({len(talk.parts)} parts)")
        return _short(f"part {index + 1}/{len(talk.parts)}: {talk.parts[index].text}")
    envelope = step.red_envelope
    if run.kind == "red_envelope" and envelope is not None:
        return (
            f"{envelope.total} {currency} in {envelope.shares} shares, "
            f"expires in {format_duration(envelope.expires_in)}"
        )
    if run.kind == "envelope_close":
        return f"envelope {run.source} closes"
    pitch = step.pitch
    if run.kind == "pitch" and pitch is not None:
        return _short(pitch.text)
    if run.kind == "pitch_close" and pitch is not None:
        answers = ", ".join(repr(m) for m in pitch.reply.match)
        return f"replies ({answers}) close, {format_duration(pitch.reply.window)} after the pitch"
    return ""


def _spend_lines(script: Script) -> list[str]:
    """The footer: planned envelope and reward spend against the budget."""
    currency = script.budget.currency
    envelopes, rewards = planned_spend(script)
    per_member = sum(
        to_minor(t.reward.amount, currency) for t in script.tasks.ladder if t.reward is not None
    )
    seats = script.budget.reward_seats
    who = f"{seats} reward seats" if seats is not None else f"{script.capacity} members at capacity"
    budget = to_minor(script.budget.total, currency)

    def money(minor: int) -> str:
        return f"{format_minor(minor, currency)} {currency}"

    return [
        f"Planned envelope spend: {money(envelopes)}",
        f"Planned reward spend: {money(rewards)} ({money(per_member)} per member × {who})",
        (
            f"Budget: {money(budget)} (planned {money(envelopes + rewards)}, "
            f"{money(budget - envelopes - rewards)} left)"
        ),
    ]
