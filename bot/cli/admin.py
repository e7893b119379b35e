"""``funnelbot region add`` and ``funnelbot leader add``: what ops set up before leaders
can /launch (the same use cases the bot's /grant_leader runs)."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.args import TELEGRAM_ID_LIMIT, telegram_user_id
from bot.cli.common import load_settings, run_use_case
from bot.cli.output import fail
from funnels.kernel.actor import Actor
from funnels.kernel.text import cut
from funnels.people.leaders import GrantLeader
from funnels.people.regions import AddRegion

region_app = typer.Typer(help="Regions: where cohorts run and whose weekly targets count.")
leader_app = typer.Typer(help="Leaders: who may /launch cohorts.")

_REFUSALS = {
    "bad_timezone": "{timezone!r} is not an IANA time zone (e.g. Asia/Singapore)",
    "bad_region": "{code!r} is not a usable region code: 1 to 32 letters, digits, - or _",
    "bad_region_name": "{name!r} is not a usable region name: 1 to 128 printable characters",
    "region_exists": "region {code} exists already",
    "unknown_region": "there is no region {code}; regions: {codes} (add one with "
    "`funnelbot region add`)",
}


@region_app.command("add")
def region_add(
    code: Annotated[str, typer.Argument(help="Short code, e.g. SEA.")],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone, e.g. Asia/Singapore.")],
    weekly_target: Annotated[
        int,
        typer.Option(
            "--weekly-target", min=0, max=1000, help="Cohorts a week the region aims for."
        ),
    ] = 1,
) -> None:
    """Add a region."""
    region = run_use_case(
        load_settings(), lambda deps: AddRegion(deps)(code, name, tz, weekly_target), _REFUSALS
    )
    typer.echo(f"region {region.code} ({region.name}, {region.timezone}) added")


@leader_app.command("add")
def leader_add(
    telegram_id: Annotated[
        str, typer.Argument(help="The leader's Telegram user id (digits).", show_default=False)
    ],
    region: Annotated[str, typer.Option("--region", help="Region code.")],
    name: Annotated[str, typer.Option("--name", help="Name until Telegram tells us.")] = "",
) -> None:
    """Make a Telegram user a leader in a region (they can /launch from then on)."""
    user_id = telegram_user_id(telegram_id)
    if user_id is None:
        shown = cut(telegram_id)
        fail(
            f"{shown!r} is not a Telegram user id: write it in digits, "
            f"from 1 to {TELEGRAM_ID_LIMIT - 1}"
        )
    target = Actor(user_id, name or str(user_id))
    granted = run_use_case(
        load_settings(),
        lambda deps: GrantLeader(deps)(target=target, region_code=region, is_admin=True),
        _REFUSALS,
    )
    typer.echo(f"user {user_id} is a leader in {granted.code}")
