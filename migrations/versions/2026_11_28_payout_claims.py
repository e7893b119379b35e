"""payouts: the delivery claim's order in its index (status, next attempt, id), so a
claim reads its batch off the index instead of sorting every pending payout

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_payouts_status_next_attempt_at", table_name="payouts")
    op.create_index(
        "ix_payouts_status_next_attempt_at_id", "payouts", ["status", "next_attempt_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_payouts_status_next_attempt_at_id", table_name="payouts")
    op.create_index("ix_payouts_status_next_attempt_at", "payouts", ["status", "next_attempt_at"])
