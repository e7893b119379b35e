"""Funnel stages and roles: fixed, ordered, and only ever moved forward."""

from __future__ import annotations

from enum import IntEnum


class Stage(IntEnum):
    """How far a member got; every report uses these definitions.

    joined: entered the warm-up group. engaged: sent a message or grabbed an envelope
    during warm-up. replied: answered the pitch inside its window. admitted: joined the
    task group. tasked: completed a task. sold: first ``order.paid``. shopkeeper and
    supervisor: promoted by the ladder.
    """

    JOINED = 1
    ENGAGED = 2
    REPLIED = 3
    ADMITTED = 4
    TASKED = 5
    SOLD = 6
    SHOPKEEPER = 7
    SUPERVISOR = 8

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, label: str) -> Stage:
        try:
            return cls[label.upper()]
        except KeyError:
            allowed = ", ".join(s.label for s in cls)
            raise ValueError(f"{label!r} is not a stage; one of {allowed}") from None


def advance(current: Stage, reached: Stage) -> Stage:
    """Stages are monotonic: a member keeps the furthest stage reached."""
    return reached if reached > current else current


class Role(IntEnum):
    """What a user may do; promotions are monotonic, grants by an admin too."""

    MEMBER = 1
    SHOPKEEPER = 2
    SUPERVISOR = 3
    LEADER = 4
    ADMIN = 5

    @property
    def label(self) -> str:
        return self.name.lower()


def promote(current: Role, target: Role) -> Role:
    return target if target > current else current


STAGE_FOR_PROMOTION = {"shopkeeper": Stage.SHOPKEEPER, "supervisor": Stage.SUPERVISOR}
ROLE_FOR_PROMOTION = {"shopkeeper": Role.SHOPKEEPER, "supervisor": Role.SUPERVISOR}
