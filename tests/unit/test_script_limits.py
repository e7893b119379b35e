"""Unit tests for hostile or broken script text: every input gives a script or a
ScriptError with plain, located problems, and the work done before refusing is bounded
(alias bombs, huge numbers, deep nesting, control characters, bad tags...)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from funnels.scripts import loader as script_loader, yaml_reader
from funnels.scripts.loader import MAX_LISTED, LoadedScript, Problem, ScriptError, load_script_text
from funnels.scripts.yaml_reader import MAX_ALIASES, MAX_BYTES, MAX_DEPTH, MAX_VALUES
from tests.support.scripts import SPRING, edit, line_of, only_error, spring_line

VALID = SPRING


def alias_bomb(depth: int, width: int = 9) -> str:
    """ "Billion laughs": each level is a list of ``width`` aliases of the level below."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, depth + 1):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


class _CountingEvents:
    def __init__(self, events: yaml_reader._Events, counter: list[int]) -> None:
        self._events = events
        self._counter = counter

    def get_event(self) -> yaml.Event | None:
        self._counter[0] += 1
        return self._events.get_event()

    def dispose(self) -> None:
        self._events.dispose()


@pytest.fixture
def events_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many parser events a load reads; building the data fails the test."""
    counter = [0]
    real = yaml_reader._events
    monkeypatch.setattr(yaml_reader, "_events", lambda text: _CountingEvents(real(text), counter))

    def no_construct(node: yaml.Node) -> None:
        raise AssertionError("the data was built: the refusal came too late")

    monkeypatch.setattr(script_loader, "construct", no_construct)
    yield counter


# ---------------------------------------------------------------- aliases


@pytest.mark.parametrize("depth", [5, 7, 9, 20])
def test_alias_bomb_is_refused_while_composing(depth: int, events_read: list[int]) -> None:
    text = alias_bomb(depth)

    problem = only_error(text)

    # Level 4 alone stands for 1 + 9 x 820 values; the bomb stops there, whatever its depth.
    assert problem.line == 5
    assert problem.message == (
        f"aliases expand the script to more than {MAX_VALUES:,} values here (each *name "
        "counts as a full copy of what it names); use fewer aliases"
    )
    assert events_read[0] < 70  # about a dozen events per line read, none past line 5


def test_alias_bomb_of_mappings_and_merge_keys_is_refused(events_read: list[int]) -> None:
    lines = ["m0: &m0 {" + ", ".join(f"k{i}: lol" for i in range(10)) + "}"]
    for level in range(1, 8):
        lines.append(f"m{level}: &m{level} {{<<: [{', '.join([f'*m{level - 1}'] * 10)}]}}")

    problem = only_error("\n".join(lines) + "\n")

    assert problem.message.startswith("aliases expand the script to more than")
    assert problem.line == 5  # m4 stands for 1 + 10 x 2133 values
    assert events_read[0] < 80


def test_too_many_aliases_of_a_small_value() -> None:
    text = "a: &a x\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    problem = only_error(text)
    assert problem.line == 2
    assert problem.message == (
        f"the script uses more than {MAX_ALIASES:,} aliases (*name); write some of the values out"
    )


@pytest.mark.parametrize("value", ["&a [*a]", "&a {x: *a}", "&a [1, [2, *a]]", "&a {<<: *a, x: 1}"])
def test_alias_inside_the_value_it_names(value: str) -> None:
    text = edit("title: Spring line", f"title: {value}")
    problem = only_error(text)
    assert problem.line == 4
    assert problem.message == (
        "the alias *a is used inside the value it names, which would repeat forever; "
        "point it at something outside"
    )


def test_anchor_defined_twice_and_undefined_alias() -> None:
    text = edit("title: Spring line", "title: &t Spring line\ncapacity_note: &t x")
    assert only_error(text).message == (
        "invalid YAML: the anchor &t is defined twice (first at line 4)"
    )
    assert only_error(edit("title: Spring line", "title: *nope")).message == (
        "invalid YAML: found undefined alias 'nope'"
    )


def test_aliases_and_merge_keys_of_a_real_script_still_work() -> None:
    text = edit('at: {day: 1, time: "09:00"}', 'at: &day1 {day: 1, time: "09:00"}')
    text = edit('at: {day: 1, time: "12:00"}', 'at: {<<: *day1, time: "12:00"}', text)
    text = edit('reward: {amount: "5.00"}', 'reward: &five {amount: "5.00"}', text)
    text = edit("      promote: shopkeeper", "      reward: *five\n      promote: shopkeeper", text)
    text = edit('total: "600.00"', 'total: "2000.00"', text)

    script = load_script_text(text).script

    assert script.warmup.steps[1].at.day == 1
    assert str(script.warmup.steps[1].at.time) == "12:00:00"
    assert script.tasks.ladder[1].reward == script.tasks.ladder[0].reward


# ---------------------------------------------------------------- size, nesting, values


def test_text_over_one_megabyte_is_refused_before_parsing() -> None:
    problem = only_error("a" * (MAX_BYTES + 1))
    assert problem.line is None
    assert problem.message == (
        "the script is more than 1,000,000 bytes; a script may be at most 1,000,000 bytes (1 MB)"
    )
    # Counted in UTF-8 bytes, not characters.
    assert only_error("é" * 600_000).message.startswith("the script is 1,200,000 bytes;")


@pytest.mark.parametrize(
    "text",
    [
        "title: " + "[" * 5000 + "]" * 5000,
        "title: " + "{a: " * 5000 + "1" + "}" * 5000,
        "".join("  " * level + f"k{level}:\n" for level in range(200)),
    ],
)
def test_nesting_deeper_than_the_limit(text: str) -> None:
    problem = only_error(text)
    assert problem.message == (
        f"lists and mappings are nested more than {MAX_DEPTH} levels deep here; "
        "a script needs far fewer"
    )
    assert problem.line == (1 if text.startswith("title") else MAX_DEPTH + 1)


def test_too_many_values() -> None:
    text = VALID + "extra: [" + "1, " * MAX_VALUES + "1]\n"
    problem = only_error(text)
    assert problem.line == line_of(text, "extra:")
    assert problem.message == (
        f"the script has more than {MAX_VALUES:,} values (keys, items and texts); "
        "a script needs far fewer"
    )


def test_long_lists_are_refused_by_their_length_not_item_by_item() -> None:
    steps = "".join(
        f'    - {{id: s{i}, at: {{day: 1, time: "10:00"}}, post: {{text: "n{i}"}}}}\n'
        for i in range(1000)
    )
    text = VALID.replace("tasks:\n", steps + "tasks:\n", 1)
    problem = only_error(text)
    assert (problem.line, problem.field) == (10, "warmup.steps")
    assert problem.message == "has 1004 items; at most 1000 are allowed"

    where = ", ".join(f"k{i}: [1]" for i in range(51))
    problem = only_error(edit("count: 10}", f"count: 10, where: {{{where}}}}}"))
    assert problem.field == "tasks.ladder[invite_fans].goal.where"
    assert problem.message == "has 51 conditions; at most 50 are allowed"


def test_thousands_of_problems_are_cut_to_a_listed_few() -> None:
    bad = "".join(f"  bogus{i}: 1\n" for i in range(3 * MAX_LISTED))
    text = edit("warmup:\n", "warmup:\n" + bad)

    with pytest.raises(ScriptError) as caught:
        load_script_text(text)

    problems = caught.value.problems
    assert len(problems) == MAX_LISTED + 1
    assert problems[0].field == "warmup.bogus0"
    assert problems[-1] == Problem(
        "<string>",
        None,
        "",
        f"there are more problems than the {MAX_LISTED} listed; fix these and check again",
        "error",
    )


def test_many_warnings_are_cut_and_the_script_still_loads() -> None:
    nights = "".join(
        f'    - {{id: n{i}, at: {{day: {i % 7 + 1}, time: "23:{i % 60:02d}"}}, '
        f'post: {{text: "night {i}"}}}}\n'
        for i in range(2 * MAX_LISTED)
    )
    text = VALID.replace("tasks:\n", nights + "tasks:\n", 1)

    loaded = load_script_text(text)

    assert len(loaded.warnings) == MAX_LISTED + 1
    assert loaded.warnings[-1].severity == "warning"
    assert loaded.warnings[-1].message.startswith("there are more problems than the 100 listed")


# ---------------------------------------------------------------- characters


@pytest.mark.parametrize(
    ("char", "what"),
    [
        ("\x00", "control character U+0000"),
        ("\x01", "control character U+0001"),
        ("\x1b", "control character U+001B"),
        ("\x7f", "control character U+007F"),
        ("\x9b", "control character U+009B"),
        ("\ud800", "character U+D800"),
        ("\ufffe", "character U+FFFE"),
    ],
)
def test_characters_yaml_forbids_are_located(char: str, what: str) -> None:
    problem = only_error(edit("title: Spring line", f"title: Spring{char} line"))
    assert problem.line == 4
    assert problem.message == f"the {what} (column 14) is not allowed in a script; delete it"


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_character_line_counts_any_line_ending(newline: str) -> None:
    text = edit("title: Spring line", "title: Spring\x01 line").replace("\n", newline)
    assert only_error(text).line == 4


# ---------------------------------------------------------------- numbers, amounts, durations


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        (
            'amount: "5.00"',
            'amount: "' + "9" * 400 + '"',
            "tasks.ladder[invite_fans].reward.amount",
            "the amount 9999999999999999999999999999999999999... is too large; "
            "write at most 12 digits before the decimal point",
        ),
        (
            'total: "600.00"',
            'total: "1000000000000.00"',
            "budget.total",
            "the amount 1000000000000.00 is too large; write at most 12 digits before the "
            "decimal point",
        ),
        (
            'amount: "5.00"',
            'amount: "5.0000000000000"',
            "tasks.ladder[invite_fans].reward.amount",
            "the amount 5.0000000000000 has 13 decimal places; no currency has more than 4",
        ),
        (
            'amount: "5.00"',
            'amount: "1e999999"',
            "tasks.ladder[invite_fans].reward.amount",
            "'1e999999' is not an amount; write it like \"20.00\"",
        ),
        (
            'amount: "5.00"',
            'amount: "NaN"',
            "tasks.ladder[invite_fans].reward.amount",
            "'NaN' is not an amount; write it like \"20.00\"",
        ),
        (
            'amount: "5.00"',
            "amount: .inf",
            "tasks.ladder[invite_fans].reward.amount",
            'write amounts as quoted decimals like "20.00", not inf',
        ),
        (
            "expires_in: 10m",
            "expires_in: 99999999999d",
            "warmup.steps[d1_envelope_noon].red_envelope.expires_in",
            "the duration 99999999999d is too long; at most 366d",
        ),
        (
            "- after: 2m",
            "- after: 999999999d",
            "warmup.steps[d2_talk].talk.parts[1].after",
            "the duration 999999999d is too long; at most 366d",
        ),
        (
            "window: 24h",
            "window: " + "1" + "0" * 30,
            "warmup.steps[d7_pitch].pitch.reply.window",
            "the duration 1000000000000000000000000000000 is too long; at most 366d",
        ),
        (
            "at: {day: 2,",
            "at: {day: " + "1" + "0" * 400 + ",",
            "warmup.steps[d2_talk].at.day",
            "the number 1000000000000000000000000000000000000... is too large (401 characters; "
            "a number in a script has at most 100)",
        ),
        (
            "at: {day: 2,",
            "at: {day: " + "1" + "0" * 50 + ",",
            "warmup.steps[d2_talk].at.day",
            "must be at most 366, not 1000000000000000000000000000000000000...",
        ),
        (
            "version: 1",
            "version: 1" + "0" * 50,
            "version",
            "must be at most 2147483647, not 1000000000000000000000000000000000000...",
        ),
        (
            "capacity: 100",
            "capacity: 1" + "0" * 50,
            "capacity",
            "must be at most 200000, not 1000000000000000000000000000000000000...",
        ),
        (
            'total: "600.00"}',
            'total: "600.00", reward_seats: 1' + "0" * 50 + "}",
            "budget.reward_seats",
            "must be at most 200000, not 1000000000000000000000000000000000000...",
        ),
        (
            "count: 10}",
            "count: 1" + "0" * 50 + "}",
            "tasks.ladder[invite_fans].goal.count",
            "must be at most 1000000, not 1000000000000000000000000000000000000...",
        ),
        (
            'time: "09:00"',
            "time: " + ":".join(["59"] * 40),
            "warmup.steps[d1_welcome].at.time",
            "the number 59:59:59:59:59:59:59:59:59:59:59:59:5... is too large (119 characters; "
            "a number in a script has at most 100)",
        ),
        (
            "at: {day: 2,",
            "at: {day: .nan,",
            "warmup.steps[d2_talk].at.day",
            "input should be a finite number",
        ),
    ],
)
def test_bad_numbers_are_problems_at_their_field(
    old: str, new: str, field: str, message: str
) -> None:
    text = edit(old, new)
    problem = only_error(text)
    assert (problem.line, problem.field, problem.message) == (
        line_of(text, new.splitlines()[0][:30]),
        field,
        message,
    )


# ---------------------------------------------------------------- tags and keys


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!!binary aGVsbG8=", "invalid YAML: the tag !!binary is not allowed in a script"),
        ("!!set {a, b}", "invalid YAML: the tag !!set is not allowed in a script"),
        ("!!omap [a: 1]", "invalid YAML: the tag !!omap is not allowed in a script"),
        ("!foo bar", "invalid YAML: the tag !foo is not allowed in a script"),
        (
            "!!python/object/apply:os.system [ls]",
            "invalid YAML: the tag !!python/object/apply:os.system is not allowed in a script",
        ),
        ("!!int abc", "invalid YAML: 'abc' cannot be read as a whole number"),
        ("!!float abc", "invalid YAML: 'abc' cannot be read as a number"),
        ("!!bool maybe", "invalid YAML: 'maybe' cannot be read as true/false"),
        ("!!timestamp 2001-02-31", "invalid YAML: '2001-02-31' cannot be read as a date"),
        ("!!timestamp 99999-01-01", "invalid YAML: '99999-01-01' cannot be read as a date"),
        (
            "2001-12-14 21:59:43.10 +99:99",
            "invalid YAML: '2001-12-14 21:59:43.10 +99:99' cannot be read as a date",
        ),
        ("!!str [1]", "invalid YAML: expected a scalar node, but found sequence"),
    ],
)
def test_tags_and_unreadable_values(value: str, message: str) -> None:
    problem = only_error(edit("title: Spring line", f"title: {value}"))
    assert problem.line == 4
    assert problem.message.startswith(message)


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ("[1, 2]: x", "", "invalid YAML: while constructing a mapping, found unhashable key"),
        ("? {a: 1}\n: x", "", "invalid YAML: while constructing a mapping, found unhashable key"),
        ("1.5: x", "1.5", "keys must be text, but this one reads as 1.5; put it in quotes"),
        ("0x1f: x", "0x1f", "keys must be text, but this one reads as 31; put it in quotes"),
        (
            "2001-01-01: x",
            "2001-01-01",
            "keys must be text, but this one reads as datetime.date(2001, 1, 1); put it in quotes",
        ),
        (
            "<<: 5",
            "",
            "invalid YAML: while constructing a mapping, expected a mapping or list of mappings "
            "for merging, but found scalar",
        ),
        (
            "<<: [{a: 1}, 5]",
            "",
            "invalid YAML: while constructing a mapping, expected a mapping for merging, but "
            "found scalar",
        ),
    ],
)
def test_keys_that_are_not_text_and_bad_merges(extra: str, field: str, message: str) -> None:
    text = VALID + extra + "\n"
    problem = only_error(text)
    assert (problem.line, problem.field, problem.message) == (
        line_of(text, extra.splitlines()[0]),
        field,
        message,
    )


@pytest.mark.parametrize("zone", ["Europe", "Europe/" + "x" * 300])
def test_time_zone_that_names_a_folder_or_is_too_long(zone: str) -> None:
    problem = only_error(spring_line(zone))
    assert (problem.line, problem.field) == (5, "timezone")
    assert "is not an IANA time zone like Asia/Shanghai" in problem.message


def test_lone_equals_and_merge_signs_are_text() -> None:
    assert load_script_text(edit("title: Spring line", "title: =")).script.title == "="
    assert load_script_text(edit("title: Spring line", "title: <<")).script.title == "<<"


def test_huge_values_are_cut_in_messages_and_fields() -> None:
    text = edit("- id: d2_talk", "- id: " + "x" * 10_000)
    problem = only_error(text)
    assert problem.field == "warmup.steps[" + "x" * 61 + "...].id"
    assert problem.message.startswith("'" + "x" * 76 + "... is not a valid id")
    assert len(problem.message) < 200

    problem = only_error(VALID + "k" * 1000 + ": 1\n")
    assert problem.message.startswith("unknown key 'kkkk")
    assert len(problem.message) + len(problem.field) < 300


# ---------------------------------------------------------------- without libyaml


@pytest.mark.parametrize(
    "text",
    [
        VALID,
        alias_bomb(7),
        edit("title: Spring line", "title: Spring\x01 line"),
        edit("  days: 7\n", "  days: [7\n"),
        "title: " + "[" * 100 + "]" * 100,
    ],
)
def test_pure_python_parser_gives_the_same_answers(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def answer() -> object:
        try:
            return load_script_text(text).script
        except ScriptError as exc:
            # The two parsers word their own syntax errors differently; all else is ours.
            return [
                (p.line, "invalid YAML" if p.message.startswith("invalid YAML") else p.message)
                for p in exc.problems
            ]

    with_libyaml = answer()
    monkeypatch.setattr(yaml, "__with_libyaml__", False)
    assert answer() == with_libyaml


# ---------------------------------------------------------------- fuzzing

_FRAGMENTS = [
    "&a ", "&b ", "*a", "*b", "&a [*a]", "[", "]", "{", "}", ", ", ": ", ":", "- ", "? ",
    "'", '"', "\\", "\t", "#", "\n", "\n  ", "\n- ", "---\n", "...\n", "%YAML 1.1\n",
    "\x00", "\x01", "\x7f", "\x85", "\ud800", "\ufeff", "\u2028",
    "<<: ", "<<: *a", "<<: [*a, *b]", "=", "~", "null", "yes", "0x1f", "0o17", ".inf", ".nan",
    "!!python/object:os.system ", "!!binary ", "!!int ", "!!float ", "!!timestamp ", "!!set ",
    "!!str ", "!foo ", "!<tag:x> ", "9" * 120, "1" + "0" * 400, "1e999999", '"1e999999"',
    '"' + "9" * 400 + '"', '"20.00"', '"0.001"', "20.00", "1:2:3:4:5", "99999999999d", "10m",
    "1h30m", "2001-02-31", "2001-12-14 21:59:43.10 +99:99", '"09:00"', "25:00",
]  # fmt: skip

_fragments = st.lists(st.sampled_from(_FRAGMENTS), min_size=1, max_size=8).map("".join)


def _assert_answered(text: str) -> None:
    try:
        loaded = load_script_text(text)
    except ScriptError as exc:
        assert any(p.severity == "error" for p in exc.problems)
        problems = exc.problems
    else:
        assert isinstance(loaded, LoadedScript)
        problems = loaded.warnings
    for problem in problems:
        assert problem.message
        assert len(problem.message) < 500
        assert problem.line is None or problem.line >= 1
        str(problem)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=()), max_size=300))
def test_any_text_is_answered(text: str) -> None:
    _assert_answered(text)


@settings(max_examples=300, deadline=None)
@given(_fragments, st.integers(min_value=0, max_value=10_000), st.booleans())
def test_yaml_fragments_in_a_valid_script_are_answered(
    fragment: str, where: int, replace_value: bool
) -> None:
    lines = VALID.splitlines(keepends=True)
    index = where % len(lines)
    line = lines[index]
    if replace_value and ": " in line:
        # The value of one key: the fragment lands where a number, amount or text goes.
        key = line.split(": ", 1)[0]
        lines[index] = f"{key}: {fragment}\n"
    else:
        cut = where % (len(line) + 1)
        lines[index] = line[:cut] + fragment + line[cut:]
    _assert_answered("".join(lines))


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=30), st.integers(min_value=2, max_value=12))
def test_alias_bombs_of_any_shape_are_answered(depth: int, width: int) -> None:
    _assert_answered(alias_bomb(depth, width))
