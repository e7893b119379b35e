"""Unit tests for funnels.scripts.loader and funnels.scripts.checks: every problem is
reported with its line, its field and a plain message; warnings do not stop a load."""

from __future__ import annotations

import hashlib

import pytest

from funnels.scripts.checks import check, planned_spend
from funnels.scripts.loader import Problem, ScriptError, load_script_text
from funnels.scripts.model import Script
from tests.support.scripts import SPRING, edit, line_of, only_error, problems_of

VALID = SPRING


# ---------------------------------------------------------------- valid scripts


def test_valid_script_loads_with_hash_of_raw_bytes_and_no_warnings() -> None:
    loaded = load_script_text(VALID)

    assert isinstance(loaded.script, Script)
    assert loaded.script.id == "spring_line"
    assert loaded.source == "<string>"
    assert loaded.content_hash == hashlib.sha256(VALID.encode("utf-8")).hexdigest()
    assert loaded.warnings == []


def test_hash_changes_with_any_byte() -> None:
    assert load_script_text(VALID).content_hash != load_script_text(VALID + "\n").content_hash


def test_source_name_is_used_in_problems() -> None:
    text = edit("version: 1", "version: 0")
    with pytest.raises(ScriptError) as caught:
        load_script_text(text, source="lines/spring.yaml")
    assert str(caught.value.problems[0]).startswith("lines/spring.yaml:2: version: ")


# ---------------------------------------------------------------- model errors


def test_unknown_key_reports_its_line_and_the_allowed_keys() -> None:
    text = edit('      post: {text: "Welcome', '      bogus: 1\n      post: {text: "Welcome')

    problem = only_error(text)

    assert problem.line == line_of(text, "bogus: 1")
    assert problem.field == "warmup.steps[d1_welcome].bogus"
    assert problem.message.startswith("unknown key 'bogus'; allowed here: id, at, late, grace")
    assert "https://" not in problem.message
    assert str(problem) == f"<string>:{problem.line}: {problem.field}: {problem.message}"


def test_misspelt_key_gets_a_suggestion() -> None:
    text = edit('total: "600.00"', 'totl: "600.00"')
    messages = [p.message for p in problems_of(text)]
    assert (
        "unknown key 'totl' (did you mean 'total'?); allowed here: currency, total, "
        "reward_seats" in messages
    )


def test_missing_field_points_at_the_parent_mapping() -> None:
    text = edit('{total: "20.00", shares: 30, expires_in: 10m}', "{shares: 30, expires_in: 10m}")

    problem = only_error(text)

    assert problem.line == line_of(text, "red_envelope:")
    assert problem.field == "warmup.steps[d1_envelope_noon].red_envelope.total"
    assert problem.message == "missing required field 'total'"


def test_missing_field_of_a_block_mapping_points_at_its_key() -> None:
    text = edit("        speaker: Ana\n", "")
    problem = only_error(text)
    assert problem.line == line_of(text, "talk:")
    assert problem.field == "warmup.steps[d2_talk].talk.speaker"


def test_bad_timezone() -> None:
    text = edit("timezone: Europe/Madrid", "timezone: Mars/Olympus")

    problem = only_error(text)

    assert (problem.line, problem.field) == (5, "timezone")
    assert "'Mars/Olympus' is not an IANA time zone" in problem.message


def test_unquoted_amount_and_bad_time_say_how_to_write_them() -> None:
    text = edit('amount: "5.00"', "amount: 5.00")
    text = edit('time: "12:00"', "time: 25:00", text)

    problems = problems_of(text)

    assert [(p.field, p.line) for p in problems] == [
        ("warmup.steps[d1_envelope_noon].at.time", line_of(text, "25:00")),
        ("tasks.ladder[invite_fans].reward.amount", line_of(text, "amount: 5.00")),
    ]
    assert 'like "09:00"' in problems[0].message
    assert 'quoted decimals like "20.00"' in problems[1].message


def test_step_with_no_action_is_reported_at_the_step() -> None:
    text = edit('      post: {text: "Welcome, everyone. This week we meet every evening."}\n', "")
    problem = only_error(text)
    assert problem.line == line_of(text, "- id: d1_welcome")
    assert problem.field == "warmup.steps[d1_welcome]"
    assert problem.message.startswith("a step needs exactly one of post, talk, red_envelope")


def test_union_alternatives_become_one_problem() -> None:
    text = edit("{event: fan.locked, count: 10}", "{event: fan.locked, count: 10, where: {k: [1]}}")
    problem = only_error(text)
    assert problem.field == "tasks.ladder[invite_fans].goal.where.k"
    assert problem.message == "expected text, a whole number or true/false, got a list"


