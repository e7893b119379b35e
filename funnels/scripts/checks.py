"""Checks of a funnel script that span fields, run after the pydantic model is valid.

(Longer than most modules, on purpose: every cross-field check and its wording for the
script's author are in this one place.)

The model in :mod:`funnels.scripts.model` checks each field on its own; this module checks how
the fields fit together: steps inside their stage, unique ids, exactly one pitch, amounts
in the currency's minor unit, the budget, and the restraint rules of seed 004 (no
repeated texts, nothing in quiet hours, no flooding), which are warnings.

Every finding carries a ``loc`` shaped like a pydantic error location, e.g.
``("warmup", "steps", 3, "at", "day")``, so the loader can point at the YAML line.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Literal

from funnels.kernel.durations import format_duration
from funnels.kernel.money import format_minor, to_minor
from funnels.scripts.model import Goal, RedEnvelope, Script, Step

Loc = tuple[str | int, ...]
Severity = Literal["error", "warning"]

KNOWN_EVENTS: frozenset[str] = frozenset(
    {
        "fan.locked",
        "link.clicked",
        "post.published",
        "group.created",
        "talk.given",
        "order.paid",
        "proof.approved",
    }
)
"""Event types the platform is known to send; others are allowed but warned about."""

MAX_STEPS_PER_DAY = 6
"""More warm-up steps than this on one day floods the group (seed 004)."""


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: where (a pydantic-style location), what, and how serious."""

    loc: Loc
    message: str
    severity: Severity
    related: Loc | None = None
    """Another place the finding refers to (the first use of a duplicate id or text)."""


def check(script: Script) -> list[Check]:
    """Every cross-field problem of a model-valid script, errors and warnings, in script order."""
    out: list[Check] = []
    out += _days(script)
    out += _duplicate_ids(script)
    out += _pitch(script)
    out += _amounts_and_budget(script)
    out += _talk_overlaps(script)
    out += _repeated_texts(script)
    out += _quiet_hours(script)
    out += _crowded_days(script)
    out += _goal_events(script)
    out += _proofs(script)
    return out


def planned_spend(script: Script, capacity: int | None = None) -> tuple[int, int]:
    """(envelope, reward) spend in minor units of the budget currency.

    Rewards are planned for ``budget.reward_seats`` members if set, else for the cohort
    capacity (``capacity`` when the cohort overrides the script's). Raises ``ValueError``
    for an amount that does not fit the currency; :func:`check` reports those first.
    """
    currency = script.budget.currency
    envelopes = sum(
        to_minor(s.red_envelope.total, currency)
        for s in script.warmup.steps
        if s.red_envelope is not None
    )
    per_member = sum(
        to_minor(t.reward.amount, currency) for t in script.tasks.ladder if t.reward is not None
    )
    return envelopes, per_member * _reward_seats(script, capacity)


def _reward_seats(script: Script, capacity: int | None = None) -> int:
    if script.budget.reward_seats is not None:
        return script.budget.reward_seats
    return capacity if capacity is not None else script.capacity


def _step_loc(index: int, *rest: str | int) -> Loc:
    return ("warmup", "steps", index, *rest)


def _task_loc(index: int, *rest: str | int) -> Loc:
    return ("tasks", "ladder", index, *rest)


def _hhmm(value: time | timedelta) -> str:
    if isinstance(value, timedelta):
        value = _time_of_day(value)
    return value.strftime("%H:%M")


def _since_midnight(value: time) -> timedelta:
    return timedelta(hours=value.hour, minutes=value.minute)


