"""rollups: members per cohort, local day and funnel stage; messages and writers per
cohort and local day; filled from the members' rows already there

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# The stage timestamps, in stage order (joined = 1 … supervisor = 8).
_TIMES = (
    "joined_at",
    "engaged_at",
    "replied_at",
    "admitted_at",
    "tasked_at",
    "sold_at",
    "shopkeeper_at",
    "supervisor_at",
)


def upgrade() -> None:
    funnel = op.create_table(
        "funnel_days",
        sa.Column("cohort_id", ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("stage", sa.SmallInteger(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cohort_id"], ["cohorts.id"], name=op.f("fk_funnel_days_cohort_id_cohorts")
        ),
        sa.PrimaryKeyConstraint("cohort_id", "day", "stage", name=op.f("pk_funnel_days")),
    )
    activity = op.create_table(
        "activity_days",
        sa.Column("cohort_id", ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cohort_id"], ["cohorts.id"], name=op.f("fk_activity_days_cohort_id_cohorts")
        ),
        sa.PrimaryKeyConstraint("cohort_id", "day", name=op.f("pk_activity_days")),
    )
    op.create_index("ix_cohorts_start_date", "cohorts", ["start_date"])
    _fill(funnel, activity)


def _fill(funnel: sa.Table, activity: sa.Table) -> None:
    """Count what is there already, by the rule of ``funnels.kernel.rollups`` (written
    out here: a migration keeps the rule of its day). A member enters stage ``s`` on the
    local day of their earliest timestamp among ``s`` and the stages above it."""
    bind = op.get_bind()
    zones = {
        row.id: ZoneInfo(row.timezone)
        for row in bind.execute(sa.text("SELECT id, timezone FROM cohorts"))
    }
    for cohort_id, zone in zones.items():
        counts: Counter[tuple[date, int]] = Counter()
        members = bind.execute(
            sa.text(f"SELECT {', '.join(_TIMES)} FROM cohort_members WHERE cohort_id = :c"),
            {"c": cohort_id},
        )
        for row in members:
            earliest: datetime | None = None
            for stage in range(len(_TIMES), 0, -1):
                at = _aware(row[stage - 1])
                if at is not None and (earliest is None or at < earliest):
                    earliest = at
                if earliest is not None:
                    counts[(earliest.astimezone(zone).date(), stage)] += 1
        rows = [
            {"cohort_id": cohort_id, "day": d, "stage": s, "members": n}
            for (d, s), n in sorted(counts.items())
        ]
        if rows:
            op.bulk_insert(funnel, rows)
    days = bind.execute(
        sa.text(
            "SELECT cohort_id, day, SUM(messages) AS messages, COUNT(*) AS members"
            " FROM member_activity GROUP BY cohort_id, day"
        )
    )
    rows = [
        {
            "cohort_id": r.cohort_id,
            "day": r.day if isinstance(r.day, date) else date.fromisoformat(r.day),
            "messages": int(r.messages),
            "members": int(r.members),
        }
        for r in days
    ]
    if rows:
        op.bulk_insert(activity, rows)


def _aware(value: object) -> datetime | None:
    """A timestamp as an aware UTC datetime (SQLite hands back naive-UTC text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def downgrade() -> None:
    op.drop_index("ix_cohorts_start_date", table_name="cohorts")
    op.drop_table("activity_days")
    op.drop_table("funnel_days")
