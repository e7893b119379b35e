"""``funnelbot region add`` and ``funnelbot leader add``: what ops set up before leaders
can /launch (the same use cases the bot's /grant_leader runs)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, TypeVar

import typer

from bot.clock import SystemClock
from bot.messengers import LoggingMessenger
from bot.settings import Settings
from funnels.cohorts import Deps
from funnels.groups import Actor, AddRegion, GrantLeader, Refused
from storage.db import create_engine
from storage.repositories import SqlStore

region_app = typer.Typer(help="Regions: where cohorts run and whose weekly targets count.")
leader_app = typer.Typer(help="Leaders: who may /launch cohorts.")

T = TypeVar("T")

_REFUSALS = {
    "bad_timezone": "{timezone!r} is not an IANA time zone (e.g. Asia/Singapore)",
    "bad_region": "{code!r} is not a usable region code",
    "region_exists": "region {code} exists already",
    "unknown_region": "there is no region {code}; regions: {codes} (add one with "
    "`funnelbot region add`)",
}


def _run(
    settings: Settings,
    use: Callable[[Deps], Awaitable[T]],
    refusals: Mapping[str, str] = _REFUSALS,
) -> T:
    async def main() -> T:
        if settings.embedded:
            from storage.migrate import upgrade_async

            await upgrade_async(settings.database_url)
        engine = create_engine(settings.database_url)
        try:
            deps = Deps(SqlStore(engine), LoggingMessenger(), SystemClock())
            return await use(deps)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except Refused as refused:
        message = refusals.get(refused.code, refused.code).format(**refused.params)
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1) from None


def _settings() -> Settings:
    from bot.cli import _settings as load

    return load()


@region_app.command("add")
def region_add(
    code: Annotated[str, typer.Argument(help="Short code, e.g. SEA.")],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone, e.g. Asia/Singapore.")],
    weekly_target: Annotated[
        int, typer.Option("--weekly-target", min=0, help="Cohorts a week the region aims for.")
    ] = 1,
) -> None:
    """Add a region."""
    region = _run(_settings(), lambda deps: AddRegion(deps)(code, name, tz, weekly_target))
    typer.echo(f"region {region.code} ({region.name}, {region.timezone}) added")


@leader_app.command("add")
def leader_add(
    telegram_id: Annotated[int, typer.Argument(help="The leader's Telegram user id.")],
    region: Annotated[str, typer.Option("--region", help="Region code.")],
    name: Annotated[str, typer.Option("--name", help="Name until Telegram tells us.")] = "",
) -> None:
    """Make a Telegram user a leader in a region (they can /launch from then on)."""
    if telegram_id <= 0:
        typer.echo("error: a Telegram user id is a positive number", err=True)
        raise typer.Exit(1)
    target = Actor(telegram_id, name or str(telegram_id))
    granted = _run(
        _settings(),
        lambda deps: GrantLeader(deps)(target=target, region_code=region, is_admin=True),
    )
    typer.echo(f"user {telegram_id} is a leader in {granted.code}")
