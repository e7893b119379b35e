"""API keys: what lets ops and their tools into the HTTP API's stats and ops routes.

A key is ``fbk_`` and 43 characters of 32 random bytes, shown once when it is made; only
its SHA-256 is stored (a key has 256 bits of entropy, so a slow password hash would add
cost and no safety). Keys are named (one name per key that is not revoked), revocable at
once, and note when they were last used (to the minute, so using one costs no write per
request).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from funnels.deps import Deps
from funnels.kernel.records import ApiKeyRecord
from funnels.kernel.refusals import AlreadyExists, Refused
from funnels.kernel.text import cut
from funnels.ops.ports import KeysTx

KEY_PREFIX = "fbk_"
SHOWN = 12
"""Characters of a key kept to tell it apart (``fbk_`` and 8 more): not enough to use."""
NAME_LENGTH = 64
TOUCH_EVERY = timedelta(minutes=1)
"""How stale a key's ``last_used_at`` may get before a request writes it anew."""


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_LENGTH or not name.isprintable():
        raise Refused("bad_key_name", name=cut(name, 40), limit=NAME_LENGTH)
    return name


class CreateApiKey:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, name: str) -> tuple[ApiKeyRecord, str]:
        """The new key's record and the key itself (the only time it is seen)."""
        name = _name(name)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        async with self.deps.uow(KeysTx).transaction() as tx:
            try:
                record = await tx.api_keys.add(
                    name, key_hash(key), key[:SHOWN], self.deps.clock.now()
                )
            except AlreadyExists:
                raise Refused("key_exists", name=name) from None
            await tx.commit()
        return record, key


class CreateFirstApiKey:
    """A key named ``name`` when no key is active yet (a fresh installation's first
    start hands its operator one); None when one is."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, name: str) -> tuple[ApiKeyRecord, str] | None:
        async with self.deps.uow(KeysTx).transaction() as tx:
            if any(k.revoked_at is None for k in await tx.api_keys.all()):
                return None
        try:
            return await CreateApiKey(self.deps)(name)
        except Refused as refused:
            if refused.code == "key_exists":  # made meanwhile by another start
                return None
            raise


class ListApiKeys:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self) -> list[ApiKeyRecord]:
        async with self.deps.uow(KeysTx).transaction() as tx:
            return await tx.api_keys.all()


class RevokeApiKey:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, name: str) -> ApiKeyRecord:
        """Refused with ``unknown_key`` when no key that is not revoked has ``name``."""
        name = name.strip()
        async with self.deps.uow(KeysTx).transaction() as tx:
            record = await tx.api_keys.revoke(name, self.deps.clock.now())
            if record is None:
                raise Refused("unknown_key", name=cut(name, 40))
            await tx.commit()
        return record


class Authenticate:
    """The key a request presents, if it is one that is not revoked."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, key: str) -> ApiKeyRecord | None:
        if not key.startswith(KEY_PREFIX) or len(key) > 128:
            return None
        now = self.deps.clock.now()
        # Every request of the API asks: one statement, no transaction around it.
        async with self.deps.uow(KeysTx).one_statement() as tx:
            record = await tx.api_keys.by_hash(key_hash(key))
        if record is None or record.revoked_at is not None:
            return None
        if record.last_used_at is None or now - record.last_used_at >= TOUCH_EVERY:
            async with self.deps.uow(KeysTx).one_statement() as tx:
                await tx.api_keys.touch(record.id, now)
                await tx.commit()
        return record
