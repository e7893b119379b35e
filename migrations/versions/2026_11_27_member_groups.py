"""members' own groups for the group task, the lineage of cohorts, daily reminders

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("cohorts") as batch:
        batch.add_column(
            sa.Column("generation", sa.SmallInteger(), nullable=False, server_default="1")
        )
    with op.batch_alter_table("cohorts") as batch:
        batch.alter_column("generation", server_default=None)
    op.create_table(
        "member_groups",
        sa.Column("id", _ID, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("owner_id", _ID, nullable=False),
        sa.Column("cohort_id", _ID, nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["cohort_id"], ["cohorts.id"], name=op.f("fk_member_groups_cohort_id_cohorts")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_member_groups_owner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_groups")),
    )
    op.create_index("ix_member_groups_chat_id", "member_groups", ["chat_id"])
    op.create_table(
        "member_reminders",
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("cohort_id", _ID, nullable=False),
        sa.Column("segment", sa.String(length=16), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cohort_id"], ["cohorts.id"], name=op.f("fk_member_reminders_cohort_id_cohorts")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_member_reminders_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "day", name=op.f("pk_member_reminders")),
    )


def downgrade() -> None:
    op.drop_table("member_reminders")
    op.drop_index("ix_member_groups_chat_id", table_name="member_groups")
    op.drop_table("member_groups")
    with op.batch_alter_table("cohorts") as batch:
        batch.drop_column("generation")