def test_key_yaml_does_not_read_as_text() -> None:
    text = VALID + "yes: 1\n"
    problem = only_error(text)
    assert problem.line == line_of(text, "yes: 1")
    assert "keys must be text" in problem.message


def test_many_problems_are_all_reported_sorted_by_line() -> None:
    text = edit("version: 1", "version: zero")
    text = edit("      talk:\n", "      bogus: 2\n      talk:\n", text)
    text = edit("unlock: {day: 18}", "unlock: {day: 0}", text)
    text = edit("timezone: Europe/Madrid", "timezone: Nowhere/City", text)

    problems = problems_of(text)

    assert [p.line for p in problems] == sorted(p.line or 0 for p in problems)
    assert [p.field for p in problems] == [
        "version",
        "timezone",
        "warmup.steps[d2_talk].bogus",
        "tasks.ladder[first_order].unlock.day",
    ]
    assert all(p.severity == "error" for p in problems)
    assert "must be at least 1" in problems[3].message


def test_cross_field_checks_wait_for_a_valid_model() -> None:
    text = edit("at: {day: 2,", "at: {day: 9,")  # outside the warm-up: a cross-field check
    text = edit("version: 1", "version: 0", text)  # a model error
    assert [p.field for p in problems_of(text)] == ["version"]


# ---------------------------------------------------------------- YAML errors


def test_bad_yaml_is_one_problem_with_its_line() -> None:
    text = edit("  days: 7\n", "  days: [7\n")
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0].line is not None and problems[0].line >= line_of(text, "days: [7")
    assert problems[0].message.startswith("invalid YAML: ")


def test_yaml_scanner_error_line() -> None:
    text = edit("version: 1", "version: 1\n\tlocale: en")
    problem = problems_of(text)[0]
    assert problem.line == 3
    assert "invalid YAML" in problem.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "the script is empty"), ("- id: x\n", "must be a mapping"), ("just text\n", "mapping")],
)
def test_document_that_is_not_a_mapping(text: str, expected: str) -> None:
    problem = only_error(text)
    assert expected in problem.message
    assert problem.line == 1


def test_key_written_twice_is_an_error() -> None:
    text = edit("locale: en", "locale: en\nlocale: es")
    problem = only_error(text)
    assert problem.line == 4
    assert problem.field == "locale"
    assert "written twice" in problem.message and "line 3" in problem.message


def test_python_tags_are_refused() -> None:
    problem = only_error(edit("title: Spring line", "title: !!python/object:os.system x"))
    assert problem.line == 4
    assert problem.message.startswith("invalid YAML")


# ---------------------------------------------------------------- cross-field checks


def test_duplicate_ids_are_reported_at_the_second_use_naming_the_first() -> None:
    text = edit("- id: d2_talk", "- id: d1_welcome")

    problem = only_error(text)

    assert problem.line == line_of(text, "- id: d1_welcome", nth=2)
    assert problem.field == "warmup.steps[2].id"
    assert "duplicate id 'd1_welcome'" in problem.message
    assert "warmup.steps[0]" in problem.message
    assert f"(see line {line_of(text, '- id: d1_welcome')})" in problem.message


def test_ids_are_unique_across_steps_and_tasks() -> None:
    text = edit("- id: first_order", "- id: d2_talk")
    problem = only_error(text)
    assert problem.field == "tasks.ladder[d2_talk].id"
    assert "warmup.steps[2]" in problem.message


def test_step_outside_the_warmup_days() -> None:
    text = edit("at: {day: 2,", "at: {day: 9,")

    problem = only_error(text)

    assert problem.line == line_of(text, "day: 9")
    assert problem.field == "warmup.steps[d2_talk].at.day"
    assert "day 9 is after the warm-up, which has 7 days" in problem.message


def test_task_outside_the_task_days() -> None:
    text = edit("unlock: {day: 18}", "unlock: {day: 22}")
    problem = only_error(text)
    assert problem.field == "tasks.ladder[first_order].unlock.day"
    assert problem.line == line_of(text, "day: 22")
    assert "use a day from 1 to 21" in problem.message


def test_budget_exceeded_says_the_figures_and_the_fix() -> None:
    text = edit('amount: "5.00"', 'amount: "7.00"')  # 20.00 + 7.00 x 100 = 720.00 > 600.00

    problem = only_error(text)

    assert (problem.line, problem.field) == (7, "budget.total")
    assert "planned spend 720.00 EUR" in problem.message
    assert "7.00 EUR × 100 members at capacity" in problem.message
    assert "budget 600.00 EUR" in problem.message
    assert "raise budget.total to at least 720.00 EUR" in problem.message
    assert "set budget.reward_seats to at most 82" in problem.message