def _time_of_day(offset: timedelta) -> time:
    """The wall time ``offset`` after midnight, wrapping past 24:00."""
    minutes = int(offset.total_seconds()) // 60 % (24 * 60)
    return time(minutes // 60, minutes % 60)


# ---------------------------------------------------------------- stages and ids


def _days(script: Script) -> list[Check]:
    out: list[Check] = []
    last = script.warmup.days
    for i, step in enumerate(script.warmup.steps):
        if step.at.day > last:
            out.append(
                Check(
                    _step_loc(i, "at", "day"),
                    f"day {step.at.day} is after the warm-up, which has {last} days "
                    f"(warmup.days); use a day from 1 to {last} or raise warmup.days",
                    "error",
                )
            )
    last = script.tasks.days
    for i, task in enumerate(script.tasks.ladder):
        if task.unlock.day > last:
            out.append(
                Check(
                    _task_loc(i, "unlock", "day"),
                    f"day {task.unlock.day} is after the task stage, which has {last} days "
                    f"(tasks.days); use a day from 1 to {last} or raise tasks.days",
                    "error",
                )
            )
    return out


def _duplicate_ids(script: Script) -> list[Check]:
    out: list[Check] = []
    first: dict[str, Loc] = {}
    places: list[tuple[str, Loc]] = [
        (s.id, _step_loc(i)) for i, s in enumerate(script.warmup.steps)
    ] + [(t.id, _task_loc(i)) for i, t in enumerate(script.tasks.ladder)]
    for item_id, loc in places:
        if item_id in first:
            earlier = first[item_id]
            out.append(
                Check(
                    (*loc, "id"),
                    f"duplicate id {item_id!r}: {_describe(earlier)} already uses it; ids must be "
                    "unique across warm-up steps and tasks, as step runs and ledger entries "
                    "are keyed by them",
                    "error",
                    related=(*earlier, "id"),
                )
            )
        else:
            first[item_id] = loc
    return out


def _describe(loc: Loc) -> str:
    """A plain name for a step or task location: "warmup.steps[0]"."""
    return f"{loc[0]}.{loc[1]}[{loc[2]}]"


def _pitch(script: Script) -> list[Check]:
    pitches = [(i, s) for i, s in enumerate(script.warmup.steps) if s.pitch is not None]
    if not pitches:
        return [
            Check(
                ("warmup", "steps"),
                "the warm-up has no pitch step; add exactly one step with pitch: (the closing "
                'offer members answer with "1" to join the task group)',
                "error",
            )
        ]
    out: list[Check] = []
    first_index, first = pitches[0]
    for i, _step in pitches[1:]:
        out.append(
            Check(
                _step_loc(i, "pitch"),
                f"a second pitch step; the warm-up has exactly one pitch and {first.id!r} "
                f"({_describe(_step_loc(first_index))}) is already it; make this a post",
                "error",
                related=_step_loc(first_index, "pitch"),
            )
        )
    pitch = first.pitch
    assert pitch is not None
    opens = timedelta(days=first.at.day - 1) + _since_midnight(first.at.time)
    closes = opens + pitch.reply.window
    stage_end = timedelta(days=script.warmup.days + script.tasks.days)
    if closes >= stage_end:
        task_day = closes // timedelta(days=1) + 1 - script.warmup.days
        out.append(
            Check(
                _step_loc(first_index, "pitch", "reply", "window"),
                f"the reply window of {format_duration(pitch.reply.window)} closes on task day "
                f"{task_day}, after the task stage ends (tasks.days is {script.tasks.days}); "
                "shorten the window so members who reply still have time for the tasks",
                "error",
            )
        )
    return out


# ---------------------------------------------------------------- money


def _amounts_and_budget(script: Script) -> list[Check]:
    out: list[Check] = []
    currency = script.budget.currency

    def minor(amount: str, loc: Loc) -> int | None:
        try:
            return to_minor(amount, currency)
        except ValueError as exc:
            out.append(Check(loc, f"{exc}; amounts must be whole {currency} minor units", "error"))
            return None

    budget = minor(script.budget.total, ("budget", "total"))
    envelopes = _envelope_amounts(script, minor, out)
    per_member: int | None = 0
    for i, task in enumerate(script.tasks.ladder):
        for leaf_loc, leaf in _goal_leaves(task.goal, _task_loc(i, "goal")):
            if leaf.at_least is not None:
                minor(leaf.at_least, (*leaf_loc, "at_least"))
        if task.reward is None:
            continue
        amount = minor(task.reward.amount, _task_loc(i, "reward", "amount"))
        if amount is None:
            per_member = None
        elif per_member is not None:
            per_member += amount

    if budget is not None and envelopes is not None and per_member is not None:
        out += _budget(script, budget, envelopes, per_member)
    return out


def _envelope_amounts(
    script: Script, minor: Callable[[str, Loc], int | None], out: list[Check]
) -> int | None:
    """The envelopes' totals added up (None if one is unreadable), each envelope's
    shares and minimum checked against its total."""
    currency = script.budget.currency
    envelopes: int | None = 0
    for i, step in enumerate(script.warmup.steps):
        envelope = step.red_envelope
        if envelope is None:
            continue
        total = minor(envelope.total, _step_loc(i, "red_envelope", "total"))
        least = _min_share(envelope, currency)
        if least is None:
            out.append(
                Check(
                    _step_loc(i, "red_envelope"),
                    f"the default min_share {envelope.min_share} is not an amount of {currency}; "
                    f'write min_share: "{format_minor(1, currency)}" (or more) for this envelope',
                    "error",
                )
            )
        elif isinstance(least, str):
            out.append(Check(_step_loc(i, "red_envelope", "min_share"), least, "error"))
            least = None
        if total is None:
            envelopes = None
            continue
        if envelopes is not None:
            envelopes += total
        if total == 0:
            out.append(
                Check(
                    _step_loc(i, "red_envelope", "total"),
                    "an envelope total must be more than 0",
                    "error",
                )
            )
        elif least is not None and envelope.shares * least > total:
            need = format_minor(envelope.shares * least, currency)
            out.append(
                Check(
                    _step_loc(i, "red_envelope", "shares"),
                    f"{envelope.shares} shares of at least {envelope.min_share} need {need} "
                    f"{currency}, more than the envelope total {envelope.total}; lower shares "
                    "or min_share, or raise total",
                    "error",
                )
            )
    return envelopes


def _min_share(envelope: RedEnvelope, currency: str) -> int | str | None:
    """The minimum share in minor units; a message if the written one does not fit the
    currency; ``None`` if the model's default ("0.01") does not, e.g. in JPY."""
    try:
        return to_minor(envelope.min_share, currency)
    except ValueError as exc:
        if "min_share" not in envelope.model_fields_set:
            return None
        return f"{exc}; amounts must be whole {currency} minor units"


def _budget(script: Script, budget: int, envelopes: int, per_member: int) -> list[Check]:
    currency = script.budget.currency
    seats = _reward_seats(script)
    planned = envelopes + per_member * seats
    if planned <= budget:
        return []

    def money(minor: int) -> str:
        return f"{format_minor(minor, currency)} {currency}"

    seat_words = (
        f"{seats} reward seats"
        if script.budget.reward_seats is not None
        else f"{seats} members at capacity"
    )
    if envelopes >= budget or per_member == 0:
        fix = f"raise budget.total to at least {money(planned)} or lower the envelope totals"
    else:
        most = (budget - envelopes) // per_member
        fix = (
            f"raise budget.total to at least {money(planned)} "
            f"or set budget.reward_seats to at most {most}"
        )
    return [
        Check(
            ("budget", "total"),
            f"planned spend {money(planned)} (envelopes {money(envelopes)} + task rewards "
            f"{money(per_member)} × {seat_words}) is more than the budget "
            f"{money(budget)}; {fix}",
            "error",
        )
    ]


# ---------------------------------------------------------------- timing


def _talk_overlaps(script: Script) -> list[Check]:
    out: list[Check] = []
    steps = script.warmup.steps
    # Each day's steps in time order, so finding the step after a talk is a bisection,
    # not a scan of every step (a long script must still load in well under a second).
    by_day: dict[int, list[tuple[time, int]]] = {}
    for j, other in enumerate(steps):
        by_day.setdefault(other.at.day, []).append((other.at.time, j))
    for entries in by_day.values():
        entries.sort()
    for i, step in enumerate(steps):
        if step.talk is None:
            continue
        begins = _since_midnight(step.at.time)
        length = sum((p.after for p in step.talk.parts), timedelta(0))
        day = by_day[step.at.day]
        start = bisect_left(day, (step.at.time, -1))
        # The first step at or after the talk's time, skipping the talk itself.
        later = [(t, j) for t, j in day[start : start + 2] if j != i]
        if not later:
            continue
        next_time, j = later[0]
        next_at = _since_midnight(next_time)
        if begins + length > next_at:
            out.append(
                Check(
                    _step_loc(i, "talk", "parts"),
                    f"the talk runs until {_hhmm(begins + length)} (its parts add up to "
                    f"{format_duration(length)}) and crosses into {steps[j].id!r} at "
                    f"{_hhmm(next_at)} the same day; move that step later or shorten the pauses",
                    "warning",
                    related=_step_loc(j, "at", "time"),
                )
            )
    return out


def _texts(step: Step, index: int) -> Iterator[tuple[Loc, str, str]]:
    """(loc, label, text) of every message a step posts that authors write in full."""
    if step.post is not None:
        yield _step_loc(index, "post", "text"), f"the post {step.id!r}", step.post.text
    if step.talk is not None:
        for k, part in enumerate(step.talk.parts):
            label = f"part {k + 1} of the talk {step.id!r}"
            yield _step_loc(index, "talk", "parts", k, "text"), label, part.text
    if step.pitch is not None:
        yield _step_loc(index, "pitch", "text"), f"the pitch {step.id!r}", step.pitch.text


def _repeated_texts(script: Script) -> list[Check]:
    out: list[Check] = []
    seen: dict[str, tuple[Loc, str]] = {}
    for i, step in enumerate(script.warmup.steps):
        for loc, label, text in _texts(step, i):
            key = " ".join(text.split()).casefold()
            if key in seen:
                first_loc, first_label = seen[key]
                out.append(
                    Check(
                        loc,
                        f"the same text as {first_label}; members mute a bot that repeats itself "
                        "(seed 004), so write this one differently",
                        "warning",
                        related=first_loc,
                    )
                )
            else:
                seen[key] = (loc, label)
    return out


def _quiet_hours(script: Script) -> list[Check]:
    quiet = script.quiet_hours
    if quiet is None:
        return []
    hours = f"{_hhmm(quiet.start)}–{_hhmm(quiet.end)}"
    out: list[Check] = []
    for i, step in enumerate(script.warmup.steps):
        if quiet.contains(step.at.time):
            what = step.kind.replace("_", " ")
            out.append(
                Check(
                    _step_loc(i, "at", "time"),
                    f"a {what} at {_hhmm(step.at.time)} falls in quiet hours ({hours}); "
                    "members mute bots that post at night: move it or change quiet_hours",
                    "warning",
                )
            )
            continue
        if step.talk is None:
            continue
        offset = _since_midnight(step.at.time)
        for k, part in enumerate(step.talk.parts):
            offset += part.after
            if quiet.contains(_time_of_day(offset)):
                out.append(
                    Check(
                        _step_loc(i, "talk", "parts", k),
                        f"part {k + 1} of the talk runs at {_hhmm(offset)}, "
                        f"in quiet hours ({hours}); "
                        "start the talk earlier or shorten the pauses",
                        "warning",
                    )
                )
                break
    return out


def _crowded_days(script: Script) -> list[Check]:
    by_day: dict[int, list[tuple[time, int]]] = {}
    for i, step in enumerate(script.warmup.steps):
        by_day.setdefault(step.at.day, []).append((step.at.time, i))
    out: list[Check] = []
    for day, entries in sorted(by_day.items()):
        if len(entries) > MAX_STEPS_PER_DAY:
            entries.sort()
            _, index = entries[MAX_STEPS_PER_DAY]
            out.append(
                Check(
                    _step_loc(index, "at", "day"),
                    f"warm-up day {day} has {len(entries)} steps; more than {MAX_STEPS_PER_DAY} "
                    "a day floods the group and members mute it (seed 004): spread them out",
                    "warning",
                )
            )
    return out


# ---------------------------------------------------------------- tasks


def _goal_leaves(goal: Goal, loc: Loc) -> Iterator[tuple[Loc, Goal]]:
    """(loc, leaf) of every event goal under ``goal``, depth first."""
    for branch, children in (("all", goal.all), ("any", goal.any)):
        if children is not None:
            for k, child in enumerate(children):
                yield from _goal_leaves(child, (*loc, branch, k))
            return
    yield loc, goal


def _goal_events(script: Script) -> list[Check]:
    out: list[Check] = []
    known = ", ".join(sorted(KNOWN_EVENTS))
    for i, task in enumerate(script.tasks.ladder):
        for loc, leaf in _goal_leaves(task.goal, _task_loc(i, "goal")):
            if leaf.event is not None and leaf.event not in KNOWN_EVENTS:
                out.append(
                    Check(
                        (*loc, "event"),
                        f"{leaf.event!r} is not an event the platform is known to send "
                        f"(known: {known}); the task may never complete, so check the spelling",
                        "warning",
                    )
                )
    return out


PROOF_EVENT = "proof.approved"
"""What the bot records when a leader approves a member's screenshot for a proof task."""


def _proofs(script: Script) -> list[Check]:
    """A proof task's goal counts its own approved screenshots, and an approved-proof
    goal names a proof task: otherwise the screenshots could never count, or would count
    for a task nobody can send one for."""
    out: list[Check] = []
    proof_tasks = [t.id for t in script.tasks.ladder if t.proof]
    for i, task in enumerate(script.tasks.ladder):
        counts_own = False
        for loc, leaf in _goal_leaves(task.goal, _task_loc(i, "goal")):
            if leaf.event != PROOF_EVENT:
                continue
            named = (leaf.where or {}).get("task")
            if named == task.id and task.proof:
                counts_own = True
            elif named not in proof_tasks:
                listed = ", ".join(proof_tasks) or "none"
                out.append(
                    Check(
                        (*loc, "where"),
                        f"{PROOF_EVENT} counts the approved screenshots of one proof task: "
                        f"name it with where: {{task: ID}} (proof tasks here: {listed})",
                        "error",
                    )
                )
        if task.proof and not counts_own:
            out.append(
                Check(
                    _task_loc(i, "goal"),
                    f"a proof task's goal must count its approved screenshots: "
                    f"{{event: {PROOF_EVENT}, where: {{task: {task.id}}}, count: 1}}",
                    "error",
                )
            )
    return out
