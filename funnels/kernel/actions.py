"""What ops did to a cohort (through the HTTP API or the command line), written by the
use case that did it in its own unit of work: the cohort's timeline never misses an
action nor shows one that did not happen."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from funnels.kernel.actor import OpsAuthor


class ActionLog(Protocol):
    async def record(
        self,
        cohort_id: int,
        api_key_id: int | None,
        by: str,
        action: str,
        detail: str | None,
        at: datetime,
    ) -> None: ...


async def log_action(
    log: ActionLog,
    cohort_id: int,
    author: OpsAuthor | None,
    action: str,
    detail: str | None,
    at: datetime,
) -> None:
    """Record ``action`` when someone in ops took it (``author``; None: a leader in
    Telegram, whose actions are theirs, not ops')."""
    if author is not None:
        await log.record(cohort_id, author.key_id, author.by, action, detail, at)
