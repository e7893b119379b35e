"""``funnelbot event send|status``: post one signed event the way a platform does, to test
an integration by hand; and see how the stored events fared (applied, waiting for
their member, given up)."""

from __future__ import annotations

import json
import re
import secrets
from typing import Annotated

import typer

from bot.cli.common import load_settings, run_use_case
from bot.cli.output import fail
from bot.clock import SystemClock, service_clock
from funnels.kernel.text import cut
from funnels.ladder.events import EventTally

event_app = typer.Typer(
    help="Inbound events: send one signed as a platform would; count them by outcome."
)

_INTEGER = re.compile(r"^-?[0-9]{1,18}$")


def _value(text: str) -> object:
    """``12`` is a number, ``true``/``false`` a flag, anything else text."""
    if _INTEGER.match(text):
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    return text


def _data(pairs: list[str]) -> dict[str, object]:
    data: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--data {cut(pair)!r}: write it as key=value, e.g. --data template=day3_post")
        data[key] = _value(value)
    return data


@event_app.command("send")
def send(
    type_: Annotated[
        str, typer.Option("--type", help="Event type, e.g. order.paid or fan.locked.")
    ],
    member: Annotated[
        str | None, typer.Option("--member", help="The member's ref code (see /mylink).")
    ] = None,
    telegram_id: Annotated[
        int | None, typer.Option("--telegram-id", help="Or the member's Telegram user id.")
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option("--data", help="A data field as key=value; repeat for more."),
    ] = None,
    event_id: Annotated[
        str | None, typer.Option("--id", help="Event id (default: a new one each time).")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(help="The service's base URL (default: FUNNELBOT_HTTP_HOST and _PORT)."),
    ] = None,
) -> None:
    """Sign one event with FUNNELBOT_EVENTS_SECRET and post it to /api/v1/events."""
    import httpx
    from standardwebhooks.webhooks import Webhook

    settings = load_settings()
    if settings.events_secret is None:
        fail("FUNNELBOT_EVENTS_SECRET is not set: it signs the event (use the service's secret)")
    if (member is None) == (telegram_id is None):
        fail("name the member with --member REF or --telegram-id ID (one of them)")
    now = SystemClock().now()  # the signature's time is the machine's
    event = {
        "id": event_id or f"cli-{secrets.token_hex(8)}",
        "type": type_,
        "occurred_at": service_clock(settings.clock_file).now().isoformat(),
        "member": {"ref": member} if member is not None else {"telegram_user_id": telegram_id},
        "data": _data(data or []),
    }
    body = json.dumps(event)
    message_id = f"msg_{secrets.token_hex(12)}"
    webhook = Webhook(settings.events_secret.get_secret_value())
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": webhook.sign(message_id, now, body),
        "content-type": "application/json",
    }
    base = (url or f"http://{settings.http_host}:{settings.http_port}").rstrip("/")
    try:
        answer = httpx.post(f"{base}/api/v1/events", content=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        fail(f"could not post to {cut(base, 80)}: {exc or type(exc).__name__}")
    if answer.status_code != 202:
        try:
            problem = answer.json()
            said = f"{problem.get('title', '')}: {problem.get('detail', '')}"
        except ValueError:
            said = cut(answer.text.strip().replace("\n", " "), 120) or "no explanation"
        fail(f"{answer.status_code} from {cut(base, 80)}: {said}")
    counts = answer.json()
    verdict = "stored" if counts.get("accepted") else "already stored (a repeat: not counted)"
    typer.echo(f"202 {event['id']}: {verdict}")


@event_app.command("status")
def status() -> None:
    """How many stored events were applied, wait for their member, or were given up."""
    tally = run_use_case(load_settings(), lambda deps: EventTally(deps)(), {})
    if not tally:
        typer.echo("no events stored yet")
        return
    for (state, outcome), count in sorted(tally.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        typer.echo(f"{state}\t{outcome or '-'}\t{count}")
