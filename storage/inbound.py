"""Inbound events written as the driver's own statements: the events repository stores
them, and the tracked links store a click's events in the same statement as its fan
locks (:mod:`storage.tracked_links`).

Each write is one ``INSERT … ON CONFLICT (source, event_id) DO NOTHING RETURNING``: the
rows it returns are exactly the new ones. SQLite: multi-row ``VALUES`` with values
converted by their columns' types. PostgreSQL: ``unnest`` of one array parameter per
column, which asyncpg encodes natively (nothing to compile, no per-row parameter
processing).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncConnection

from funnels.kernel.records import IncomingEvent
from storage.sql import driver_value, insert_many_returning
from storage.tables import inbound_events as _ev

INSERT_EVENTS = """
INSERT INTO inbound_events (source, event_id, type, occurred_at, received_at, data,
                            state, member_ref, telegram_user_id)
"""
EVENT_ARRAYS = """$3::varchar[], $4::varchar[], $5::timestamptz[], $6::text[], $7::varchar[],
$8::bigint[]"""
"""PostgreSQL: the array parameters of :func:`event_arrays`, at positions 3 to 8:
unnested, the columns ``event_id, type, occurred_at, data, member_ref,
telegram_user_id``."""
SELECT_EVENT_ROW = """SELECT $1, e.event_id, e.type, e.occurred_at, $2, e.data::json,
       'pending', e.member_ref, e.telegram_user_id"""
"""PostgreSQL: an event row of ``e`` (:data:`EVENT_ARRAYS`) with source $1, received at
$2."""

_STORE_UNNEST = f"""{INSERT_EVENTS}{SELECT_EVENT_ROW}
FROM unnest({EVENT_ARRAYS}) AS e(event_id, type, occurred_at, data, member_ref, telegram_user_id)
ON CONFLICT (source, event_id) DO NOTHING
RETURNING id, event_id
"""


def event_arrays(events: Sequence[IncomingEvent]) -> tuple[list[Any], ...]:
    """PostgreSQL: the events as one array per column, for :data:`EVENT_ARRAYS`."""
    return (
        [e.event_id for e in events],
        [e.type for e in events],
        [e.occurred_at for e in events],
        [to_json(e.data).decode() for e in events],
        [e.member_ref for e in events],
        [e.telegram_user_id for e in events],
    )


async def store_events(
    conn: AsyncConnection, source: str, events: Sequence[IncomingEvent], at: datetime
) -> dict[str, int]:
    """Insert events as pending, ignoring (source, id) duplicates, also within the
    batch; event id -> row id of the rows that were new."""
    if not events:
        return {}
    unique: dict[str, IncomingEvent] = {}
    # Sorted by id: two batches sharing ids take the unique-index locks in one order and
    # cannot deadlock each other on PostgreSQL.
    for e in sorted(events, key=lambda e: e.event_id):
        unique.setdefault(e.event_id, e)
    if conn.dialect.name == "postgresql":
        result = await conn.exec_driver_sql(
            _STORE_UNNEST, (source, at, *event_arrays(list(unique.values())))
        )
        return {got.event_id: got.id for got in result.all()}
    dialect = conn.dialect
    when, data = driver_value(_ev.c.occurred_at, dialect), driver_value(_ev.c.data, dialect)
    received = when(at)
    got = await insert_many_returning(
        conn,
        INSERT_EVENTS.strip(),
        [
            (
                source,
                e.event_id,
                e.type,
                when(e.occurred_at),
                received,
                data(dict(e.data)),
                "pending",
                e.member_ref,
                e.telegram_user_id,
            )
            for e in unique.values()
        ],
        "ON CONFLICT (source, event_id) DO NOTHING RETURNING id, event_id",
    )
    return {row.event_id: row.id for row in got}
