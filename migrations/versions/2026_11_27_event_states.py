"""inbound events are stored first and applied after: a state, and the member as sent

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_events") as batch:
        batch.add_column(
            sa.Column("state", sa.String(length=8), nullable=False, server_default="handled")
        )
        batch.add_column(sa.Column("member_ref", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("telegram_user_id", sa.BigInteger(), nullable=True))
    # Events stored before this revision were applied in the transaction that stored them:
    # "handled" (the server default) is right for all of them. Who they named was kept in
    # their data under _ref / _tg; it moves to its own columns.
    events = sa.table(
        "inbound_events",
        sa.column("id", sa.BigInteger()),
        sa.column("data", sa.JSON()),
        sa.column("member_ref", sa.String()),
        sa.column("telegram_user_id", sa.BigInteger()),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(events.c.id, events.c.data)).all()
    for row in rows:
        data = dict(row.data or {})
        ref, tg = data.pop("_ref", None), data.pop("_tg", None)
        if ref is None and tg is None:
            continue
        conn.execute(
            events.update()
            .where(events.c.id == row.id)
            .values(data=data, member_ref=ref, telegram_user_id=tg)
        )
    with op.batch_alter_table("inbound_events") as batch:
        batch.alter_column("state", server_default=None)
    op.create_index("ix_inbound_events_state_id", "inbound_events", ["state", "id"])


def downgrade() -> None:
    op.drop_index("ix_inbound_events_state_id", table_name="inbound_events")
    with op.batch_alter_table("inbound_events") as batch:
        batch.drop_column("telegram_user_id")
        batch.drop_column("member_ref")
        batch.drop_column("state")
