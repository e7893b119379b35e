"""Running ``funnelbot`` commands in tests and reading their one-line errors."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner, Result

from bot.cli import app


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


async def funnelbot(*args: str) -> Result:
    """A command from an async test: the CLI runs its own event loop, so in a thread."""
    return await asyncio.to_thread(run_cli, *args)


def error_line(result: Result, code: int = 1) -> str:
    """The command's one ``error: …`` line on stderr (nothing on stdout), exit ``code``."""
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    return line
