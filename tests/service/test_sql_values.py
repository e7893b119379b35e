"""Values handed to the SQLite driver directly are what SQLAlchemy itself would hand it:
SQLite compares times as text, so one format everywhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st
from sqlalchemy.dialects import sqlite

from storage.models import UTCDateTime
from storage.sql import driver_value
from storage.tables import fan_locks, inbound_events

DIALECT = sqlite.dialect()
BY_SQLALCHEMY = UTCDateTime().dialect_impl(DIALECT).bind_processor(DIALECT)

moments = st.builds(
    lambda when, minutes: when.replace(tzinfo=UTC).astimezone(timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1)),  # noqa: DTZ001
    st.integers(-720, 840),
)


@given(moments)
def test_times_are_written_as_sqlalchemy_writes_them(when: datetime) -> None:
    assert BY_SQLALCHEMY is not None
    for column in (inbound_events.c.occurred_at, fan_locks.c.locked_at):
        assert driver_value(column, DIALECT)(when) == BY_SQLALCHEMY(when)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        driver_value(inbound_events.c.received_at, DIALECT)(datetime(2026, 1, 1))  # noqa: DTZ001


def test_data_is_written_as_json() -> None:
    assert driver_value(inbound_events.c.data, DIALECT)({"a": [1, None]}) == '{"a": [1, null]}'
