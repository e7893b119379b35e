"""Reading back what the service stored, for tests' assertions."""

from __future__ import annotations

from sqlalchemy import select

from storage.tables import telegram_updates
from storage.uow import SqlStore


async def update_states(store: SqlStore) -> dict[int, tuple[str, str | None]]:
    """Each stored Telegram update: its state and its failure reason."""
    t = telegram_updates.c
    async with store.transaction() as tx:
        rows = (await tx.conn.execute(select(t.update_id, t.state, t.error))).all()
    return {r.update_id: (r.state, r.error) for r in rows}
