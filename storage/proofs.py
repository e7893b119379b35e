"""Proofs in SQL: members' screenshots for proof tasks and the leaders' decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from funnels.kernel.records import ProofRecord, ProofState
from storage.db import insert_ignore
from storage.sql import Repo
from storage.tables import proofs as _p


def _proof(row: Any) -> ProofRecord:
    return ProofRecord(
        row.id,
        row.cohort_id,
        row.user_id,
        row.task_id,
        row.file_id,
        row.state,
        row.reason,
        row.decided_by,
        row.created_at,
        row.decided_at,
    )


class SqlProofs(Repo):
    async def add(
        self, cohort_id: int, user_id: int, task_id: str, file_id: str, at: datetime
    ) -> int | None:
        # The partial unique index on pending proofs turns a second pending one (two
        # photos at once, two processes) into a conflict: nothing is stored.
        statement = insert_ignore(self.dialect, _p).returning(_p.c.id)
        row = (
            await self.conn.execute(
                statement,
                {
                    "cohort_id": cohort_id,
                    "user_id": user_id,
                    "task_id": task_id,
                    "file_id": file_id,
                    "state": "pending",
                    "created_at": at,
                },
            )
        ).first()
        return int(row.id) if row else None

    async def get(self, proof_id: int) -> ProofRecord | None:
        row = (await self.conn.execute(select(_p).where(_p.c.id == proof_id))).first()
        return _proof(row) if row else None

    async def decide(
        self,
        proof_id: int,
        state: ProofState,
        reason: str | None,
        decided_by: int | None,
        at: datetime,
    ) -> bool:
        result = await self.conn.execute(
            update(_p)
            .where(_p.c.id == proof_id, _p.c.state == "pending")
            .values(state=state, reason=reason, decided_by=decided_by, decided_at=at)
        )
        return bool(result.rowcount)
