"""What the commands share: the settings, read with one clear line per bad variable, and
a use case run on the configured database, its refusal worded in one line."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import typer
from pydantic import ValidationError

from bot.cli.checks import database_errors, require_database
from bot.cli.output import error, fail
from bot.clock import service_clock
from bot.composition import build_deps, open_store
from bot.settings import Settings
from funnels.deps import Deps
from funnels.kernel.refusals import Refused

T = TypeVar("T")


def operator() -> str:
    """Who acts at the command line, for the records of what they did."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "ops"
    return f"{user} via the command line"


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for line in settings_problems(exc):
            error(line)
        raise typer.Exit(1) from None


def settings_problems(exc: ValidationError) -> list[str]:
    """One line per problem, naming its variable: ``FUNNELBOT_TICK_SECONDS: Input should
    be greater than 0``. A problem between variables names them itself."""
    lines = []
    for e in exc.errors(include_url=False, include_input=False):
        message = e["msg"].removeprefix("Value error, ")
        if e["loc"]:
            message = f"FUNNELBOT_{'_'.join(str(p) for p in e['loc']).upper()}: {message}"
        lines.append(message)
    return lines


def run_use_case(
    settings: Settings, use: Callable[[Deps], Awaitable[T]], refusals: Mapping[str, str]
) -> T:
    """Run ``use`` on the database of ``settings`` (checked first, migrated when it is
    the embedded one); a refusal is worded from ``refusals`` (by code) as one line."""

    async def main() -> T:
        async with open_store(settings.database_url) as store:
            return await use(build_deps(store, clock=service_clock(settings.clock_file)))

    require_database(settings.database_url, "FUNNELBOT_DATABASE_URL")
    try:
        with database_errors("FUNNELBOT_DATABASE_URL"):
            return asyncio.run(main())
    except Refused as refused:
        fail(refusals.get(refused.code, refused.code).format(**refused.params))
