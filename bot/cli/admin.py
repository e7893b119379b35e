"""``funnelbot region add`` and ``funnelbot leader add|remove``: what ops set up before
leaders can /launch (the same use cases the bot's /grant_leader runs), and how a leader's
rights are taken away."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.args import TELEGRAM_ID_LIMIT, telegram_user_id
from bot.cli.common import load_settings, run_use_case
from bot.cli.output import fail
from funnels.kernel.actor import Actor
from funnels.kernel.text import cut
from funnels.people.leaders import GrantLeader, RevokeLeader
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
    "not_leader": "user {id} is not a leader (nothing changed)",
}


@region_app.command("add")
def region_add(
    code: Annotated[str, typer.Argument(metavar="CODE", help="Short code, e.g. SEA.")],
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
        str,
        typer.Argument(
            metavar="TELEGRAM_ID",
            help="The leader's Telegram user id (digits).",
            show_default=False,
        ),
    ],
    region: Annotated[str, typer.Option("--region", help="Region code.")],
    name: Annotated[str, typer.Option("--name", help="Name until Telegram tells us.")] = "",
) -> None:
    """Make a Telegram user a leader in a region (they can /launch from then on)."""
    user_id = _telegram_id(telegram_id)
    target = Actor(user_id, name or str(user_id))
    granted = run_use_case(
        load_settings(),
        lambda deps: GrantLeader(deps)(target=target, region_code=region, is_admin=True),
        _REFUSALS,
    )
    typer.echo(f"user {user_id} is a leader in {granted.code}")


@leader_app.command(
    "remove", short_help="Take a leader's rights away: they cannot /launch from now on."
)
def leader_remove(
    telegram_id: Annotated[
        str,
        typer.Argument(
            metavar="TELEGRAM_ID",
            help="The leader's Telegram user id (digits).",
            show_default=False,
        ),
    ],
) -> None:
    """Take a leader's rights away: from their next command on they cannot /launch (their
    running cohorts go on; pause them with the API if need be)."""
    user_id = _telegram_id(telegram_id)
    role = run_use_case(
        load_settings(),
        lambda deps: RevokeLeader(deps)(telegram_id=user_id, is_admin=True),
        _REFUSALS,
    )
    typer.echo(f"user {user_id} is no longer a leader (now: {role.label})")


def _telegram_id(given: str) -> int:
    user_id = telegram_user_id(given)
    if user_id is None:
        fail(
            f"{cut(given)!r} is not a Telegram user id: write it in digits, "
            f"from 1 to {TELEGRAM_ID_LIMIT - 1}"
        )
    return user_id
