"""Task goals: which events count towards a goal, and whether the goal is met.

A goal (:class:`funnels.scripts.model.Goal`) is a tree whose leaves are event goals and whose
branches are ``all:``/``any:``. Progress for one member and one task is stored per leaf,
keyed by the leaf's position in ``goal.leaves()`` (depth first):

* count leaf: the number of matching events;
* unique leaf: the number of distinct values of the field (storage dedupes on
  :attr:`Contribution.unique_key`, so the same value never counts twice);
* sum leaf: the sum of the integer field, in minor units.

This module only maps events to contributions and progress to a status; it keeps no
state, so storage can apply contributions idempotently per inbound event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from funnels.kernel.money import to_minor
from funnels.scripts.model import Goal


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one event adds to one leaf of a goal."""

    leaf: int
    """Index of the leaf in ``goal.leaves()``."""
    amount: int
    """1 for count and unique leaves; the integer field value for sum leaves."""
    unique_key: str | None
    """For unique leaves, the distinct value (counts only if storage has not seen it)."""


@dataclass(frozen=True, slots=True)
class GoalStatus:
    done: bool
    ratio: float
    """0..1 for progress bars: a leaf is min(value / target, 1); all: the mean; any: the max."""


def _same(expected: object, actual: object) -> bool:
    # True == 1 in Python; a where filter on a flag must not match a count, and back.
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return expected == actual


def _matches(leaf: Goal, event_type: str, data: Mapping[str, object]) -> bool:
    if leaf.event != event_type:
        return False
    if leaf.where:
        for key, expected in leaf.where.items():
            if key not in data or not _same(expected, data[key]):
                return False
    return True


def contributions(goal: Goal, event_type: str, data: Mapping[str, object]) -> list[Contribution]:
    """One contribution per leaf of ``goal`` that the event matches.

    A leaf matches when the event type is equal and every ``where`` key is present in
    ``data`` with an equal value. A sum leaf whose field is missing or not an integer
    (``bool`` is not one) and a unique leaf whose field is missing or null contribute
    nothing: a malformed event must not complete a task.
    """
    out: list[Contribution] = []
    for index, leaf in enumerate(goal.leaves()):
        if not _matches(leaf, event_type, data):
            continue
        if leaf.sum is not None:
            value = data.get(leaf.sum)
            if isinstance(value, int) and not isinstance(value, bool):
                out.append(Contribution(index, value, None))
        elif leaf.unique is not None:
            value = data.get(leaf.unique)
            if value is not None:
                out.append(Contribution(index, 1, str(value)))
        else:
            out.append(Contribution(index, 1, None))
    return out


def target(leaf: Goal, currency: str) -> int:
    """The value a leaf needs: its count (default 1), or ``at_least`` in minor units."""
    if leaf.all is not None or leaf.any is not None:
        raise ValueError("target() takes an event goal, not all:/any:")
    if leaf.sum is not None:
        if leaf.at_least is None:
            raise ValueError(f"the sum goal on {leaf.sum!r} has no at_least amount")
        return to_minor(leaf.at_least, currency)
    return leaf.count if leaf.count is not None else 1


def _leaf_ratio(value: int, goal_target: int) -> float:
    if goal_target <= 0:
        return 1.0
    return min(max(value / goal_target, 0.0), 1.0)


def _evaluate(
    goal: Goal, progress: Mapping[int, int], currency: str, first: int
) -> tuple[GoalStatus, int]:
    """Status of ``goal`` whose first leaf has index ``first``; also the next free index."""
    children = goal.all if goal.all is not None else goal.any
    if children is None:
        value = progress.get(first, 0)
        need = target(goal, currency)
        return GoalStatus(done=value >= need, ratio=_leaf_ratio(value, need)), first + 1
    statuses: list[GoalStatus] = []
    index = first
    for child in children:
        status, index = _evaluate(child, progress, currency, index)
        statuses.append(status)
    if goal.all is not None:
        done = all(s.done for s in statuses)
        ratio = sum(s.ratio for s in statuses) / len(statuses)
    else:
        done = any(s.done for s in statuses)
        ratio = max(s.ratio for s in statuses)
    # Mean of floats can land a hair under 1.0; a met goal shows a full bar.
    return GoalStatus(done=done, ratio=1.0 if done else min(ratio, 1.0)), index


def evaluate(goal: Goal, progress: Mapping[int, int], currency: str) -> GoalStatus:
    """Whether ``goal`` is met by ``progress`` (leaf index -> value; missing means 0)."""
    status, _ = _evaluate(goal, progress, currency, 0)
    return status


def leaf_label(leaf: Goal) -> str:
    """A short, stable label for a leaf: its event type and any ``where`` filter."""
    label = leaf.event or ""
    if leaf.where:
        filters = ", ".join(f"{k}={v}" for k, v in sorted(leaf.where.items()))
        label = f"{label} [{filters}]"
    return label


Measure = Literal["count", "unique", "sum"]


@dataclass(frozen=True, slots=True)
class LeafProgress:
    """How far a member is on one leaf of a goal, and what the numbers are.

    ``value`` and ``target`` are plain counts for ``count`` and ``unique`` leaves; for a
    ``sum`` leaf they are amounts of money in minor units of ``currency`` (the cohort's),
    so they must be shown as money, never as bare integers.
    """

    label: str
    """:func:`leaf_label`: stable, for logs and reports, not for members to read."""
    event: str
    measure: Measure
    value: int
    target: int
    currency: str | None = None
    """Set for ``sum`` leaves only."""


def describe_progress(goal: Goal, progress: Mapping[int, int], currency: str) -> list[LeafProgress]:
    """One :class:`LeafProgress` per leaf, in leaf order, for /tasks and reports."""
    out: list[LeafProgress] = []
    for index, leaf in enumerate(goal.leaves()):
        measure: Measure = (
            "sum" if leaf.sum is not None else "unique" if leaf.unique is not None else "count"
        )
        out.append(
            LeafProgress(
                label=leaf_label(leaf),
                event=leaf.event or "",
                measure=measure,
                value=progress.get(index, 0),
                target=target(leaf, currency),
                currency=currency if measure == "sum" else None,
            )
        )
    return out
