"""The funnel script: a declarative, validated description of one 7+21 line.

A script is data. Authors write it in YAML; pydantic checks every field with
``extra="forbid"`` and :mod:`funnels.scripts.checks` adds the checks that span fields
(steps inside their stage, unique ids, budget). Step and task ids are stable keys:
step runs, envelopes, ledger entries and reports refer to them, so renaming one in a
new version of a script is a new step, never an edit of an old one.

(A little over 400 lines: the whole schema of a script reads in this one file.)
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from string import Formatter
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from funnels.kernel.durations import format_duration, parse_duration
from funnels.kernel.money import MAX_EXPONENT, currency_problem
from funnels.kernel.text import brief, cut
from funnels.kernel.zones import find_zone

LOCALES = ("zh-CN", "es", "en")
Locale = Literal["zh-CN", "es", "en"]

_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_AMOUNT = re.compile(r"^\d+(\.\d+)?$")
_EVENT = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


MAX_DURATION = timedelta(days=366)
"""Longest pause, window or expiry in a script: a cohort runs for at most 180 days, and
a longer duration would overflow the date arithmetic of planning a run."""


def _duration(value: object) -> timedelta:
    if isinstance(value, (str, int, timedelta)):
        return parse_duration(value, longest=MAX_DURATION)
    raise ValueError(f"{brief(value)} is not a duration; write it like 30s, 10m, 24h or 2d")


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
]


MAX_AMOUNT_DIGITS = 12
"""Most digits before and after the point of a script amount: a trillion of any currency
is more than any budget, and the minor units must fit a 64-bit column."""


def _amount(value: object) -> str:
    # YAML turns 20.00 into the float 20.0; amounts must be quoted strings so that
    # "0.10" never becomes 0.1 by way of binary floating point.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f'write amounts as quoted decimals like "20.00", not {brief(value)}')
    text = str(value).strip()
    if not _AMOUNT.match(text):
        raise ValueError(f'{brief(value)} is not an amount; write it like "20.00"')
    whole, _, part = text.partition(".")
    if len(whole.lstrip("0")) > MAX_AMOUNT_DIGITS:
        raise ValueError(
            f"the amount {cut(text)} is too large; write at most {MAX_AMOUNT_DIGITS} digits "
            "before the decimal point"
        )
    if len(part) > MAX_AMOUNT_DIGITS:
        raise ValueError(
            f"the amount {cut(text)} has {len(part)} decimal places; "
            f"no currency has more than {MAX_EXPONENT}"
        )
    return text


Amount = Annotated[str, BeforeValidator(_amount)]
"""A decimal amount in the script's budget currency, kept as text until converted."""


def _step_id(value: object) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError(
            f"{brief(value, 80)} is not a valid id: use lowercase letters, digits and _, "
            "starting with a letter, at most 63 characters"
        )
    return value


StepId = Annotated[str, BeforeValidator(_step_id)]

_SCRIPT_ID = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def _script_id(value: object) -> str:
    if not isinstance(value, str) or not _SCRIPT_ID.match(value):
        raise ValueError(
            f"{brief(value, 80)} is not a valid script id: use lowercase letters, digits, _ and -, "
            "starting with a letter, at most 63 characters"
        )
    return value


ScriptId = Annotated[str, BeforeValidator(_script_id)]


def _clock_time(value: object) -> time:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 09:00 as sexagesimal 540.
        value = f"{value // 60:02d}:{value % 60:02d}"
    if isinstance(value, str):
        match = re.match(r"^([01]?\d|2[0-3]):([0-5]\d)$", value.strip())
        if match:
            return time(int(match.group(1)), int(match.group(2)))
    raise ValueError(f'{brief(value)} is not a time of day; write it like "09:00"')


ClockTime = Annotated[
    time,
    BeforeValidator(_clock_time),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class At(_Strict):
    """When a step runs: a day of its stage (1-based) and a local time of day."""

    day: int = Field(ge=1, le=366)
    time: ClockTime


class Media(_Strict):
    """One attachment: a URL or a Telegram file id; exactly one kind."""

    photo: str | None = None
    video: str | None = None
    document: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Media:
        kinds = [k for k in ("photo", "video", "document") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError("media needs exactly one of photo, video, document")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("photo", "video", "document") if getattr(self, k))

    @property
    def ref(self) -> str:
        return str(getattr(self, self.kind))


_VARIANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,15}$")
CONTROL = "a"
"""The arm a message's own ``text`` is, when it declares variants."""


