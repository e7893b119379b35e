"""The file clock (``FUNNELBOT_CLOCK_FILE``) that drills and benchmarks run real
processes on: read when the file changes, never backwards, a bad file refused at the
start and ignored (said once) while running."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.clock import ClockFileError, FileClock, SystemClock, service_clock, write_instant
from bot.settings import Settings

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_now_is_what_the_file_holds_as_it_moves(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    write_instant(path, T0)
    clock = FileClock(path)
    assert clock.now() == T0
    write_instant(path, T0 + timedelta(hours=3))
    assert clock.now() == T0 + timedelta(hours=3)
    # Another zone's offset is the same instant, given back in UTC.
    write_instant(path, datetime(2026, 3, 2, 20, 0, tzinfo=timezone(timedelta(hours=8))))
    assert clock.now() == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert clock.now().tzinfo == UTC


def test_a_change_within_the_timestamp_granularity_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "clock"
    write_instant(path, T0)
    clock = FileClock(path)
    stamp = os.stat(path)
    write_instant(path, T0 + timedelta(minutes=1))
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # looks as it was
    monkeypatch.setattr("bot.clock.time.monotonic", lambda: 10**9)  # long after the read
    assert clock.now() == T0 + timedelta(minutes=1)


def test_time_never_goes_back(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    write_instant(path, T0)
    clock = FileClock(path)
    write_instant(path, T0 - timedelta(days=1))
    assert clock.now() == T0


def test_a_bad_file_while_running_leaves_the_clock_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "clock"
    write_instant(path, T0)
    clock = FileClock(path)
    caplog.set_level(logging.WARNING, "funnelbot")
    for text in ("half-writ", "2026-03-02T10:00:00", ""):
        path.write_text(text)
        assert clock.now() == T0
    path.unlink()
    assert clock.now() == T0
    assert len([r for r in caplog.records if "the clock stays" in r.message]) == 1
    write_instant(path, T0 + timedelta(hours=1))  # mended
    assert clock.now() == T0 + timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("tomorrow", "not an ISO 8601 instant"),
        ("2026-03-02T09:00:00", "without its offset"),
        ("2026-02-30T09:00:00Z", "not an ISO 8601 instant"),
        ("", "not an ISO 8601 instant"),
    ],
)
def test_a_bad_file_is_refused_at_the_start(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "clock"
    path.write_text(text)
    with pytest.raises(ClockFileError, match=says):
        FileClock(path)
    with pytest.raises(ValidationError, match=f"clock_file\n.*{says}"):
        Settings(_env_file=None, clock_file=path)  # type: ignore[call-arg]


def test_a_missing_file_is_refused_by_the_settings(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read the clock file"):
        Settings(_env_file=None, clock_file=tmp_path / "nowhere")  # type: ignore[call-arg]


def test_the_service_reads_the_machines_clock_unless_given_a_file(tmp_path: Path) -> None:
    assert isinstance(service_clock(None), SystemClock)
    assert Settings(_env_file=None).clock_file is None  # type: ignore[call-arg]
    path = tmp_path / "clock"
    write_instant(path, T0)
    settings = Settings(_env_file=None, clock_file=path)  # type: ignore[call-arg]
    assert service_clock(settings.clock_file).now() == T0


def test_the_file_is_written_whole_and_only_with_an_aware_instant(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    write_instant(path, T0)
    assert path.read_text() == "2026-03-02T09:00:00+00:00"
    assert [p.name for p in tmp_path.iterdir()] == ["clock"]  # nothing left beside it
    with pytest.raises(ValueError, match="aware"):
        write_instant(path, datetime(2026, 3, 2, 9, 0))  # noqa: DTZ001


def test_an_empty_setting_is_the_machines_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNNELBOT_CLOCK_FILE", "  ")
    assert Settings(_env_file=None).clock_file is None  # type: ignore[call-arg]
