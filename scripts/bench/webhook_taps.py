#!/usr/bin/env python3
"""Benchmark: taps on red envelopes answered a second in webhook mode (each tap's answer
in the webhook's own reply, which Telegram makes as the call) against long polling (the
bot fetches the taps and answers each on its own direct connections), in the same run,
rounds taking turns.

The local Bot API server runs in a process of its own, as Telegram's servers run on
machines of their own, and delivers as Telegram does: to the webhook over up to 40
connections at once, making the method call a reply carries; to long polling in pages of
100. The bot runs in this process as ``funnelbot run`` builds it: the update inbox, the
tap path, and for the webhook the app served by uvicorn. Each round opens an envelope
with a share for every member and has every member tap it at once; its time runs from
the first tap queued at the server to the last answer recorded there. The money is
checked after every round (each share claimed once). Beside the rates: the answers the
bot sent as requests of its own, and its CPU time a tap (this process, which is the bot;
the server's work, Telegram's in life, is not in it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import secrets
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import uvicorn
from sqlalchemy import func, select

from bot.heap import settle_heap
from bot.http.app import create_app
from bot.http.webhook import TelegramWebhook
from bot.telegram.app import allowed_updates
from bot.telegram.polling import Poller
from funnels.kernel.messaging import EnvelopeOffer
from funnels.warmup.envelopes import split
from scripts.bench.crowd import bot_side, crowd_in_group
from storage.db import create_engine
from storage.migrate import upgrade_async
from storage.models import EnvelopeShare
from storage.uow import SqlStore
from tests.botapi.remote import RemoteBotAPI

TOKEN = "4343:HOOKTAPS"
SECRET = "bench-webhook-secret"
GROUP = -(10**12 + secrets.randbelow(10**9))
NOW = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
MODES = ("webhook", "polling")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    await upgrade_async(url)
    engine = create_engine(url)
    store = SqlStore(engine)
    api: Any = RemoteBotAPI(TOKEN, limits=False, callback_timeout=30.0, webhook_connections=40)
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    own_answers: dict[str, int] = dict.fromkeys(MODES, 0)
    cpu_ms: dict[str, list[float]] = {mode: [] for mode in MODES}
    server: uvicorn.Server | None = None
    serving: asyncio.Task[None] | None = None
    try:
        side = bot_side(TOKEN, api.base_url, store, NOW)
        bot, services, dp, inbox = side.bot, side.services, side.dispatcher, side.inbox
        members = list(range(20_001, 20_001 + args.members))
        cohort, _ = await crowd_in_group(api, services, GROUP, members, NOW)

        port = free_port()
        app = create_app(engine, TelegramWebhook(inbox, SECRET))
        server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                access_log=False,
            )
        )  # fmt: skip
        serving = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.01)
        hook_url = f"http://127.0.0.1:{port}/telegram/webhook"
        updates = allowed_updates(dp)
        settle_heap()

        for n in range(args.rounds * 2):
            mode = MODES[(n + n // 2) % 2]  # webhook, polling, polling, webhook, ...
            poller: Poller | None = None
            polling: asyncio.Task[None] | None = None
            if mode == "webhook":
                await bot.set_webhook(hook_url, secret_token=SECRET, max_connections=40)
            else:
                await bot.delete_webhook()
                poller = Poller(services.direct, inbox.accept, updates)
                polling = asyncio.create_task(poller.run())
            before = len([c for c in api.calls_of("answerCallbackQuery") if c.via == "request"])
            async with store.transaction() as tx:
                envelope = await tx.envelopes.open(
                    cohort.id,
                    f"hook_{n}",
                    "USD",
                    split(args.members * 100, args.members, 1, random.Random(n)),
                    NOW,
                    NOW + timedelta(minutes=10),
                )
                await tx.commit()
            offer = EnvelopeOffer(
                envelope.id, args.members * 100, "USD", args.members, envelope.expires_at, None,
                "en",
            )  # fmt: skip
            message_id = await services.messenger.send(GROUP, offer)
            async with store.transaction() as tx:
                await tx.envelopes.set_message(envelope.id, GROUP, message_id)
                await tx.commit()

            began, cpu = time.perf_counter(), time.process_time()
            queries = [api.tap(GROUP, message_id, tg)["callback_query"]["id"] for tg in members]
            deadline = began + 60
            while len(api.answers_to(queries)) < len(queries):
                if time.perf_counter() > deadline:
                    raise SystemExit(f"round {n} ({mode}): not every tap was answered in 60 s")
                await asyncio.sleep(0.005)
            took = time.perf_counter() - began
            rates[mode].append(len(queries) / took)
            cpu_ms[mode].append((time.process_time() - cpu) * 1000 / len(queries))
            own_answers[mode] += (
                len([c for c in api.calls_of("answerCallbackQuery") if c.via == "request"]) - before
            )
            if poller is not None and polling is not None:
                poller.stop()
                await polling
            await inbox.drain(10.0)
            async with engine.connect() as conn:
                claimed = (
                    await conn.execute(
                        select(func.count()).where(
                            EnvelopeShare.envelope_id == envelope.id,
                            EnvelopeShare.user_id.is_not(None),
                        )
                    )
                ).scalar()
            if claimed != args.members:
                raise SystemExit(f"round {n} ({mode}): {claimed} shares claimed of {args.members}")
            print(f"  round {n + 1}: {mode:<8} {rates[mode][-1]:8,.0f} taps/s", file=sys.stderr)
        await services.close()
    finally:
        if server is not None and serving is not None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await serving
        api.close()
        await engine.dispose()
    rates["cpu_webhook"] = cpu_ms["webhook"]
    rates["cpu_polling"] = cpu_ms["polling"]
    rates["own_webhook"] = [float(own_answers["webhook"])]
    rates["own_polling"] = [float(own_answers["polling"])]
    return rates


def _rounds(values: list[float]) -> str:
    return ", ".join(f"{v:,.0f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=300, help="members tapping a round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of each mode")
    parser.add_argument("--database-url", help="default: a scratch SQLite file")
    args = parser.parse_args()
    url = args.database_url or f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
    rates = asyncio.run(run(url, args))
    hook, poll = statistics.median(rates["webhook"]), statistics.median(rates["polling"])
    print(
        f"\ntaps answered a second, {args.members} members tapping at once, median of"
        f" {args.rounds} rounds each (taking turns):\n"
        f"  webhook (answer in the reply): {hook:8,.0f}   rounds {_rounds(rates['webhook'])}\n"
        f"  long polling (own requests):   {poll:8,.0f}   rounds {_rounds(rates['polling'])}\n"
        f"  webhook / polling = {hook / poll:.2f}\n"
        f"  answers the bot sent as requests of its own: webhook {int(rates['own_webhook'][0])},"
        f" polling {int(rates['own_polling'][0])}\n"
        f"  the bot's CPU a tap (this process, median): webhook"
        f" {statistics.median(rates['cpu_webhook']):.2f} ms,"
        f" polling {statistics.median(rates['cpu_polling']):.2f} ms"
    )
    print(
        "\nreproduce: .venv/bin/python scripts/bench/webhook_taps.py"
        f" --members {args.members} --rounds {args.rounds}"
        + (f" --database-url {args.database_url}" if args.database_url else "")
    )


if __name__ == "__main__":
    main()
