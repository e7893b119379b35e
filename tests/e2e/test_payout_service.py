"""``funnelbot run`` and payouts, as a process: without FUNNELBOT_PAYOUT_WEBHOOK_URL it
says once that payouts are not configured and keeps the credited rewards' events
pending; with it, its tick delivers them, signed, to a real receiver."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.telegram.offline import RecordingMessenger
from funnels.deps import Deps
from funnels.kernel.clock import ManualClock
from storage.db import create_engine
from storage.migrate import upgrade_async
from storage.models import Payout, StepRun
from storage.uow import SqlStore
from tests.botapi import LocalBotAPI
from tests.support.funnel_kit import TASK_CHAT, Kit, load, task_at, warmup_at
from tests.support.payout_receiver import receiving
from tests.support.process import BotProcess, wait_for

pytestmark = pytest.mark.slow

TOKEN = "5252:PAYOUTS"
NOT_CONFIGURED = "payouts are not configured"


async def _seed(url: str) -> str:
    """A cohort whose member finished a rewarded task in March: one pending payout, and
    no step left for the service's tick to run. Its key."""
    await upgrade_async(url)
    engine = create_engine(url)
    try:
        store = SqlStore(engine)
        clock = ManualClock(warmup_at(1, "08:00"))
        messenger = RecordingMessenger()
        kit = Kit(store, clock, messenger, Deps(store, messenger, clock), load())
        cohort = await kit.start()
        async with store.transaction() as tx:
            await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
            await tx.commit()
        [m] = await kit.admitted(cohort, 1)
        kit.clock.set(task_at(1, "12:00"))
        at = task_at(1, "10:00")
        fans = [kit.event("fan.locked", at + timedelta(minutes=i), m) for i in range(3)]
        [done] = (await kit.ingest()("platform", fans)).completions
        assert done.reward_status == "paid"
        async with store.transaction() as tx:
            await tx.conn.execute(update(StepRun.__table__).values(status="skipped"))
            await tx.commit()
        return f"reward:{cohort.id}:{m.user_id}:invite_fans"
    finally:
        await engine.dispose()


async def _statuses(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(Payout.__table__.c.status))
            return [r.status for r in rows]
    finally:
        await engine.dispose()


def test_funnelbot_run_delivers_pending_payouts_once_configured(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/run.db"
    key = asyncio.run(_seed(url))

    with LocalBotAPI(TOKEN) as api:
        bot = BotProcess(tmp_path, api, TOKEN).start()
        wait_for(lambda: NOT_CONFIGURED in bot.output(), "no word about payouts")
        time.sleep(2.5)  # a few ticks, 1 s apart
        assert bot.stop() == 0
        assert bot.output().count(NOT_CONFIGURED) == 1
        assert asyncio.run(_statuses(url)) == ["pending"]

        with receiving() as receiver:
            env = {
                "FUNNELBOT_PAYOUT_WEBHOOK_URL": receiver.url,
                "FUNNELBOT_PAYOUT_SECRET": receiver.secret,
            }
            bot = BotProcess(tmp_path, api, TOKEN, **env).start()
            wait_for(lambda: receiver.ids() == [key], lambda: f"not delivered:\n{bot.output()}")
            assert bot.stop() == 0
        text = bot.output()
        assert NOT_CONFIGURED not in text and "Traceback" not in text, text
        assert receiver.bad_signatures == 0
        [(_, event)] = receiver.received
        assert (event["type"], event["data"]["amount"], event["data"]["currency"]) == (
            "reward.granted",
            "0.50",
            "USD",
        )
    assert asyncio.run(_statuses(url)) == ["delivered"]
