"""The one way the command line reports a problem: a plain ``error: …`` line on stderr
(operators grep them and scripts parse them), then exit code 1."""

from __future__ import annotations

from typing import NoReturn

import typer


def error(message: str) -> None:
    """Say what went wrong, on one unwrapped line."""
    typer.echo(f"error: {message}", err=True)


def fail(message: str) -> NoReturn:
    """Say what went wrong and stop the command with exit code 1."""
    error(message)
    raise typer.Exit(1)
