"""From the domain's outgoing messages to what Telegram shows: text, buttons, media.

All words come from the locale catalogues (``bot/telegram/locales``); a script's own texts
(posts, talks, the pitch, task titles) are already in the cohort's language and pass
through untouched. Messages are plain text: no parse mode, so a member's name can never
break the markup.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.telegram.i18n import Catalog
from funnels.cohorts.pauses import PauseReason
from funnels.kernel.messaging import (
    AdmissionNotice,
    AdmissionsOpen,
    Attachment,
    BudgetUsedUp,
    CohortPaused,
    EnvelopeOffer,
    EnvelopeSummary,
    GroupTaskNotice,
    Outgoing,
    ProofDecided,
    ProofForReview,
    Reminder,
    RewardNotice,
    RewardOwed,
    ScriptPost,
    TasksUnlocked,
)
from funnels.ladder.goals import LeafProgress


class Grab(CallbackData, prefix="grab"):
    """The envelope's button: ``grab:<envelope id>``."""

    envelope: int


class PickLocale(CallbackData, prefix="lang"):
    locale: str


class TaskHow(CallbackData, prefix="how"):
    """A how-to button under ``/tasks``: ``how:<cohort id>:<ladder index>`` (a task id
    can be longer than Telegram's 64 bytes of callback data; an index cannot)."""

    cohort: int
    task: int


class ProofFor(CallbackData, prefix="pfor"):
    """Which proof task a screenshot is for, when several are open."""

    cohort: int
    task: int


class ProofVerdict(CallbackData, prefix="pv"):
    """The leader's buttons under a screenshot: ``ok`` approves, ``no`` shows the
    reasons, ``back`` shows Approve / Reject again, a reason code rejects with it."""

    proof: int
    verdict: str


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    keyboard: InlineKeyboardMarkup | None = None
    media: Attachment | None = None