def _variant_id(value: object) -> str:
    if not isinstance(value, str) or not _VARIANT_ID.match(value) or value == CONTROL:
        raise ValueError(
            f"{brief(value, 40)} is not a variant id: 1 to 16 lowercase letters, digits, _ "
            f'and -, and not "{CONTROL}" (the message\'s own text is arm "{CONTROL}")'
        )
    return value


class Variant(_Strict):
    """Another wording of the same message, sent to part of its audience (an A/B arm).
    Which arm a cohort (or a member) gets is drawn by weight, the same every time for
    the same cohort (``funnels.scripts.variants``)."""

    id: Annotated[str, BeforeValidator(_variant_id)]
    weight: int = Field(default=1, ge=1, le=100)
    text: str = Field(min_length=1, max_length=4096)
    media: Media | None = None
    """Default: the message's own media."""


def _distinct(ids: list[str]) -> None:
    doubled = sorted({i for i in ids if ids.count(i) > 1})
    if doubled:
        raise ValueError(f"variant ids must differ: {', '.join(doubled)} twice")


class _Varied(_Strict):
    """A message that may declare variants: its own text is arm ``a`` (``weight``)."""

    weight: int = Field(default=1, ge=1, le=100)
    """Arm ``a``'s weight when there are variants."""
    variants: list[Variant] = Field(default_factory=list, max_length=4)

    @model_validator(mode="after")
    def _distinct_variants(self) -> _Varied:
        _distinct([v.id for v in self.variants])
        return self


class Post(_Varied):
    text: str = Field(min_length=1, max_length=4096)
    media: Media | None = None
    pin: bool = False


class TalkPart(_Varied):
    """One message of a talk; ``after`` is the pause since the previous part."""

    after: Duration = timedelta(0)
    text: str = Field(min_length=1, max_length=4096)
    media: Media | None = None


class Talk(_Strict):
    speaker: str = Field(min_length=1, max_length=128)
    title: str = Field(min_length=1, max_length=256)
    parts: list[TalkPart] = Field(min_length=1, max_length=50)
    slow_mode: Duration | None = None
    """Slow mode for the group while the talk runs (Telegram allows 10s to 1h)."""
    pin: bool = False
    """Pin the talk's first part until the talk ends."""


class RedEnvelope(_Strict):
    total: Amount
    shares: int = Field(ge=1, le=1000)
    expires_in: Duration = timedelta(minutes=10)
    min_share: Amount = "0.01"
    text: str | None = Field(default=None, max_length=1024)
    """Optional caption above the Grab button; the locale catalogue has a default."""


class ReplyFilter(_Strict):
    match: list[str] = Field(default_factory=lambda: ["1"], min_length=1, max_length=50)
    """Answers that count. Forms are folded: "１", "1️⃣" and " 1 " all match "1"."""
    window: Duration = timedelta(hours=24)


class Pitch(_Varied):
    text: str = Field(min_length=1, max_length=4096)
    media: Media | None = None
    reply: ReplyFilter = ReplyFilter()
    pin: bool = True


StepKind = Literal["post", "talk", "red_envelope", "pitch"]
STEP_KINDS: tuple[StepKind, ...] = ("post", "talk", "red_envelope", "pitch")


class Step(_Strict):
    """One scheduled action in the warm-up group; exactly one action key is set."""

    id: StepId
    at: At
    late: Literal["run", "skip"] | None = None
    """What to do when the step is found overdue; default by kind (see ``late_policy``)."""
    grace: Duration | None = None
    """How overdue a ``late: skip`` step may still run; default 30m."""
    post: Post | None = None
    talk: Talk | None = None
    red_envelope: RedEnvelope | None = None
    pitch: Pitch | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        set_keys = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(set_keys) != 1:
            found = ", ".join(set_keys) if set_keys else "none"
            raise ValueError(
                f"a step needs exactly one of post, talk, red_envelope, pitch (found: {found})"
            )
        return self

    @property
    def kind(self) -> StepKind:
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)

    def late_policy(self) -> tuple[Literal["run", "skip"], timedelta]:
        """(policy, grace): envelopes and posts skip after 30 min; talks and the pitch run."""
        default: Literal["run", "skip"] = "skip" if self.kind in ("red_envelope", "post") else "run"
        return (
            self.late or default,
            self.grace if self.grace is not None else timedelta(minutes=30),
        )


class QuietHours(_Strict):
    """Local hours when posting annoys members; validation warns about steps inside them."""

    start: ClockTime = time(22, 0)
    end: ClockTime = time(8, 0)

    def contains(self, t: time) -> bool:
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


