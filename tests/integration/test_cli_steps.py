"""``funnelbot step list|retry|skip`` on real SQLite and PostgreSQL: what ops see, what
changes, and one clear ``error:`` line (exit 1) for every bad input."""

from __future__ import annotations

import pytest

from tests.support.cli import error_line, funnelbot
from tests.support.funnel_kit import Kit


async def test_list_shows_the_steps_that_need_a_decision(cli: Kit) -> None:
    await cli.talk_in_doubt(code="SPRING")

    result = await funnelbot("step", "list", "spring")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "d1_talk\tunknown\tdue 2026-03-02 10:00 +08\ttimed out",
        "d1_talk.p1\theld\tdue 2026-03-02 10:02 +08\twaiting for a decision on d1_talk",
    ]


async def test_list_says_so_when_nothing_needs_a_decision(cli: Kit) -> None:
    await cli.start(code="CALM")

    result = await funnelbot("step", "list", "CALM")

    assert (result.exit_code, result.stdout) == (0, "cohort CALM: no step needs a decision\n")


async def test_retry_puts_the_step_back_and_lets_the_talk_go_on(cli: Kit) -> None:
    cohort = await cli.talk_in_doubt(code="SPRING")

    result = await funnelbot("step", "retry", "SPRING", "d1_talk")

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "step d1_talk of cohort SPRING goes out again at the next tick; "
        "the rest of its talk goes on: d1_talk.p1\n"
    )
    first = await cli.step(cohort.id, "d1_talk")
    assert first.status == "pending"
    assert first.outcome is not None
    assert str(first.outcome["retried_by"]).endswith(" via the command line")
    assert (await cli.step(cohort.id, "d1_talk.p1")).status == "pending"


async def test_skip_moves_past_the_step(cli: Kit) -> None:
    cohort = await cli.talk_in_doubt(code="SPRING")

    result = await funnelbot("step", "skip", "SPRING", "d1_talk")

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "step d1_talk of cohort SPRING skipped; the rest of its talk goes on: d1_talk.p1\n"
    )
    skipped = await cli.step(cohort.id, "d1_talk")
    assert skipped.status == "skipped"
    assert skipped.error is not None and skipped.error.startswith("skipped by ")
    listed = await funnelbot("step", "list", "SPRING")
    assert listed.stdout == "cohort SPRING: no step needs a decision\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["retry", "NOPE", "d1_talk"],
            "error: there is no cohort NOPE (the code is in /status and in the answer to /launch)",
        ),
        (["list", "NOPE"], "error: there is no cohort NOPE"),
        (
            ["skip", "SPRING", "d9_nothing"],
            "error: cohort SPRING has no step 'd9_nothing' (`funnelbot step list SPRING` "
            "shows the steps that need a decision, /status the next one)",
        ),
        (["retry", "SPRING", "d1 talk"], "error: cohort SPRING has no step 'd1 talk'"),
        (
            ["retry", "SPRING", "d1_welcome"],
            "error: step d1_welcome is done: only a step whose outcome is unknown, that "
            "failed or that was skipped can be retried",
        ),
        (
            ["skip", "SPRING", "d1_envelope"],
            "error: step d1_envelope is pending: only a step whose outcome is unknown or "
            "that failed can be skipped",
        ),
        (
            ["skip", "SPRING", "d1_talk.p1"],
            "error: step d1_talk.p1 waits for a decision on d1_talk: retry or skip d1_talk first",
        ),
    ],
)
async def test_bad_input_gets_one_error_line_and_changes_nothing(
    cli: Kit, args: list[str], message: str
) -> None:
    cohort = await cli.talk_in_doubt(code="SPRING")
    before = await cli.statuses(cohort.id)

    result = await funnelbot("step", *args)

    assert error_line(result).startswith(message)
    assert await cli.statuses(cohort.id) == before


async def test_missing_arguments_are_a_usage_error(cli: Kit) -> None:
    result = await funnelbot("step", "retry", "SPRING")

    assert result.exit_code == 2
    assert "Missing argument 'STEP'" in result.stderr
