"""Which faults leave an update pending for another try, and which fail it for good."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, TimeoutError as PoolTimeout

from bot.telegram.updates import passing, reason


class _PgError(Exception):
    """What the asyncpg dialect wraps a server error in: its SQLSTATE on ``sqlstate``."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"state {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    "exc",
    [
        DBAPIError("UPDATE", {}, _PgError("40P01")),  # deadlock detected
        DBAPIError("UPDATE", {}, _PgError("40001")),  # could not serialize access
        PoolTimeout("QueuePool limit of size 5 overflow 10 reached"),
        OperationalError("SELECT 1", {}, ConnectionError("connection lost")),
        TimeoutError("Telegram does not answer"),
        ConnectionResetError("reset by peer"),
    ],
    ids=["deadlock", "serialization", "pool", "connection", "timeout", "socket"],
)
def test_faults_that_pass_by_themselves_leave_the_update_for_another_try(
    exc: Exception,
) -> None:
    assert passing(exc)


def test_faults_that_would_happen_again_fail_the_update() -> None:
    class Needs(BaseModel):
        n: int

    with pytest.raises(ValidationError) as invalid:
        Needs.model_validate({"n": "x"})
    assert not passing(invalid.value)
    assert not passing(IntegrityError("INSERT", {}, _PgError("23505")))
    assert not passing(DBAPIError("SELECT", {}, _PgError("42P01")))  # no such table
    assert not passing(ValueError("the handler broke"))
    assert reason(invalid.value).startswith("not a valid update: n: ")
