"""What the command line checks before it uses a database or a folder it was given.

A database URL must read as one, name SQLite or PostgreSQL with an async driver that is
installed, and reach a database that answers; a folder must be a folder. Whatever is
wrong, the operator gets one line (``error: …``) and exit code 1, never a traceback:
:func:`require_database` before the work, :func:`database_errors` around it (a database
can still refuse a write, or be at a revision this code does not know).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.util import CommandError
from sqlalchemy import inspect
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from bot.cli.output import fail
from storage.db import create_engine

CONNECT_TIMEOUT_SECONDS = 10.0
EXAMPLES = "sqlite+aiosqlite:///./funnelbot.db or postgresql+asyncpg://user:password@host/db"
_BACKENDS = ("sqlite", "postgresql")

DATABASE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, CommandError, OSError)
"""What a command's database work may raise that is the database's fault, not a bug."""


class Unusable(Exception):
    """A database or folder a command cannot use; the message is one line saying why."""


def one_line(exc: BaseException) -> str:
    """The gist of an error on one line: SQLAlchemy's own text adds the statement, its
    parameters and a link on further lines; the driver's message is what matters."""
    orig = getattr(exc, "orig", None)
    source = orig if isinstance(orig, BaseException) else exc
    lines = str(source).strip().splitlines()
    return lines[0] if lines else type(source).__name__


def require_database(url: str, source: str) -> None:
    """Exit with one ``error:`` line unless the database at ``url`` can be used.
    ``source`` names where the URL came from (an option or a setting)."""
    try:
        check_database(url, source)
    except Unusable as exc:
        fail(str(exc))


@contextmanager
def database_errors(source: str) -> Iterator[None]:
    """Turn a database's refusal during a command's work into one ``error:`` line."""
    try:
        yield
    except DATABASE_ERRORS as exc:
        fail(f"{source}: {one_line(exc)}")


def require_folder(path: Path | None, source: str) -> None:
    if path is not None and not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a folder"
        fail(f"{source}: {path} {what}")


def check_database(url: str, source: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """Raise :class:`Unusable` unless ``url`` names a database funnelbot can connect to."""
    parsed = _parse(url, source)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite_file(parsed.database, source, shown)
    try:
        asyncio.run(asyncio.wait_for(_connect(url), timeout))
    except ImportError as exc:
        raise Unusable(f"{source}: the driver for {shown} is not installed ({exc})") from None
    except TimeoutError:
        raise Unusable(f"{source}: no answer from {shown} within {timeout:g} s") from None
    except Exception as exc:  # every way a connection fails is the operator's to read
        raise Unusable(f"{source}: cannot use the database {shown}: {one_line(exc)}") from None


def _parse(url: str, source: str) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise Unusable(
            f"{source}: {_masked(url)!r} is not a database URL; write it like {EXAMPLES}"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in _BACKENDS:
        raise Unusable(
            f"{source}: funnelbot runs on SQLite or PostgreSQL, not {backend}; "
            f"write the URL like {EXAMPLES}"
        )
    try:
        is_async = getattr(parsed.get_dialect(), "is_async", False)
    except NoSuchModuleError:
        is_async = False
    if not is_async:
        raise Unusable(
            f"{source}: {parsed.drivername}:// does not name an async driver; "
            f"write the URL like {EXAMPLES}"
        )
    return parsed


def _masked(url: str) -> str:
    """A URL that did not parse, its password (``//user:password@``) hidden all the same."""
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)


def _check_sqlite_file(database: str | None, source: str, shown: str) -> None:
    if database in (None, "", ":memory:"):
        return
    path = Path(database)
    if path.is_dir():
        raise Unusable(f"{source}: {shown}: {path} is a folder, not a database file")
    if not path.parent.is_dir():
        raise Unusable(f"{source}: {shown}: the folder {path.parent} does not exist")


async def _connect(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            # Reading the table names makes SQLite open the file for real (a file that
            # is not a database passes a bare connect) and PostgreSQL check our rights.
            await conn.run_sync(_table_names)
    finally:
        await engine.dispose()


def _table_names(conn: Connection) -> list[str]:
    return inspect(conn).get_table_names()
