"""Why a cohort is paused, as kept in ``cohorts.status_reason``.

The column holds a stable code, never words, so ``/status`` can say it in the reader's
language: ``paused_by_leader``, ``paused_by_ops`` (over the HTTP API), ``removed``,
``cannot_post``, or ``demoted`` followed by the rights the bot lost (``demoted:
can_pin_messages, can_delete_messages``).

Rows written before the codes, or by hand (an operator's note), hold free text; such a
reason parses to :attr:`PauseReason.note` and is shown as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from funnels.kernel.messaging import Right

PauseCode = Literal["paused_by_leader", "paused_by_ops", "removed", "demoted", "cannot_post"]

_CODES: dict[str, PauseCode] = {code: code for code in get_args(PauseCode)}
# What releases before the codes stored for a leader's /pause.
_CODES["paused by the leader"] = "paused_by_leader"
_RIGHTS: frozenset[str] = frozenset(get_args(Right))


@dataclass(frozen=True, slots=True)
class PauseReason:
    """A coded reason (``code``, with ``missing`` rights for ``demoted``) or free text."""

    code: PauseCode | None
    missing: tuple[str, ...] = ()
    """Names of :data:`funnels.kernel.messaging.Right` the bot lost; only with ``demoted``."""
    note: str | None = None
    """Free text stored without a code; only when ``code`` is None."""

    def stored(self) -> str:
        """The text for ``status_reason``; :meth:`parse` reads it back."""
        if self.code is None:
            return self.note or ""
        if self.missing:
            return f"{self.code}: {', '.join(self.missing)}"
        return self.code

    @classmethod
    def parse(cls, stored: str) -> PauseReason:
        """A stored reason; anything that is not a well-formed code is kept as a note."""
        text = stored.strip()
        head, sep, rest = text.partition(":")
        code = _CODES.get(head)
        if code is None:
            return cls(None, note=text)
        missing = tuple(name.strip() for name in rest.split(",")) if sep else ()
        if missing and (code != "demoted" or not set(missing) <= _RIGHTS):
            return cls(None, note=text)
        return cls(code, missing)
