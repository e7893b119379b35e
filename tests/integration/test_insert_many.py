"""``storage.sql.insert_many``, the batch insert of the hot paths (ledger credits,
payouts): on PostgreSQL one statement over arrays, elsewhere an executemany; on both,
rows go in in the order given, a row that conflicts is skipped and not counted, and the
values arrive as bound (times with their zone, nulls)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.sql import insert_many
from storage.tables import regions

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _region(code: str, minutes: int = 0) -> dict[str, object]:
    return {
        "code": code,
        "name": f"Region {code}",
        "timezone": "Asia/Singapore",
        "weekly_target": len(code),
        "created_at": T0 + timedelta(minutes=minutes),
    }


async def test_rows_go_in_in_the_order_given_and_conflicts_are_skipped(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        first = await insert_many(conn, regions, [_region(c) for c in ("ZZ", "AA", "MM")], "code")
        # Two already there, one new, and one twice in the same batch.
        again = [_region("AA", 5), _region("BBB", 1), _region("ZZ", 5), _region("BBB", 9)]
        second = await insert_many(conn, regions, again, "code")
        nothing = await insert_many(conn, regions, [], "code")
    async with engine.connect() as conn:
        rows = (await conn.execute(select(regions).order_by(regions.c.id))).all()

    assert (first, second, nothing) == (3, 1, 0)
    assert [r.code for r in rows] == ["ZZ", "AA", "MM", "BBB"]
    bbb = rows[-1]
    assert (bbb.weekly_target, bbb.created_at) == (3, T0 + timedelta(minutes=1))
    assert rows[1].created_at == T0  # the first AA stays as it was
