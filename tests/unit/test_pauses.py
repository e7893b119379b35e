"""Unit tests for funnels.cohorts.pauses: the stored pause reason, written and read back."""

from __future__ import annotations

import pytest

from funnels.cohorts.pauses import PauseReason


@pytest.mark.parametrize(
    ("reason", "stored"),
    [
        (PauseReason("paused_by_leader"), "paused_by_leader"),
        (PauseReason("removed"), "removed"),
        (PauseReason("cannot_post"), "cannot_post"),
        (PauseReason("demoted"), "demoted"),
        (
            PauseReason("demoted", ("can_pin_messages", "can_delete_messages")),
            "demoted: can_pin_messages, can_delete_messages",
        ),
    ],
)
def test_a_coded_reason_is_stored_as_its_code_and_read_back(
    reason: PauseReason, stored: str
) -> None:
    assert reason.stored() == stored
    assert PauseReason.parse(stored) == reason


def test_the_words_stored_for_a_leaders_pause_before_the_codes_still_read_as_the_code() -> None:
    assert PauseReason.parse("paused by the leader") == PauseReason("paused_by_leader")


@pytest.mark.parametrize(
    "stored",
    [
        "ops",
        "Forbidden: bot was kicked from the supergroup chat",
        "the bot was removed from the group",
        "demoted: pin, delete",  # rights that are not ours
        "removed: admin",  # only demoted names rights
        "demoted:",
    ],
)
def test_anything_else_is_kept_as_a_note(stored: str) -> None:
    reason = PauseReason.parse(stored)
    assert reason == PauseReason(None, note=stored)
    assert reason.stored() == stored
