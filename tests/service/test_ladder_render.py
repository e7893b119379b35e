"""The ladder's messages as Telegram shows them: the task group's message of the day, the
leader's screenshot review and its buttons, the member's verdict; and the reading of
button data (a forged one parses to nothing, never to an error)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from bot.telegram.i18n import SUPPORTED, Catalog
from bot.telegram.render import ProofFor, ProofVerdict, Renderer, TaskHow
from bot.telegram.routers.filters import Button
from funnels.kernel.messaging import (
    Photo,
    ProofDecided,
    ProofForReview,
    Reminder,
    TasksUnlocked,
    UnlockedTask,
)
from funnels.ladder.proofs import REJECT_REASONS


@pytest.fixture(scope="module")
def render(catalog: Catalog) -> Renderer:
    return Renderer(catalog)


def test_the_days_message_lists_each_task_with_reward_and_later_time(render: Renderer) -> None:
    later = datetime(2026, 3, 4, 7, 0, tzinfo=UTC)  # 15:00 in Singapore
    message = TasksUnlocked(
        (
            UnlockedTask("invite_fans", "Invite a fan", "Share your link.", 50),
            UnlockedTask("share_story", "Share your story", "Post it.", None, later),
        ),
        "USD",
        "en",
        "Asia/Singapore",
    )
    rendered = render(message)
    assert rendered.keyboard is None and rendered.media is None
    assert rendered.text.splitlines() == [
        "📌 Today's new tasks:",
        "• Invite a fan: Share your link.",
        "   Reward: $0.50",
        "• Share your story: Post it.",
        "   Opens Mar 4, 3:00\u202fPM",  # CLDR puts a narrow no-break space
        "Send me /tasks in private chat for the details and your progress.",
    ]
    assert (
        "• Share your story：Post it."
        in render(TasksUnlocked(message.tasks, "CNY", "zh-CN", "Asia/Singapore")).text
    )


def test_the_days_message_names_rewards_members_could_not_be_told_of(
    render: Renderer,
) -> None:
    task = UnlockedTask("first_sale", "First sale", "Sell one.", 20)
    message = TasksUnlocked(
        (task,), "USD", "en", "UTC", (("Ana", "Invite a fan"), ("Bo", "Invite a fan")), 3
    )
    lines = render(message).text.splitlines()
    assert lines[-6:] == [
        "",
        "🎁 Rewards credited to members I couldn't message privately:",
        "• Ana: Invite a fan",
        "• Bo: Invite a fan",
        "…and 3 more",
        "Press Start in a private chat with me to get your messages and see /balance.",
    ]
    nobody = render(TasksUnlocked((task,), "USD", "en")).text
    assert "🎁" not in nobody


def test_the_leaders_review_is_the_photo_with_approve_and_reject(render: Renderer) -> None:
    review = ProofForReview(7, "Ann", "Share your story", "LAD1", Photo("file-1"), "es")
    rendered = render(review)
    assert rendered.media == Photo("file-1") and rendered.media.kind == "photo"
    assert rendered.text == "📷 Ann envió una captura para «Share your story» (cohorte LAD1)."
    assert rendered.keyboard is not None
    [[approve, reject]] = rendered.keyboard.inline_keyboard
    assert (approve.text, approve.callback_data) == ("✅ Aprobar", "pv:7:ok")
    assert (reject.text, reject.callback_data) == ("❌ Rechazar", "pv:7:no")
    reasons = render.proof_keyboard("en", 7, reasons=REJECT_REASONS).inline_keyboard
    assert [row[0].callback_data for row in reasons] == [
        "pv:7:unreadable",
        "pv:7:wrong_post",
        "pv:7:not_public",
        "pv:7:other",
        "pv:7:back",
    ]


@pytest.mark.parametrize("locale", SUPPORTED)
def test_the_member_hears_the_verdict_with_the_reason(render: Renderer, locale: str) -> None:
    c = render.catalog
    approved = render(ProofDecided("Post", True, None, locale)).text
    assert approved == c.text(locale, "proof.approved", title="Post")
    for reason in REJECT_REASONS:
        text = render(ProofDecided("Post", False, reason, locale)).text
        assert c.text(locale, f"proof.reason.{reason}") in text


def test_callback_answers_fit_telegrams_200_characters(catalog: Catalog) -> None:
    keys = [
        "tasks.button_stale",
        "tasks.task_done",
        "proof.unknown",
        "proof.not_yours",
        "proof.decided_approved",
        "proof.decided_rejected",
        "proof.done_approved",
        "proof.resend",
    ]
    for locale in SUPPORTED:
        longest_reason = max(
            (catalog.text(locale, f"proof.reason.{r}") for r in REJECT_REASONS), key=len
        )
        texts = [catalog.text(locale, k) for k in keys]
        texts.append(catalog.text(locale, "proof.done_rejected", reason=longest_reason))
        assert all(len(t) < 200 for t in texts), locale


def query(data: str | None) -> Any:
    return SimpleNamespace(data=data)


@pytest.mark.parametrize(
    ("kind", "data", "parsed"),
    [
        (TaskHow, "how:12:3", TaskHow(cohort=12, task=3)),
        (ProofFor, "pfor:12:4", ProofFor(cohort=12, task=4)),
        (ProofVerdict, "pv:9:not_public", ProofVerdict(proof=9, verdict="not_public")),
    ],
)
async def test_our_buttons_parse(kind: Any, data: str, parsed: Any) -> None:
    assert await Button(kind)(query(data)) == {"button": parsed}
    assert len(parsed.pack()) <= 64


@pytest.mark.parametrize("data", ["how:abc", "how:1", "how:1:2:3", "how:", "how:1:x"])
async def test_a_forged_button_parses_to_nothing(data: str) -> None:
    assert await Button(TaskHow)(query(data)) == {"button": None}


@pytest.mark.parametrize("data", [None, "grab:1", "lang:en", "howto:1:2", "pv:1:ok"])
async def test_other_buttons_are_not_ours(data: str | None) -> None:
    assert await Button(TaskHow)(query(data)) is False


def test_a_how_to_button_fits_for_any_cohort_and_ladder() -> None:
    assert len(TaskHow(cohort=2**63 - 1, task=499).pack()) <= 64
    assert len(ProofVerdict(proof=2**63 - 1, verdict="wrong_post").pack()) <= 64


def test_a_reminder_says_the_scripts_wording_filled_in_or_the_built_in_one(
    render: Renderer,
) -> None:
    opens = datetime(2026, 3, 6, 1, 0, tzinfo=UTC)
    built_in = render(Reminder("behind", "Invite three fans", 2, None, "Asia/Singapore", "es"))
    assert built_in.text == render.catalog.text(
        "es", "reminder.behind", title="Invite three fans", count=2, when=""
    )
    own = render(
        Reminder(
            "ahead",
            None,
            0,
            opens,
            "Asia/Singapore",
            "en",
            "All done {{so far}}: {count} open. Next {when}.",
        )
    ).text
    when = render.catalog.when("en", opens, "Asia/Singapore")
    assert own == f"All done {{so far}}: 0 open. Next {when}."
    titled = render(
        Reminder("on_track", "First sale", 1, None, "Asia/Singapore", "en", "{title} today")
    )
    assert titled.text == "First sale today"