class Renderer:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def __call__(self, message: Outgoing) -> Rendered:  # long: one case per message type
        c = self.catalog
        match message:
            case ScriptPost(text=text, media=media):
                return Rendered(text, None, media)
            case EnvelopeOffer():
                loc = message.locale
                body = c.text(
                    loc,
                    "envelope.offer",
                    total=c.money(loc, message.total_minor, message.currency),
                    shares=message.shares,
                    expires=c.when(loc, message.expires_at, message.timezone),
                )
                if message.caption:
                    body = f"{message.caption}\n{body}"
                button = InlineKeyboardButton(
                    text=c.text(loc, "envelope.button"),
                    callback_data=Grab(envelope=message.envelope_id).pack(),
                )
                return Rendered(body, InlineKeyboardMarkup(inline_keyboard=[[button]]))
            case EnvelopeSummary():
                loc = message.locale
                if message.claimed == 0:
                    return Rendered(c.text(loc, "envelope.summary_nobody"))
                return Rendered(
                    c.text(
                        loc,
                        "envelope.summary",
                        claimed=message.claimed,
                        shares=message.shares,
                        claimed_total=c.money(loc, message.claimed_minor, message.currency),
                        total=c.money(loc, message.total_minor, message.currency),
                        name=message.luckiest_name or "?",
                        luckiest=c.money(loc, message.luckiest_minor, message.currency),
                    )
                )
            case AdmissionsOpen():
                loc = message.locale
                text = c.text(
                    loc,
                    "admissions.open",
                    count=message.new_responders,
                    total=message.total_responders,
                )
                if message.join_link is None:
                    return Rendered(text)
                button = InlineKeyboardButton(
                    text=c.text(loc, "admissions.button"), url=message.join_link
                )
                return Rendered(text, InlineKeyboardMarkup(inline_keyboard=[[button]]))
            case TasksUnlocked():
                return Rendered(self._tasks_unlocked(message))
            case RewardNotice():
                loc = message.locale
                text = c.text(
                    loc,
                    "reward.notice",
                    title=message.title,
                    amount=c.money(loc, message.amount_minor, message.currency),
                )
                if message.promoted_to:
                    role = c.text(loc, f"role.{message.promoted_to}")
                    text += "\n" + c.text(loc, "reward.promoted", role=role)
                return Rendered(text)
            case RewardOwed():
                loc = message.locale
                amount = c.money(loc, message.amount_minor, message.currency)
                return Rendered(c.text(loc, "reward.owed", title=message.title, amount=amount))
            case BudgetUsedUp():
                loc = message.locale
                amount = c.money(loc, message.owed_minor, message.currency)
                return Rendered(
                    c.text(
                        loc, "budget.used_up", code=message.code, owed=message.owed, amount=amount
                    )
                )
            case CohortPaused():
                loc = message.locale
                reason = self.pause_reason(loc, PauseReason(message.reason, message.missing))
                return Rendered(
                    c.text(loc, "cohort.paused_notice", code=message.code, reason=reason)
                )
            case AdmissionNotice():
                loc = message.locale
                if message.outcome == "approved":
                    return Rendered(c.text(loc, "admission.approved", code=message.code))
                if message.outcome == "closed":
                    return Rendered(c.text(loc, "admission.closed"))
                if message.outcome in ("not_yours", "passed_on"):
                    return Rendered(c.text(loc, f"admission.{message.outcome}", code=message.code))
                return Rendered(c.text(loc, "admission.refused"))
            case ProofForReview():
                loc = message.locale
                text = c.text(
                    loc,
                    "proof.review",
                    name=message.member_name,
                    title=message.task_title,
                    code=message.cohort_code,
                )
                return Rendered(text, self.proof_keyboard(loc, message.proof_id), message.photo)
            case ProofDecided():
                loc = message.locale
                if message.approved:
                    return Rendered(c.text(loc, "proof.approved", title=message.task_title))
                reason = c.text(loc, f"proof.reason.{message.reason or 'other'}")
                return Rendered(
                    c.text(loc, "proof.rejected", title=message.task_title, reason=reason)
                )
            case Reminder():
                loc = message.locale
                when = (
                    c.when(loc, message.next_unlock, message.timezone)
                    if message.next_unlock
                    else ""
                )
                fields = {"title": message.task_title or "", "count": message.open_tasks}
                if message.wording is not None:  # checked by the script's loader
                    return Rendered(message.wording.format(**fields, when=when))
                return Rendered(c.text(loc, f"reminder.{message.segment}", **fields, when=when))
            case GroupTaskNotice():
                return Rendered(
                    c.text(
                        message.locale,
                        f"group_task.{message.note}",
                        count=message.count,
                        needed=message.needed,
                    )
                )
        raise TypeError(f"no rendering for {type(message).__name__}")

    def proof_keyboard(
        self, locale: str, proof_id: int, *, reasons: tuple[str, ...] = ()
    ) -> InlineKeyboardMarkup:
        """Approve / Reject under a screenshot; with ``reasons``, one button per reason
        and Back instead."""

        def button(key: str, verdict: str) -> InlineKeyboardButton:
            data = ProofVerdict(proof=proof_id, verdict=verdict).pack()
            return InlineKeyboardButton(text=self.catalog.text(locale, key), callback_data=data)

        if reasons:
            rows = [[button(f"proof.reason.{r}", r)] for r in reasons]
            return InlineKeyboardMarkup(inline_keyboard=[*rows, [button("proof.back", "back")]])
        return InlineKeyboardMarkup(
            inline_keyboard=[[button("proof.approve", "ok"), button("proof.reject", "no")]]
        )

    def _tasks_unlocked(self, message: TasksUnlocked) -> str:
        """The task group's message of the day: a header, then each task's title and
        first line of its how-to, its reward and, for a task that opens later that day,
        when."""
        c, loc = self.catalog, message.locale
        lines = [c.text(loc, "tasks_day.header")]
        for task in message.tasks:
            lines.append(c.text(loc, "tasks_day.line", title=task.title, how=task.how))
            if task.reward_minor is not None:
                reward = c.money(loc, task.reward_minor, message.currency)
                lines.append("   " + c.text(loc, "tasks_day.reward", reward=reward))
            if task.later_at is not None:
                when = c.when(loc, task.later_at, message.timezone)
                lines.append("   " + c.text(loc, "tasks_day.later", when=when))
        lines.append(c.text(loc, "tasks_day.footer"))
        if message.rewarded:
            lines += ["", c.text(loc, "tasks_day.rewarded")]
            lines += [
                c.text(loc, "tasks_day.rewarded_line", name=name, title=title)
                for name, title in message.rewarded
            ]
            if message.rewarded_more:
                lines.append(c.text(loc, "tasks_day.rewarded_more", count=message.rewarded_more))
            lines.append(c.text(loc, "tasks_day.rewarded_footer"))
        return "\n".join(lines)

    def rights(self, locale: str, rights: tuple[str, ...] | list[str]) -> str:
        return ", ".join(self.catalog.text(locale, f"right.{r}") for r in rights)

    def pause_reason(self, locale: str, reason: PauseReason) -> str:
        """Why a cohort is paused, in ``locale``; a stored free-text note as it is."""
        if reason.code is None:
            return reason.note or ""
        if reason.code == "demoted":
            if not reason.missing:  # Telegram refused a post for rights it did not name
                return self.catalog.text(locale, "reason.lost_rights")
            return self.catalog.text(
                locale, "reason.demoted", missing=self.rights(locale, reason.missing)
            )
        return self.catalog.text(locale, f"reason.{reason.code}")

    def task_progress(self, locale: str, leaves: list[LeafProgress]) -> str:
        """A task's progress for ``/tasks``: ``fans 3 of 10``, ``sales $12.00 of $70.00``.

        Sums are money in the cohort's currency; counts are plain numbers. Known event
        types get a word from the catalogue; any other shows its script label. When two
        leaves would read alike (the same event, different ``where`` filters), each
        keeps its filter so the member can tell them apart.
        """
        c = self.catalog
        labels = [self._leaf_label(locale, leaf) for leaf in leaves]
        parts = []
        for leaf, label in zip(leaves, labels, strict=True):
            where = leaf.label.removeprefix(leaf.event).strip()  # "[template=day3_post]"
            if where and labels.count(label) > 1 and label != leaf.label:
                label = f"{label} {where}"
            if leaf.currency is not None:
                done = c.money(locale, leaf.value, leaf.currency)
                target = c.money(locale, leaf.target, leaf.currency)
            else:
                done, target = str(leaf.value), str(leaf.target)
            parts.append(c.text(locale, "tasks.progress", label=label, done=done, target=target))
        return ", ".join(parts)

    def _leaf_label(self, locale: str, leaf: LeafProgress) -> str:
        base = "goal." + leaf.event.replace(".", "_")
        for key in (f"{base}.{leaf.measure}", base):
            if self.catalog.has(key):
                return self.catalog.text(locale, key)
        return leaf.label
