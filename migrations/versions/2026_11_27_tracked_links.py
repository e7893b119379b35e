"""tracked links, fan locks and installation secrets

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tracked_links",
        sa.Column("id", ID, nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("cohort_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cohort_id"], ["cohorts.id"], name=op.f("fk_tracked_links_cohort_id_cohorts")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tracked_links_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracked_links")),
        sa.UniqueConstraint("code", name=op.f("uq_tracked_links_code")),
        sa.UniqueConstraint(
            "cohort_id",
            "user_id",
            "task_id",
            name=op.f("uq_tracked_links_cohort_id_user_id_task_id"),
        ),
    )
    op.create_table(
        "fan_locks",
        sa.Column("cohort_id", ID, nullable=False),
        sa.Column("visitor", sa.String(length=32), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cohort_id"], ["cohorts.id"], name=op.f("fk_fan_locks_cohort_id_cohorts")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_fan_locks_user_id_users")),
        sa.PrimaryKeyConstraint("cohort_id", "visitor", name=op.f("pk_fan_locks")),
    )
    op.create_table(
        "installation_secrets",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_installation_secrets")),
    )


def downgrade() -> None:
    op.drop_table("installation_secrets")
    op.drop_table("fan_locks")
    op.drop_table("tracked_links")
