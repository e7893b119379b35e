"""The "reply 1" filter: does a group message answer the pitch?

Only a message that *is* the answer counts. Members type the answer in many spellings
("1", "１", "1️⃣", "1。", "【1】", "*1*"), so both the message and the accepted forms are
folded the same way before an exact comparison:

1. NFKC, which maps full-width and circled digits to ASCII ("１" -> "1", "①" -> "1") and
   full-width punctuation to ASCII ("！" -> "!");
2. remove invisible characters: format characters (zero-width space/joiners, BOM,
   direction marks), variation selectors and the combining enclosing keycap U+20E3, which
   turn "1️⃣" into "1";
3. strip whitespace, punctuation and brackets (any Unicode ``P*`` category, ASCII and
   CJK alike) and "~" from both ends, repeatedly, so "【1】!" is "1" but "1 2" stays;
4. case-fold, so a script accepting "uno" matches "Uno!".

Anything inside the answer is kept: "10", "1 please" and "I want 1" never match "1".
This runs on every group message, so messages over 32 characters exit early, the
accepted forms are folded once per :class:`ReplyMatcher`, and the folds of recent short
messages are remembered (a group's chatter repeats: "1", "thanks", "👍", "good evening").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

MAX_ANSWER_LENGTH = 32
"""Longer messages are never answers; checked before any normalisation work."""

# Variation selectors (VS1-16 and the supplement VS17-256) and the enclosing keycap.
# Format characters (category Cf: ZWSP, ZWJ, BOM, bidi marks, soft hyphen) are removed
# by category below, so they need not be listed.
_INVISIBLE = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef\u20e3]")

# Not punctuation in Unicode, but a common trailing flourish in Chinese chat ("1~").
_EXTRA_STRIP = frozenset("~")


def _strippable(ch: str) -> bool:
    return ch.isspace() or ch in _EXTRA_STRIP or unicodedata.category(ch).startswith("P")


def normalize(text: str) -> str:
    """Fold a message or an accepted form into the shape answers are compared in."""
    folded = unicodedata.normalize("NFKC", text)
    folded = _INVISIBLE.sub("", folded)
    if any(unicodedata.category(ch) == "Cf" for ch in folded):
        folded = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    start, end = 0, len(folded)
    while start < end and _strippable(folded[start]):
        start += 1
    while end > start and _strippable(folded[end - 1]):
        end -= 1
    return folded[start:end].casefold()


class ReplyMatcher:
    """A reusable "is this message the answer?" test for one list of accepted forms.

    Accepted forms that fold to nothing (e.g. "!") are dropped: they would make every
    empty or punctuation-only message an answer.
    """

    __slots__ = ("_accepted",)

    def __init__(self, accepted: Iterable[str]) -> None:
        self._accepted: frozenset[str] = frozenset(
            form for form in (normalize(a) for a in accepted) if form
        )

    @property
    def accepted(self) -> frozenset[str]:
        """The folded accepted forms."""
        return self._accepted

    def __call__(self, text: str) -> bool:
        if not text or len(text) > MAX_ANSWER_LENGTH:
            return False
        return _fold(text) in self._accepted


_fold = lru_cache(maxsize=4096)(normalize)
"""``normalize`` for messages, remembering the last few thousand (at most 32 characters
each, so well under a megabyte)."""


@lru_cache(maxsize=256)
def _matcher(accepted: tuple[str, ...]) -> ReplyMatcher:
    return ReplyMatcher(accepted)


def is_answer(text: str, accepted: Sequence[str]) -> bool:
    """Whether ``text`` is exactly one of the ``accepted`` answers, after folding."""
    return _matcher(tuple(accepted))(text)