def test_reward_seats_bring_the_plan_within_budget() -> None:
    text = edit('amount: "5.00"', 'amount: "7.00"')
    text = edit('total: "600.00"}', 'total: "600.00", reward_seats: 82}', text)
    assert load_script_text(text).script.budget.reward_seats == 82


def test_envelope_with_too_many_shares_for_its_total() -> None:
    text = edit('{total: "20.00", shares: 30,', '{total: "0.20", shares: 30,')

    problem = only_error(text)

    assert problem.field == "warmup.steps[d1_envelope_noon].red_envelope.shares"
    assert problem.line == line_of(text, "red_envelope:")
    assert "30 shares of at least 0.01 need 0.30 EUR" in problem.message


def test_amount_finer_than_the_minor_unit() -> None:
    problem = only_error(edit('amount: "5.00"', 'amount: "5.001"'))
    assert problem.field == "tasks.ladder[invite_fans].reward.amount"
    assert "more than 2 decimal places for EUR" in problem.message


def test_amounts_follow_the_currency_minor_unit() -> None:
    text = edit('{currency: EUR, total: "600.00"}', '{currency: JPY, total: "60000"}')
    # The default min_share "0.01" is no amount of yen: the author must write one.
    problem = only_error(text)
    assert problem.field == "warmup.steps[d1_envelope_noon].red_envelope"
    assert 'write min_share: "1"' in problem.message

    text = edit("shares: 30,", 'shares: 20, min_share: "1",', text)
    assert load_script_text(text).script.budget.currency == "JPY"  # "20.00" is whole yen

    problem = only_error(edit('total: "20.00"', 'total: "20.50"', text))
    assert problem.field == "warmup.steps[d1_envelope_noon].red_envelope.total"
    assert "more than 0 decimal places for JPY" in problem.message


@pytest.mark.parametrize(
    ("currency", "message"),
    [
        ("ABC", "'ABC' is not an ISO 4217 currency code such as CNY, EUR or MXN"),
        # Lower case is refused, not upper-cased: the code is stored as written.
        ("usd", "'usd' is not an ISO 4217 currency code; write it in capitals: USD"),
        (
            "XTS",
            "'XTS' is an ISO 4217 code with no minor unit (a test code, a metal or a unit "
            "of account), not a currency anyone can be paid in; use one such as CNY, EUR or MXN",
        ),
        ("XXX", "'XXX' is an ISO 4217 code with no minor unit"),
        ("HRK", "'HRK' is not an ISO 4217 currency code such as CNY, EUR or MXN"),
        ("'123'", "'123' is not an ISO 4217 currency code such as CNY, EUR or MXN"),
    ],
)
def test_a_budget_currency_must_be_an_iso_4217_code(currency: str, message: str) -> None:
    text = edit("{currency: EUR,", f"{{currency: {currency},")
    problem = only_error(text)
    assert problem.field == "budget.currency"
    assert problem.line == line_of(text, "budget:")
    assert problem.message.startswith(message)


@pytest.mark.parametrize(
    ("currency", "fine", "too_fine", "places"),
    [("IQD", "5.001", "5.0001", 3), ("RSD", "5.01", "5.001", 2), ("CLF", "5.0001", "5.00001", 4)],
)
def test_amounts_follow_the_iso_minor_unit(
    currency: str, fine: str, too_fine: str, places: int
) -> None:
    text = edit("{currency: EUR,", f"{{currency: {currency},")
    assert load_script_text(edit('amount: "5.00"', f'amount: "{fine}"', text))
    problem = only_error(edit('amount: "5.00"', f'amount: "{too_fine}"', text))
    assert problem.field == "tasks.ladder[invite_fans].reward.amount"
    assert f"more than {places} decimal places for {currency}" in problem.message


def test_no_pitch_is_an_error() -> None:
    text = edit(
        '      pitch: {text: "Want to open your own shop? Reply 1.", reply: {window: 24h}}',
        '      post: {text: "See you tomorrow."}',
    )
    problem = only_error(text)
    assert problem.field == "warmup.steps"
    assert "no pitch step" in problem.message


def test_a_second_pitch_is_an_error() -> None:
    text = VALID.replace(
        "tasks:\n",
        "    - id: d7_pitch_again\n"
        '      at: {day: 7, time: "21:00"}\n'
        '      pitch: {text: "Last call: reply 1."}\n'
        "tasks:\n",
        1,
    )
    problem = only_error(text)
    assert problem.field == "warmup.steps[d7_pitch_again].pitch"
    assert "exactly one pitch" in problem.message and "'d7_pitch'" in problem.message


