"""A fresh database for a benchmark, migrated to head: a temporary SQLite file, or a
scratch database created on the given PostgreSQL server and dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.engine import make_url

from storage.db import create_engine
from storage.migrate import upgrade_async


@contextlib.asynccontextmanager
async def scratch_database(url: str | None, label: str) -> AsyncIterator[str]:
    """The scratch database's URL; ``url`` None means SQLite, else a PostgreSQL server
    (the scratch database is named after ``label`` and this process)."""
    if url is None:
        with tempfile.TemporaryDirectory() as tmp:
            scratch = f"sqlite+aiosqlite:///{tmp}/bench.db"
            await upgrade_async(scratch)
            yield scratch
        return
    base = make_url(url)
    name = f"{base.database or 'test'}_bench_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        scratch = base.set(database=name).render_as_string(hide_password=False)
        await upgrade_async(scratch)
        yield scratch
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
