"""What the bot is asked to say, and the ``Messenger`` that says it.

The domain hands the messenger a message type (a script post, an envelope offer, a
notice to a member…), never words: the bot renders each one from its catalogues in
the reader's language. ``DeliveryError`` says a send failed or may not have arrived."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from funnels.kernel.records import MemberRef

# ---------------------------------------------------------------- outgoing messages


class Attachment(Protocol):
    """A photo, video or document sent with a text (a script's ``media``)."""

    @property
    def kind(self) -> str:
        """``photo``, ``video`` or ``document``."""
        ...

    @property
    def ref(self) -> str:
        """A URL or a Telegram file id."""
        ...


@dataclass(frozen=True, slots=True)
class ScriptPost:
    """A post or talk part straight from the script."""

    text: str
    media: Attachment | None = None
    locale: str = "en"


@dataclass(frozen=True, slots=True)
class EnvelopeOffer:
    envelope_id: int
    total_minor: int
    currency: str
    shares: int
    expires_at: datetime
    caption: str | None
    locale: str
    timezone: str = "UTC"
    """The cohort's zone, for showing when the envelope expires."""


@dataclass(frozen=True, slots=True)
class EnvelopeSummary:
    envelope_id: int
    claimed: int
    shares: int
    claimed_minor: int
    total_minor: int
    currency: str
    luckiest_user_id: int | None
    luckiest_name: str | None
    luckiest_minor: int
    locale: str


@dataclass(frozen=True, slots=True)
class UnlockedTask:
    """One task in the day's message: its title and the first line of its how-to."""

    task_id: str
    title: str
    how: str
    reward_minor: int | None
    later_at: datetime | None = None
    """When the task unlocks later that day than the message goes out; None: now."""


@dataclass(frozen=True, slots=True)
class TasksUnlocked:
    """The task group's one message a day: every task that unlocks that local day,
    together (never one message per task, never one per member)."""

    tasks: tuple[UnlockedTask, ...]
    currency: str
    locale: str
    timezone: str = "UTC"
    """The cohort's zone, for showing when a later task unlocks."""
    rewarded: tuple[tuple[str, str], ...] = ()
    """(member's name, task title) of rewards credited since the last such message to
    members the bot cannot write to privately: they hear of them here."""
    rewarded_more: int = 0
    """How many more there were than ``rewarded`` lists."""


@dataclass(frozen=True, slots=True)
class RewardNotice:
    task_id: str
    title: str
    amount_minor: int
    currency: str
    promoted_to: str | None
    locale: str


@dataclass(frozen=True, slots=True)
class AdmissionsOpen:
    """The batched group message inviting new responders on; never one per member.
    ``join_link``: the task group's join-request link, when the task group is bound.
    ``start_payload``: instead of a link into the task group, a ``/start`` payload for a
    button into the bot's private chat, where each responder gets a personal link."""

    new_responders: int
    total_responders: int
    locale: str
    join_link: str | None = None
    start_payload: str | None = None


@dataclass(frozen=True, slots=True)
class CohortPaused:
    """To the leader, privately: the cohort stopped because the bot lost its group.
    ``reason``: ``removed``, ``demoted`` (see ``missing``) or ``cannot_post``."""

    code: str
    reason: Literal["removed", "demoted", "cannot_post"]
    missing: tuple[str, ...]
    locale: str


@dataclass(frozen=True, slots=True)
class AdmissionNotice:
    """To a member, privately, about getting into the task group. ``outcome``:
    ``approved`` (welcome), ``not_replied`` or ``closed`` (a friendly refusal),
    ``not_yours`` (they came in by someone else's personal link and were let out again),
    ``passed_on`` (to a responder: someone else used their personal link)."""

    outcome: Literal["approved", "not_replied", "closed", "not_yours", "passed_on"]
    code: str
    locale: str


@dataclass(frozen=True, slots=True)
class Photo:
    """A photo already on Telegram, sent on by its file id (a member's screenshot)."""

    ref: str
    kind: str = "photo"


@dataclass(frozen=True, slots=True)
class ProofForReview:
    """To the cohort's leader, privately: a member's screenshot for a proof task, with
    Approve and Reject buttons."""

    proof_id: int
    member_name: str
    task_title: str
    cohort_code: str
    photo: Photo
    locale: str


@dataclass(frozen=True, slots=True)
class RewardOwed:
    """To a member, privately: a task is done but its reward is past the cohort's budget,
    so it is recorded and will be paid when the budget is raised."""

    task_id: str
    title: str
    amount_minor: int
    currency: str
    locale: str


@dataclass(frozen=True, slots=True)
class ProofDecided:
    """To the member, privately: the leader's decision on their screenshot; ``reason``
    (rejected only) is a code of ``funnels.ladder.proofs.REJECT_REASONS``."""

    task_title: str
    approved: bool
    reason: str | None
    locale: str


@dataclass(frozen=True, slots=True)
class BudgetUsedUp:
    """To a cohort's leader, privately: the reward budget ran out; ``owed`` rewards (worth
    ``owed_minor``) wait until ops raise it."""

    code: str
    owed: int
    owed_minor: int
    currency: str
    locale: str


GroupTaskNote = Literal[
    "welcome", "ready", "not_in_task", "not_open", "done", "has_group", "taken", "goodbye", "ended"
]
"""What the bot says in a member's own group (the group task): ``welcome`` (counting its
members), ``ready`` (enough members: the owner may ask for the talk); why it leaves at
once (``not_in_task``, ``not_open``, ``done``, ``has_group``, ``taken``); ``goodbye``
(talk given, task done) and ``ended`` (the cohort is over)."""


@dataclass(frozen=True, slots=True)
class GroupTaskNotice:
    """Posted in a member's own group; ``count`` the people in it, ``needed`` how many
    the task asks for."""

    note: GroupTaskNote
    locale: str
    count: int = 0
    needed: int = 0


ReminderSegment = Literal["ahead", "on_track", "behind", "inactive"]
"""Where a member stands in the ladder: every open task done (``ahead``), one open
(``on_track``), more (``behind``), or nothing done for two days (``inactive``)."""


@dataclass(frozen=True, slots=True)
class Reminder:
    """The day's one private reminder. ``task_title``: the oldest open task (None when
    ``ahead``); ``next_unlock``: when the next task opens (``ahead``)."""

    segment: ReminderSegment
    task_title: str | None
    open_tasks: int
    next_unlock: datetime | None
    timezone: str
    locale: str
    wording: str | None = None
    """The script's own text for the segment (the member's arm of it), with ``{title}``,
    ``{count}`` and ``{when}`` to fill in; None: the built-in wording."""


Outgoing = (
    ScriptPost
    | EnvelopeOffer
    | EnvelopeSummary
    | TasksUnlocked
    | RewardNotice
    | AdmissionsOpen
    | CohortPaused
    | AdmissionNotice
    | ProofForReview
    | ProofDecided
    | RewardOwed
    | BudgetUsedUp
    | GroupTaskNotice
    | Reminder
)


Right = Literal[
    "admin",
    "can_invite_users",
    "can_pin_messages",
    "can_delete_messages",
    "can_restrict_members",
    "see_messages",
]
"""A right the bot may need in a group. Which ones each kind of group needs is listed
once, here, below; the bot says how each one shows in Telegram."""


WARMUP_RIGHTS: tuple[Right, ...] = (
    "admin",
    "can_invite_users",
    "can_pin_messages",
    "can_delete_messages",
)
"""What the bot needs in a warm-up group: admin (to see every "1" and get ``chat_member``
updates), invite links (to attribute joins), pins (talks), deletes (slow mode)."""


TASK_GROUP_RIGHTS: tuple[Right, ...] = ("admin", "can_invite_users")
"""What the bot needs in a task group: admin (to get ``chat_member`` updates and join
requests) and invite links (the join-request link that admits those who replied)."""

PERSONAL_TASK_GROUP_RIGHTS: tuple[Right, ...] = (*TASK_GROUP_RIGHTS, "can_restrict_members")
"""A task group of a cohort that admits by personal links: also the right to take out
whoever came in by a link passed on to them (a ban lifted at once)."""


class DeliveryError(Exception):
    """A send failed. ``definite``: Telegram said no, so nothing was posted; otherwise the
    outcome is unknown (timeout, connection lost) and a retry could duplicate the post."""

    def __init__(self, reason: str, *, definite: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.definite = definite


class BotApiUnreached(DeliveryError):
    """The Bot API could not be reached at all (no connection was made: no network, no
    name resolution, a refused connection), so the request never left and nothing was
    posted: unlike an unknown outcome, sending again later is safe."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, definite=True)


class ChatUnavailable(DeliveryError):
    """The bot was removed from the chat or lost the rights it needs there.
    ``cause``: ``removed``, ``demoted`` or ``cannot_post`` (Telegram refused otherwise)."""

    def __init__(
        self, reason: str, cause: Literal["removed", "demoted", "cannot_post"] = "cannot_post"
    ) -> None:
        super().__init__(reason, definite=True)
        self.cause: Literal["removed", "demoted", "cannot_post"] = cause


class Messenger(Protocol):
    async def send(self, chat_id: int, message: Outgoing, *, pin: bool = False) -> int:
        """Post into a chat; returns the message id. Raises DeliveryError."""
        ...

    async def edit(self, chat_id: int, message_id: int, message: Outgoing) -> None: ...

    async def set_slow_mode(self, chat_id: int, seconds: int) -> None: ...

    async def unpin(self, chat_id: int, message_id: int) -> None: ...

    async def notify(self, member: MemberRef, message: Outgoing) -> bool:
        """A private message; False when the member cannot be reached (never pressed
        Start, or blocked the bot)."""
        ...

    async def react(self, chat_id: int, message_id: int) -> None:
        """Acknowledge a member's message with a reaction (a "1" gets no reply)."""
        ...

    async def missing_rights(self, chat_id: int, needs: Sequence[Right]) -> list[Right]:
        """Which of ``needs`` the bot lacks in the chat (all of them if it is not there)."""
        ...

    async def create_invite_link(
        self,
        chat_id: int,
        name: str,
        *,
        join_request: bool = False,
        member_limit: int | None = None,
        expire_at: datetime | None = None,
    ) -> str:
        """A new invite link into the chat (Telegram allows a member limit or join
        requests, not both); ``expire_at``: when Telegram stops accepting it."""
        ...

    async def revoke_invite_link(self, chat_id: int, link: str) -> None:
        """Make a link the bot created unusable. Raises DeliveryError."""
        ...

    async def remove_member(self, chat_id: int, telegram_id: int) -> bool:
        """Take someone out of the group without banning them for good (they may come
        back by a link of their own); False if Telegram refused."""
        ...

    async def answer_join_request(self, chat_id: int, telegram_id: int, *, approve: bool) -> bool:
        """Approve or decline a pending join request; False if there was none any more."""
        ...

    async def member_count(self, chat_id: int) -> int:
        """How many are in the group, the bot included. Raises ``ChatUnavailable`` when
        the bot is not there any more, ``DeliveryError`` otherwise."""
        ...

    async def leave(self, chat_id: int) -> None:
        """The bot leaves the group (nothing happens if it is not there)."""
        ...
