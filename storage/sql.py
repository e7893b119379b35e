"""SQL helpers the repositories share: statements prepared once per dialect, ``IN``
lists that PostgreSQL plans once, batches bound as arrays, and the base of every
repository."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Table, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import insert_ignore
from storage.models import UTCDateTime

_PREPARED: dict[tuple[str, str], Any] = {}


def prepared(name: str, dialect: str, build: Callable[[], Any]) -> Any:
    """A statement built once per dialect with bind parameters.

    Building a SQLAlchemy expression and its cache key costs more than running it on
    SQLite; the hot paths (taps, replies, events) reuse one statement object instead.
    """
    key = (name, dialect)
    statement = _PREPARED.get(key)
    if statement is None:
        statement = _PREPARED[key] = build()
    return statement


def unnested(*columns: tuple[str, str, Any], numbered: str | None = None) -> Any:
    """Rows from arrays bound side by side, on PostgreSQL: ``unnest(:param, …) AS
    (name, …)``, for each ``(name, param, column)`` one array parameter of ``column``'s
    type; with ``numbered``, also a column of that name numbering the rows from 1. A
    whole batch in one statement whose text is the same whatever its size."""
    return (
        func.unnest(*(bindparam(param, type_=ARRAY(column.type)) for _, param, column in columns))
        .table_valued(*(name for name, _, _ in columns), with_ordinality=numbered)
        .render_derived()
    )


async def insert_many(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]], *conflict: str
) -> int:
    """Insert ``rows`` (dicts with the same keys) in the order given, skipping each that
    conflicts on the unique ``conflict`` columns; how many were inserted.

    On PostgreSQL it is one ``INSERT … SELECT … FROM unnest(…) ON CONFLICT DO NOTHING``
    with an array a column: one statement the server plans once and runs once, where an
    executemany runs the insert row by row (a batch of rewards is 800 rows)."""
    if not rows:
        return 0
    dialect = conn.dialect.name
    names = tuple(rows[0])
    if dialect != "postgresql":
        statement = prepared(
            f"insert_many:{table.name}:{conflict}",
            dialect,
            lambda: insert_ignore(dialect, table, *conflict),
        )
        return max((await conn.execute(statement, list(rows))).rowcount, 0)

    def build() -> Any:
        values = unnested(*((n, n, table.c[n]) for n in names), numbered="row_number")
        chosen = select(*(values.c[n] for n in names)).order_by(values.c.row_number)
        return (
            postgresql.insert(table)
            .from_select(list(names), chosen)
            .on_conflict_do_nothing(index_elements=list(conflict) or None)
        )

    statement = prepared(f"insert_many:{table.name}:{names}:{conflict}", dialect, build)
    result = await conn.execute(statement, {n: [row[n] for row in rows] for n in names})
    return max(result.rowcount, 0)


def one_of(dialect: str, column: Any, name: str, values: Sequence[Any] | None = None) -> Any:
    """``column IN (...)`` for a list bound as ``name`` (or the given ``values``).

    On PostgreSQL it is ``column = ANY(:name)`` with the list as one array parameter: the
    SQL text stays the same whatever the list's length, so the server plans it once and
    asyncpg's prepared statement is reused, where an IN list of a new length is a new
    statement to prepare on every batch.
    """
    if dialect == "postgresql":
        return column == any_(bindparam(name, values, type_=ARRAY(column.type)))
    if values is None:
        return column.in_(bindparam(name, expanding=True))
    return column.in_(values)


def greatest(dialect: str, column: Any, value: Any) -> Any:
    return func.max(column, value) if dialect == "sqlite" else func.greatest(column, value)


def driver_value(column: Any, dialect: Dialect) -> Callable[[Any], Any]:
    """What the column's type hands the driver for a Python value, as SQLAlchemy would
    (an aware datetime as SQLite's naive-UTC text, a dict as JSON): for rows given to
    the driver directly (:func:`insert_many_returning`), stored exactly alike."""
    key = (column.table.name, column.name, dialect.name)
    convert = _DRIVER_VALUES.get(key)
    if convert is None:
        if dialect.name == "sqlite" and isinstance(column.type, UTCDateTime):
            # The same text SQLAlchemy writes (naive UTC, always with microseconds),
            # by the datetime's own C formatter.
            convert = _sqlite_time
        else:
            processor = column.type.dialect_impl(dialect).bind_processor(dialect)
            convert = processor or (lambda value: value)
        _DRIVER_VALUES[key] = convert
    return convert


_TIME = UTCDateTime()
_SQLITE = sqlite.dialect()


def _sqlite_time(value: datetime | None) -> str | None:
    naive_utc = _TIME.process_bind_param(value, _SQLITE)
    return None if naive_utc is None else naive_utc.isoformat(" ", "microseconds")


_DRIVER_VALUES: dict[tuple[str, str, str], Callable[[Any], Any]] = {}
ROWS_PER_STATEMENT = 500
"""Rows of a multi-row INSERT, or values of an IN list, per driver statement (SQLite
allows 32,766 parameters a statement)."""


async def insert_many_returning(
    conn: AsyncConnection, head: str, rows: Sequence[tuple[Any, ...]], tail: str
) -> list[Any]:
    """SQLite: ``{head} VALUES (?, …), (?, …) … {tail}`` for rows of driver values,
    ``ROWS_PER_STATEMENT`` at a time, returning what ``tail``'s RETURNING gives. Run as the
    driver's own SQL: no statement to compile, no per-row parameter processing, which
    for a batch of clicks or events cost more than SQLite's work. (PostgreSQL has its
    array-parameter statements instead.)"""
    if not rows:
        return []
    width = len(rows[0])
    one = "(" + ", ".join("?" * width) + ")"
    out: list[Any] = []
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        sql = f"{head} VALUES {', '.join([one] * len(chunk))} {tail}"
        params = tuple(value for row in chunk for value in row)
        out.extend((await conn.exec_driver_sql(sql, params)).all())
    return out


class Repo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name

    @contextlib.asynccontextmanager
    async def in_index_order(self) -> AsyncIterator[None]:
        """Around a claim from a queue table (``ORDER BY … LIMIT … FOR UPDATE SKIP
        LOCKED``): on PostgreSQL, read the rows in the order of the index that matches
        the ORDER BY rather than sort every waiting row. A burst fills a queue faster
        than statistics follow (a fresh or mostly-done table looks nearly empty to the
        planner), and then each claim sorts the whole backlog to take the first few."""
        if self.dialect != "postgresql":
            yield
            return
        await self.conn.exec_driver_sql("SET LOCAL enable_sort = off")
        yield  # (a claim that fails ends the transaction, and the setting with it)
        await self.conn.exec_driver_sql("SET LOCAL enable_sort = on")
