"""The service's log lines: JSON objects (or text on a terminal) with the ids a call
site passes, and nothing shaped like a secret, whatever logged it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from datetime import datetime, timedelta

import pytest

from bot import logs

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"
KEY = "fbk_s4RO74da7mRfJ6_L4daR04hBO-qT78VsVL36IHifQVg"
SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_carry_the_ids_and_hide_secrets() -> None:
    quiet = logging.getLogger("uvicorn.error")
    quiet.setLevel(logging.WARNING)  # as an earlier uvicorn run with log_level="warning" left it
    out = io.StringIO()
    with logs.configured("auto", out) as chosen:
        assert chosen == "json"  # not a terminal
        log = logging.getLogger("funnelbot.test")
        log.warning("cohort %s paused", "SEA-1", extra={"cohort_id": 7, "member_id": 12})
        log.info("calling https://api.telegram.org/bot%s/sendMessage", TOKEN)
        try:
            raise RuntimeError(f"refused with key {KEY} and {SIGNING}")
        except RuntimeError:
            log.exception("failed")
        # (as uvicorn logs it: the message again with colour codes, for its own console)
        quiet.info(
            "Started server process [%d]",
            1,
            extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
        )
    assert quiet.level == logging.WARNING  # the loggers as they were once it is over
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    first = lines[0]
    assert first["message"] == "cohort SEA-1 paused" and first["level"] == "WARNING"
    assert (first["cohort_id"], first["member_id"], first["logger"]) == (7, 12, "funnelbot.test")
    assert datetime.fromisoformat(first["time"]).utcoffset() == timedelta(0)
    assert first["time"].endswith("Z") and "T" in first["time"]
    text = out.getvalue()
    assert TOKEN not in text and KEY not in text and SIGNING not in text
    assert text.count(logs.HIDDEN) >= 3
    assert lines[-1]["logger"] == "uvicorn.error"  # uvicorn's lines are the same JSON
    assert lines[-1]["message"] == "Started server process [1]"
    assert "color_message" not in lines[-1] and "\x1b" not in text


def test_text_on_a_terminal_or_when_asked() -> None:
    with logs.configured("auto", Terminal()) as chosen:
        assert chosen == "text"
    out = io.StringIO()
    with logs.configured("text", out):
        logging.getLogger("funnelbot.test").warning("key %s", KEY)
        assert logging.getLogger("apscheduler").level == logging.WARNING
    line = out.getvalue().strip()
    assert line.endswith(f"WARNING funnelbot.test: key {logs.HIDDEN}")
    root_handlers = logging.getLogger().handlers
    assert not any(getattr(h, "stream", None) is out for h in root_handlers)  # removed


@pytest.mark.parametrize(
    "harmless",
    ["order 8812 paid", "update 123456789 failed", "https://example.com/r/K7P2QX", "fbk_short"],
)
def test_ordinary_text_is_left_alone(harmless: str) -> None:
    assert logs.hide_secrets(harmless) == harmless


async def test_a_tick_that_outlasts_its_interval_is_not_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The service's one job runs as the service schedules it (one instance, coalesced);
    a run that falls due while the last one still runs is skipped without a warning,
    and the scheduler's other warnings still come through."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    scheduler_log = logging.getLogger("apscheduler.scheduler")
    scheduler_log.addFilter(logs.SKIPPED_TICKS)  # as bot.service does
    runs = 0

    async def tick() -> None:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.12)

    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        tick, "interval", seconds=0.03, id="tick", max_instances=1, coalesce=True,
        misfire_grace_time=None,
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="apscheduler"):
        scheduler.start()
        try:
            await asyncio.sleep(0.35)
        finally:
            scheduler.shutdown(wait=False)
        scheduler_log.warning("something else went wrong")
    assert 2 <= runs <= 4  # it ran, one at a time: never every 30 ms
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["something else went wrong"]
    scheduler_log.removeFilter(logs.SKIPPED_TICKS)
    record = logging.LogRecord(
        "apscheduler.scheduler", logging.WARNING, __file__, 1,
        'Execution of job "%s" skipped: maximum number of running instances reached (%d)',
        ("tick", 1), None,
    )  # fmt: skip
    assert not logs.SKIPPED_TICKS.filter(record)  # the line APScheduler writes, as it writes it
