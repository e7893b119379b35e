"""A/B variants: which wording of a message an audience gets.

A message (a post, a talk part, the pitch, a kind of daily reminder) may declare
variants; its own text is arm ``a``. The arm is drawn by weight from a hash of who sees
it and where: a group message per cohort (its code and the step's key), so every member
of a cohort sees the same wording and a cohort keeps its arm through a crash and a
retry; a private reminder per member (the cohort's code, the reminder's kind and the
member), so a member always gets the same wording of it. Nothing random is
stored: the same cohort code gives the same arm in the engine, in a report read a month
later, and in a simulation run again from its seed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from funnels.scripts.model import CONTROL, Media, Pitch, Post, ReminderText, TalkPart

Varied = Post | TalkPart | Pitch | ReminderText


@dataclass(frozen=True, slots=True)
class Arm:
    id: str
    weight: int
    text: str
    media: Media | None


def arms(message: Varied) -> list[Arm]:
    """The message's arms, ``a`` (its own text) first; one arm when it declares none."""
    own = Arm(CONTROL, message.weight, message.text, message.media)
    if isinstance(message, ReminderText):
        return [own] + [Arm(v.id, v.weight, v.text, None) for v in message.variants]
    return [own] + [
        Arm(v.id, v.weight, v.text, v.media if v.media is not None else message.media)
        for v in message.variants
    ]


def draw(choices: list[Arm], *key: object) -> Arm:
    """The arm for ``key`` (e.g. a cohort code and a step key), by weight; the same key
    always draws the same arm."""
    if len(choices) == 1:
        return choices[0]
    digest = hashlib.sha256("\x1f".join(str(k) for k in key).encode()).digest()
    point = int.from_bytes(digest[:8], "big") % sum(a.weight for a in choices)
    for arm in choices:
        if point < arm.weight:
            return arm
        point -= arm.weight
    raise AssertionError("unreachable")  # pragma: no cover


def cohort_arm(message: Post | TalkPart | Pitch, cohort_code: str, step_key: str) -> Arm:
    """The arm a cohort's group gets for the message of step run ``step_key``."""
    return draw(arms(message), cohort_code, step_key)


def reminder_key(segment: str) -> str:
    """The name a kind of reminder is compared under (``reminder.on_track``)."""
    return f"reminder.{segment}"


def member_arm(reminder: ReminderText, cohort_code: str, segment: str, user_id: int) -> Arm:
    """The arm a member gets for the reminder of ``segment`` (every day they get one)."""
    return draw(arms(reminder), cohort_code, reminder_key(segment), user_id)


def with_arm(
    outcome: dict[str, object], message: Post | TalkPart | Pitch, arm: Arm
) -> dict[str, object]:
    """A step run's outcome, naming the arm sent when the message has variants (the
    timeline shows which wording a group saw)."""
    return {**outcome, "variant": arm.id} if message.variants else outcome
