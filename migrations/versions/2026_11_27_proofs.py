"""proofs: members' screenshots for proof tasks and the leaders' decisions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    op.create_table(
        "proofs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("cohort_id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("file_id", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=True),
        sa.Column("decided_by", _ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["cohort_id"], ["cohorts.id"], name=op.f("fk_proofs_cohort_id_cohorts")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_proofs_user_id_users")),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["users.id"], name=op.f("fk_proofs_decided_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proofs")),
    )
    op.create_index(
        "ix_proofs_pending",
        "proofs",
        ["cohort_id", "user_id", "task_id"],
        unique=True,
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_proofs_pending", table_name="proofs")
    op.drop_table("proofs")
