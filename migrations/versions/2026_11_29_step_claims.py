"""step_runs: the tick's claim order in its index (status, due time, id), so a claim
reads the first due run off the index instead of sorting every run due at that instant

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_step_runs_status_due_at", table_name="step_runs")
    op.create_index("ix_step_runs_status_due_at_id", "step_runs", ["status", "due_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_step_runs_status_due_at_id", table_name="step_runs")
    op.create_index("ix_step_runs_status_due_at", "step_runs", ["status", "due_at"])
