"""admission by personal links: a cohort's admission mode, and each responder's
one-time link into the task group with the claim it is made under

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Every cohort launched before this revision admits by join requests. A plain ALTER
    # (no batch copy of the table): on SQLite, copying ``cohorts`` would drop a table
    # that rows of other tables point at.
    op.add_column(
        "cohorts",
        sa.Column("admission", sa.String(length=16), nullable=False, server_default="requests"),
    )
    op.create_table(
        "personal_links",
        sa.Column("cohort_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("link", sa.String(length=255), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cohort_id"], ["cohorts.id"], name=op.f("fk_personal_links_cohort_id_cohorts")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_personal_links_user_id_users")
        ),
        sa.PrimaryKeyConstraint("cohort_id", "user_id", name=op.f("pk_personal_links")),
    )


def downgrade() -> None:
    op.drop_table("personal_links")
    op.drop_column("cohorts", "admission")
