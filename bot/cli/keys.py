"""``funnelbot apikey create|list|revoke``: the keys that let ops and their tools into
the HTTP API's stats and ops routes (``Authorization: Bearer KEY``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from bot.cli.common import load_settings, run_use_case
from funnels.kernel.records import ApiKeyRecord
from funnels.ops.keys import CreateApiKey, CreateFirstApiKey, ListApiKeys, RevokeApiKey

apikey_app = typer.Typer(
    help="API keys for the HTTP API's stats and ops routes (Authorization: Bearer KEY)."
)

_REFUSALS = {
    "bad_key_name": "{name!r} is not a usable key name: 1 to {limit} printable characters",
    "key_exists": "a key named {name!r} exists already (revoke it first, or pick another name)",
    "unknown_key": "there is no key named {name!r} that is not revoked "
    "(`funnelbot apikey list` shows them)",
}


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC" if at is not None else "never"


@apikey_app.command("create")
def apikey_create(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="What the key is for, e.g. dashboard-sea.")
    ],
    if_none: Annotated[
        bool,
        typer.Option(
            "--if-none",
            help="Only when no key is active yet; otherwise print nothing (scripts/serve).",
        ),
    ] = False,
) -> None:
    """Make a key and print it once: only its hash is kept, so copy it now."""
    if if_none:
        made = run_use_case(load_settings(), lambda deps: CreateFirstApiKey(deps)(name), _REFUSALS)
        if made is None:
            return
        record, key = made
    else:
        record, key = run_use_case(
            load_settings(), lambda deps: CreateApiKey(deps)(name), _REFUSALS
        )
    typer.echo(key)
    typer.echo(
        f"key {record.name!r} created ({record.prefix}…); it is not shown again: "
        "send it as `Authorization: Bearer KEY`",
        err=True,
    )


def _line(key: ApiKeyRecord) -> str:
    state = f"revoked {_when(key.revoked_at)}" if key.revoked_at else "active"
    fields = [key.name, f"{key.prefix}…", state, f"created {_when(key.created_at)}"]
    fields.append(f"last used {_when(key.last_used_at)}")
    return "\t".join(fields)


@apikey_app.command("list")
def apikey_list() -> None:
    """Every key, oldest first: name, first characters, state, when made and last used."""
    keys = run_use_case(load_settings(), lambda deps: ListApiKeys(deps)(), _REFUSALS)
    if not keys:
        typer.echo("no API keys yet (make one with `funnelbot apikey create NAME`)")
        return
    for key in keys:
        typer.echo(_line(key))


@apikey_app.command("revoke")
def apikey_revoke(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The key's name, as `apikey list` shows it.")
    ],
) -> None:
    """Revoke a key at once: the next request with it is refused."""
    record = run_use_case(load_settings(), lambda deps: RevokeApiKey(deps)(name), _REFUSALS)
    typer.echo(f"key {record.name!r} ({record.prefix}…) revoked")
