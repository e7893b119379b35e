"""The unit of work: one database transaction, which commits only when told to.

Storage provides one; each slice describes, in its own ``ports`` module, the part of it
that its use cases touch (a role: the repositories and the few methods of each that it
calls) and asks for the unit of work in that role (``Deps.uow(WarmupTx)``), so a use
case names exactly what it reads and writes.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

TxT_co = TypeVar("TxT_co", covariant=True)


class UnitOfWork(Protocol[TxT_co]):
    def transaction(self) -> AbstractAsyncContextManager[TxT_co]:
        """A transaction that commits only on ``commit()`` and rolls back otherwise."""
        ...

    def one_statement(self) -> AbstractAsyncContextManager[TxT_co]:
        """For a write that is a single statement (atomic by itself), or reads that need
        no common snapshot: where the database allows, each statement commits as it
        runs, sparing the round trips of a transaction around it. Call ``commit()`` as
        in :meth:`transaction`. Two writes in it may commit apart: use
        :meth:`transaction` for those."""
        ...

    def snapshot(self) -> AbstractAsyncContextManager[TxT_co]:
        """A transaction that only reads, and reads the database as it was at one
        moment, whatever commits meanwhile (for a recount to compare with)."""
        ...
