"""SQL helpers the repositories share: statements prepared once per dialect, ``IN``
lists that PostgreSQL plans once, and the base of every repository."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ARRAY, any_, bindparam, func
from sqlalchemy.ext.asyncio import AsyncConnection

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


class Repo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name
