"""The CLI's help reads well on an 80-column terminal: each command's line in a list is
a short summary (the command's own help has the rest), every help page renders, and its
usage line writes arguments as placeholders in capitals."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from bot.cli import app


def _subcommands(command: object) -> dict[str, object]:
    """A group's commands (Typer's own Click: duck-typed), or none."""
    return dict(getattr(command, "commands", {}))


def _root() -> dict[str, object]:
    commands = _subcommands(typer.main.get_command(app))
    assert commands
    return commands


def _groups() -> list[list[str]]:
    """The argument paths of the top level and of every command group."""
    return [[]] + [[name] for name, cmd in _root().items() if _subcommands(cmd)]


def _commands() -> list[list[str]]:
    out: list[list[str]] = []
    for name, cmd in _root().items():
        out += [[name, sub] for sub in _subcommands(cmd)] or [[name]]
    return out


def _help(args: list[str]) -> str:
    result = CliRunner().invoke(
        app, [*args, "--help"], env={"COLUMNS": "80"}, prog_name="funnelbot"
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("args", _groups(), ids=lambda a: " ".join(a) or "funnelbot")
def test_each_command_in_a_list_is_summed_up_in_two_lines_at_most(args: list[str]) -> None:
    listed = _help(args).split("Commands")[1].splitlines()[1:]
    rows: list[list[str]] = []
    for line in listed:
        if not line.startswith("│"):
            break
        cell = line.strip("│ ")
        if line[2] != " ":  # a command's name starts a row
            rows.append([cell])
        else:
            rows[-1].append(cell)
    assert rows
    long = [row for row in rows if len(row) > 2]
    assert not long, f"summaries of more than two lines: {long}"


@pytest.mark.parametrize("args", _commands(), ids=" ".join)
def test_every_command_has_a_help_page_with_its_arguments_in_capitals(args: list[str]) -> None:
    page = _help(args)
    usage = next(line for line in page.splitlines() if "Usage: " in line)
    assert f"funnelbot {' '.join(args)} [OPTIONS]" in usage
    placeholders = re.findall(r"[{\[]([^}\]]+)[}\]]", usage.split("[OPTIONS]", 1)[1])
    assert all(p == p.upper() for p in placeholders), usage  # CODE, not code