class Budget(_Strict):
    currency: str = "CNY"
    total: Amount
    reward_seats: int | None = Field(default=None, ge=0, le=200_000)
    """Most members the ladder rewards are planned for; default: the cohort capacity.
    Rewards past the budget are withheld and reported, never paid on credit."""

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        problem = currency_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class Warmup(_Strict):
    days: int = Field(default=7, ge=1, le=60)
    steps: list[Step] = Field(min_length=1, max_length=1000)
    """Six steps a day already floods a group; the bound keeps validation cheap."""


MAX_GOALS = 50
"""Most conditions in one ``where:`` and goals in one ``all:``/``any:``."""


def _few_conditions(value: object) -> object:
    # Checked before the entries: pydantic reports every entry of a dict that is wrong
    # (three errors each, one per type allowed), however long the dict.
    if isinstance(value, dict) and len(value) > MAX_GOALS:
        raise ValueError(f"has {len(value)} conditions; at most {MAX_GOALS} are allowed")
    return value


class Goal(_Strict):
    """What a task needs, from events about the member.

    A leaf names an ``event`` type and counts it (``count``), counts distinct values of
    one data field (``unique``), or adds up an integer data field in minor units
    (``sum`` with ``at_least``); ``where`` keeps only events whose data fields equal the
    given values. A branch is ``all:`` or ``any:`` of other goals.
    """

    event: str | None = None
    count: int | None = Field(default=None, ge=1, le=1_000_000)
    unique: str | None = None
    sum: str | None = None
    at_least: Amount | None = None
    where: Annotated[dict[str, str | int | bool], BeforeValidator(_few_conditions)] | None = None
    all: list[Goal] | None = Field(default=None, max_length=MAX_GOALS)
    any: list[Goal] | None = Field(default=None, max_length=MAX_GOALS)

    @field_validator("event")
    @classmethod
    def _event(cls, value: str | None) -> str | None:
        if value is not None and not _EVENT.match(value):
            raise ValueError(f"{brief(value)} is not an event type like fan.locked or order.paid")
        return value

    @model_validator(mode="after")
    def _shape(self) -> Goal:
        branches = [k for k in ("all", "any") if getattr(self, k) is not None]
        if branches:
            leaf_keys = [
                k
                for k in ("event", "count", "unique", "sum", "at_least", "where")
                if getattr(self, k) is not None
            ]
            if len(branches) > 1 or leaf_keys:
                raise ValueError("a goal is either all:/any: of goals or one event goal, not both")
            if not getattr(self, branches[0]):
                raise ValueError(f"{branches[0]}: needs at least one goal")
            return self
        if self.event is None:
            raise ValueError("a goal needs event: (or all:/any: of goals)")
        if self.sum is not None:
            if self.at_least is None or self.count is not None or self.unique is not None:
                raise ValueError(
                    "a sum goal takes sum: FIELD and at_least: AMOUNT, not count/unique"
                )
        elif self.at_least is not None:
            raise ValueError("at_least: goes with sum: FIELD")
        return self

    def leaves(self) -> list[Goal]:
        """The event goals under this goal, depth first."""
        if self.all is not None or self.any is not None:
            return [leaf for g in (self.all or self.any or []) for leaf in g.leaves()]
        return [self]

    def events(self) -> set[str]:
        return {leaf.event for leaf in self.leaves() if leaf.event}


class Unlock(_Strict):
    day: int = Field(ge=1, le=366)
    time: ClockTime = time(9, 0)


class Reward(_Strict):
    amount: Amount


MAX_URL_LENGTH = 2048
"""Longest target address: what every browser and chat app takes in full."""


class Link(_Strict):
    """Where a member's tracked link for the task leads (``GET /r/{code}`` redirects
    there): the shop's page of the deal, the sign-up page."""

    target: str

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        problem = web_address_problem(value)
        if problem:
            raise ValueError(problem)
        return value


def web_address_problem(value: str) -> str | None:
    """Why ``value`` is not a full http(s) address a browser can be sent to (None: it is)."""
    example = "write a full address like https://shop.example.com/deal"
    if len(value) > MAX_URL_LENGTH:
        return f"the address is {len(value)} characters long; at most {MAX_URL_LENGTH} are allowed"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        return f"{brief(value, 80)} has spaces or control characters in it; {example}"
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https"):
        return f"{brief(value, 80)} is not an http or https address; {example}"
    try:
        host = parts.hostname
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        host = None
    if not host:
        return f"{brief(value, 80)} names no host; {example}"
    return None