def test_pitch_window_must_close_before_the_task_stage_ends() -> None:
    problem = only_error(edit("window: 24h", "window: 30d"))
    assert problem.field == "warmup.steps[d7_pitch].pitch.reply.window"
    assert "closes on task day 30" in problem.message


# ---------------------------------------------------------------- warnings


def test_repeated_text_and_quiet_hours_are_warnings() -> None:
    text = edit(
        'text: "First, know your ten best customers."',
        'text: "Welcome, everyone.  This week we meet every evening."',
    )
    text = edit('time: "09:00"', 'time: "23:30"', text)

    loaded = load_script_text(text)

    assert [(w.field, w.line, w.severity) for w in loaded.warnings] == [
        ("warmup.steps[d1_welcome].at.time", line_of(text, "23:30"), "warning"),
        ("warmup.steps[d2_talk].talk.parts[1].text", line_of(text, "Welcome", nth=2), "warning"),
    ]
    quiet, repeated = loaded.warnings
    assert "quiet hours (22:00–08:00)" in quiet.message
    assert "the same text as the post 'd1_welcome'" in repeated.message
    assert "repeats itself" in repeated.message
    assert str(quiet).startswith(f"warning: <string>:{quiet.line}: warmup.steps[d1_welcome]")


def test_no_quiet_hours_no_warning() -> None:
    text = edit('time: "09:00"', 'time: "23:30"')
    text = edit("capacity: 100", "capacity: 100\nquiet_hours: null", text)
    assert load_script_text(text).warnings == []


def test_talk_running_into_the_next_step_is_a_warning() -> None:
    text = edit("- after: 2m", "- after: 45m")
    text = edit('at: {day: 7, time: "20:00"}', 'at: {day: 2, time: "20:30"}', text)

    (warning,) = load_script_text(text).warnings

    assert warning.field == "warmup.steps[d2_talk].talk.parts"
    assert "runs until 20:45" in warning.message and "'d7_pitch' at 20:30" in warning.message


def test_more_than_six_steps_a_day_is_a_warning() -> None:
    extra = "".join(
        f"    - id: d3_post_{n}\n"
        f'      at: {{day: 3, time: "1{n}:00"}}\n'
        f'      post: {{text: "Note number {n}"}}\n'
        for n in range(7)
    )
    text = VALID.replace("tasks:\n", extra + "tasks:\n", 1)

    (warning,) = load_script_text(text).warnings

    assert warning.field == "warmup.steps[d3_post_6].at.day"
    assert "day 3 has 7 steps" in warning.message


def test_unknown_goal_event_is_a_warning() -> None:
    text = edit(
        "{event: order.paid, count: 1}",
        "{any: [{event: order.paid, count: 1}, {event: order.payed, count: 1}]}",
    )
    (warning,) = load_script_text(text).warnings
    assert warning.field == "tasks.ladder[first_order].goal.any[1].event"
    assert "'order.payed' is not an event the platform is known to send" in warning.message


def test_warnings_travel_with_errors() -> None:
    text = edit('time: "09:00"', 'time: "23:30"')
    text = edit("at: {day: 2,", "at: {day: 9,", text)
    severities = [p.severity for p in problems_of(text)]
    assert severities == ["warning", "error"]


# ---------------------------------------------------------------- check() and spend


def test_check_uses_pydantic_style_locations() -> None:
    raw = load_script_text(VALID).script.model_dump(mode="json")
    raw["warmup"]["steps"][3]["at"]["day"] = 8
    found = check(Script.model_validate(raw))
    assert [(c.loc, c.severity) for c in found] == [(("warmup", "steps", 3, "at", "day"), "error")]


def test_planned_spend_in_minor_units() -> None:
    script = load_script_text(VALID).script
    assert planned_spend(script) == (2000, 500 * 100)
    assert planned_spend(script, capacity=40) == (2000, 500 * 40)

    seats = load_script_text(edit('total: "600.00"}', 'total: "600.00", reward_seats: 10}'))
    assert planned_spend(seats.script, capacity=40) == (2000, 500 * 10)


def test_problem_string_forms() -> None:
    assert (
        str(Problem("a.yaml", 3, "budget.total", "too small", "error"))
        == "a.yaml:3: budget.total: too small"
    )
    assert str(Problem("a.yaml", 3, "locale", "odd", "warning")) == "warning: a.yaml:3: locale: odd"
    assert str(Problem("a.yaml", None, "", "no such file", "error")) == "a.yaml: no such file"
