"""payouts: owed task rewards and the outbox of reward.granted events

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "payouts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("cohort_id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("member_notice", sa.String(length=8), nullable=True),
        sa.Column("leader_notice", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cohort_id"], ["cohorts.id"], name=op.f("fk_payouts_cohort_id_cohorts")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_payouts_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("key", name=op.f("uq_payouts_key")),
    )
    op.create_index("ix_payouts_status_next_attempt_at", "payouts", ["status", "next_attempt_at"])
    op.create_index("ix_payouts_cohort_id_status", "payouts", ["cohort_id", "status"])
    op.create_index("ix_payouts_member_notice", "payouts", ["member_notice"])


def downgrade() -> None:
    op.drop_index("ix_payouts_member_notice", table_name="payouts")
    op.drop_index("ix_payouts_cohort_id_status", table_name="payouts")
    op.drop_index("ix_payouts_status_next_attempt_at", table_name="payouts")
    op.drop_table("payouts")