class Task(_Strict):
    id: StepId
    title: str = Field(min_length=1, max_length=128)
    how: str = Field(min_length=1, max_length=2048)
    """What the member does, shown by /tasks and in the unlock announcement."""
    unlock: Unlock
    goal: Goal
    reward: Reward | None = None
    promote: Literal["shopkeeper", "supervisor"] | None = None
    link: Link | None = None
    """The task's target page: each member gets a tracked link to it (``/mylink``)."""
    announce: bool = True
    """Post the task in the task group when it unlocks."""
    proof: bool = False
    """Done off the platform (a post on another network sends no event): the member sends
    a screenshot to the bot, the cohort's leader approves it, and the approval is the
    ``proof.approved`` event (``data.task`` = this task's id) that the goal counts."""
    talk: Talk | None = None
    """The talk material of a group task: the bot gives it part by part in the member's
    own group when they send ``/talk`` there (``talk.given`` after the last part)."""


REMINDER_FIELDS = ("title", "count", "when")
"""What a reminder's text may name in braces: the oldest open task's title, how many
tasks are open, when the next one opens (for a member who is ahead)."""


def _reminder_text(value: str) -> str:
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in Formatter().parse(value)]
    except ValueError as bad:
        raise ValueError(f"unbalanced braces ({bad}); write {{{{ and }}}} for a brace") from None
    for name, spec, conv in fields:
        if name is None:
            continue
        names = ", ".join(f"{{{n}}}" for n in REMINDER_FIELDS)
        if name not in REMINDER_FIELDS:
            raise ValueError(f"{{{cut(name, 30)}}} is not one of {names}")
        if spec or conv:
            raise ValueError(f"write {{{name}}} alone, with no format or conversion")
    return value


ReminderTemplate = Annotated[
    str, Field(min_length=1, max_length=1024), AfterValidator(_reminder_text)
]


class ReminderVariant(_Strict):
    """Another wording of a reminder (text only), drawn per member."""

    id: Annotated[str, BeforeValidator(_variant_id)]
    weight: int = Field(default=1, ge=1, le=100)
    text: ReminderTemplate


class ReminderText(_Strict):
    """The script's own wording of one kind of daily reminder (instead of the built-in
    one), with ``{title}``, ``{count}`` and ``{when}`` filled in; it may declare
    variants, drawn per member (a private message: the member is the unit)."""

    text: ReminderTemplate
    weight: int = Field(default=1, ge=1, le=100)
    """Arm ``a``'s weight when there are variants."""
    variants: list[ReminderVariant] = Field(default_factory=list, max_length=4)

    @property
    def media(self) -> None:
        return None

    @model_validator(mode="after")
    def _distinct_variants(self) -> ReminderText:
        _distinct([v.id for v in self.variants])
        return self


class Reminders(_Strict):
    """The daily reminder's wording per where the member stands (any left out: the
    built-in wording in the member's language)."""

    on_track: ReminderText | None = None
    """One task open."""
    behind: ReminderText | None = None
    """Several open."""
    inactive: ReminderText | None = None
    """Nothing done for two days."""
    ahead: ReminderText | None = None
    """Everything open so far done."""


class Tasks(_Strict):
    days: int = Field(default=21, ge=1, le=120)
    ladder: list[Task] = Field(min_length=1, max_length=500)
    reminders: Reminders | None = None


class Script(_Strict):
    id: ScriptId
    version: int = Field(ge=1, le=2_147_483_647)
    """Stored in a 32-bit column."""
    locale: Locale
    title: str = Field(min_length=1, max_length=128)
    timezone: str = "Asia/Shanghai"
    capacity: int = Field(default=500, ge=1, le=200_000)
    quiet_hours: QuietHours | None = QuietHours()
    budget: Budget
    warmup: Warmup
    tasks: Tasks

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        if find_zone(value) is None:
            raise ValueError(
                f"{brief(value, 80)} is not an IANA time zone like Asia/Shanghai or "
                "America/Mexico_City"
            )
        return value

    def step(self, step_id: str) -> Step:
        for step in self.warmup.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def task(self, task_id: str) -> Task:
        for task in self.tasks.ladder:
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    def pitch_step(self) -> Step | None:
        return next((s for s in self.warmup.steps if s.pitch is not None), None)

    @property
    def total_days(self) -> int:
        return self.warmup.days + self.tasks.days
