"""`funnelbot script validate|preview` on real files: exit codes, the
`path:line: field: message` format on stderr, and the local-time timeline."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import scripts as cli_scripts
from bot.cli.scripts import app
from tests.support.scripts import line_of, spring_line

SCRIPT = spring_line("Asia/Shanghai")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_validate_valid_file(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path, "good.yaml", SCRIPT)

    result = runner.invoke(app, ["validate", str(path)])

    assert result.exit_code == 0
    assert result.stdout == f"{path}: ok (4 steps, 2 tasks)\n"
    assert result.stderr == ""


def test_validate_reports_every_problem_as_path_line_field_message(
    runner: CliRunner, tmp_path: Path
) -> None:
    text = SCRIPT.replace("      talk:\n", "      bogus: 1\n      talk:\n")
    text = text.replace("timezone: Asia/Shanghai", "timezone: Mars/Olympus")
    path = write(tmp_path, "bad.yaml", text)

    result = runner.invoke(app, ["validate", str(path)])

    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:5: timezone: 'Mars/Olympus' is not an IANA time zone")
    assert lines[1].startswith(
        f"{path}:{line_of(text, 'bogus')}: warmup.steps[d2_talk].bogus: "
        "unknown key 'bogus'; allowed here: id, at,"
    )
    assert "Traceback" not in result.output


def test_validate_warnings_pass_with_prefix(runner: CliRunner, tmp_path: Path) -> None:
    text = SCRIPT.replace('time: "09:00"', 'time: "23:30"')
    path = write(tmp_path, "night.yaml", text)

    result = runner.invoke(app, ["validate", str(path)])

    assert result.exit_code == 0
    assert result.stderr.startswith(
        f"warning: {path}:{line_of(text, '23:30')}: warmup.steps[d1_welcome].at.time: "
        "a post at 23:30 falls in "
        "quiet hours"
    )
    assert result.stdout == f"{path}: ok (4 steps, 2 tasks)\n"


def test_validate_several_files_fails_if_one_fails(runner: CliRunner, tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", SCRIPT)
    over = write(tmp_path, "over.yaml", SCRIPT.replace('amount: "5.00"', 'amount: "7.00"'))

    result = runner.invoke(app, ["validate", str(good), str(over)])

    assert result.exit_code == 1
    assert result.stdout == f"{good}: ok (4 steps, 2 tasks)\n"
    assert result.stderr.startswith(f"{over}:7: budget.total: planned spend 720.00 EUR")
    assert "budget.reward_seats" in result.stderr


@pytest.mark.parametrize(
    ("name", "message"),
    [("nope.yaml", "no such file"), ("", "is a directory, not a script file")],
)
def test_validate_missing_file_or_directory(
    runner: CliRunner, tmp_path: Path, name: str, message: str
) -> None:
    path = tmp_path / name if name else tmp_path

    result = runner.invoke(app, ["validate", str(path)])

    assert result.exit_code == 1
    assert result.stderr == f"{path}: {message}\n"
    assert isinstance(result.exception, SystemExit)


def test_validate_file_that_is_not_utf8(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    text = SCRIPT.replace("speaker: Ana", "speaker: Ana Muñoz")
    path.write_bytes(text.encode("latin-1"))

    result = runner.invoke(app, ["validate", str(path)])

    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:{line_of(text, 'Muñoz')}: the file is not UTF-8 text")


def test_validate_bad_yaml(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", SCRIPT.replace("  days: 7\n", "  days: [7\n"))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:")
    assert "invalid YAML" in result.stderr
    assert len(result.stderr.splitlines()) == 1


# ---------------------------------------------------------------- preview


def test_preview_shows_local_times_across_a_dst_change(runner: CliRunner, tmp_path: Path) -> None:
    # Spain moves to summer time on Sunday 2026-03-29: warm-up day 7.
    path = write(tmp_path, "line.yaml", SCRIPT)

    result = runner.invoke(
        app, ["preview", str(path), "--start", "2026-03-23", "--tz", "Europe/Madrid"]
    )

    assert result.exit_code == 0, result.output
    rows = {cells[3]: cells for cells in _rows(result.stdout)}
    assert rows["d1_welcome"][:3] == ["W1", "Mon 2026-03-23 09:00 CET", "post"]
    assert rows["d1_welcome"][4].startswith("Welcome, everyone.")
    assert rows["d1_envelope_noon"][4] == "20.00 EUR in 30 shares, expires in 10m"
    assert rows["d1_envelope_noon.close"][1] == "Mon 2026-03-23 12:10 CET"
    assert rows["d2_talk"][4].startswith("How a corner shop sells online · Ana")
    assert rows["d2_talk.p1"][1] == "Tue 2026-03-24 20:02 CET"
    assert rows["d7_pitch"][:3] == ["W7", "Sun 2026-03-29 20:00 CEST", "pitch"]
    assert rows["d7_pitch.close"][:2] == ["T1", "Mon 2026-03-30 20:00 CEST"]
    assert rows["task.invite_fans"][:3] == ["T1", "Mon 2026-03-30 09:00 CEST", "task_unlock"]
    assert rows["task.invite_fans"][4] == "Invite ten fans (reward 5.00 EUR)"
    assert rows["task.first_order"][0] == "T18"
    assert "Planned envelope spend: 20.00 EUR" in result.stdout
    assert (
        "Planned reward spend: 500.00 EUR (5.00 EUR per member × 100 members at capacity)"
        in result.stdout
    )
    assert "Budget: 600.00 EUR" in result.stdout


def test_preview_defaults_to_the_script_zone_and_today(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_scripts, "today", lambda tz: date(2026, 1, 5))
    path = write(tmp_path, "line.yaml", SCRIPT)

    result = runner.invoke(app, ["preview", str(path)])

    assert result.exit_code == 0, result.output
    rows = {cells[3]: cells for cells in _rows(result.stdout)}
    assert rows["d1_welcome"][1] == "Mon 2026-01-05 09:00 CST"


def test_preview_unknown_zone(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path, "line.yaml", SCRIPT)
    result = runner.invoke(app, ["preview", str(path), "--start", "2026-03-23", "--tz", "Nowhere"])
    assert result.exit_code == 1
    assert "'Nowhere' is not a known time zone" in result.stderr
    assert "Traceback" not in result.output


def test_preview_bad_start(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path, "line.yaml", SCRIPT)
    result = runner.invoke(app, ["preview", str(path), "--start", "23/03/2026"])
    assert result.exit_code == 1
    assert "--start '23/03/2026' is not a date" in result.stderr


def test_preview_script_with_errors(runner: CliRunner, tmp_path: Path) -> None:
    text = SCRIPT.replace("unlock: {day: 18}", "unlock: {day: 30}")
    path = write(tmp_path, "bad.yaml", text)

    result = runner.invoke(app, ["preview", str(path), "--start", "2026-03-23"])

    assert result.exit_code == 1
    assert result.stdout == ""
    line = line_of(text, "day: 30")
    assert result.stderr.startswith(f"{path}:{line}: tasks.ladder[first_order].unlock.day: day 30")


def test_preview_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["preview", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "no such file" in result.stderr


def _rows(output: str) -> list[list[str]]:
    """The body rows of the rich table: cells split on the box-drawing bar."""
    rows = []
    for line in output.splitlines():
        if line.startswith("│"):
            rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return rows


def test_preview_start_past_the_end_of_the_calendar(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path, "line.yaml", SCRIPT)
    result = runner.invoke(app, ["preview", str(path), "--start", "9999-12-31"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr == (
        "error: --start 9999-12-31 is too late: the cohort would end after 9999\n"
    )


@pytest.mark.parametrize("command", ["validate", "preview"])
def test_files_that_cannot_be_read_are_one_line(
    runner: CliRunner, tmp_path: Path, command: str
) -> None:
    afile = write(tmp_path, "afile", "")
    cases = {
        tmp_path / "nope.yaml": "no such file",
        tmp_path: "is a directory, not a script file",
        afile / "x.yaml": "cannot read the file: Not a directory",
    }
    for path, message in cases.items():
        result = runner.invoke(app, [command, str(path)])
        assert result.exit_code == 1
        assert "Traceback" not in result.output
        assert result.stderr == f"{path}: {message}\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
@pytest.mark.parametrize("command", ["validate", "preview"])
def test_an_unreadable_file_is_one_line(runner: CliRunner, tmp_path: Path, command: str) -> None:
    path = write(tmp_path, "secret.yaml", SCRIPT)
    path.chmod(0)
    result = runner.invoke(app, [command, str(path)])
    assert result.exit_code == 1
    assert result.stderr == f"{path}: cannot read the file: permission denied\n"


# ---------------------------------------------------------------- hostile files


def test_validate_control_character_is_a_located_problem(runner: CliRunner, tmp_path: Path) -> None:
    text = SCRIPT.replace("speaker: Ana", "speaker: Ana\x01")
    path = write(tmp_path, "control.yaml", text)

    result = runner.invoke(app, ["validate", str(path)])

    assert result.exit_code == 1
    assert result.stderr == (
        f"{path}:{line_of(text, 'speaker')}: the control character U+0001 (column 21) is not "
        "allowed in a script; delete it\n"
    )
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


def test_validate_alias_bomb_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 8)]
    path = write(tmp_path, "bomb.yaml", "\n".join(lines) + "\n")

    result = runner.invoke(app, ["validate", str(path)])

    assert result.exit_code == 1
    assert result.stderr == (
        f"{path}:5: aliases expand the script to more than 25,000 values here (each *name "
        "counts as a full copy of what it names); use fewer aliases\n"
    )
    assert isinstance(result.exception, SystemExit)


def test_validate_huge_numbers_amounts_and_durations(runner: CliRunner, tmp_path: Path) -> None:
    text = SCRIPT.replace('amount: "5.00"', 'amount: "' + "9" * 400 + '"')
    text = text.replace("expires_in: 10m", "expires_in: 99999999999d")
    path = write(tmp_path, "huge.yaml", text)

    result = runner.invoke(app, ["validate", str(path)])

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:{line_of(text, 'expires_in')}: warmup.steps[d1_envelope_noon].red_envelope"
        ".expires_in: the duration 99999999999d is too long; at most 366d",
        f"{path}:{line_of(text, 'amount:')}: tasks.ladder[invite_fans].reward.amount: the amount "
        "9999999999999999999999999999999999999... is too large; write at most 12 digits before "
        "the decimal point",
    ]
    assert isinstance(result.exception, SystemExit)


def test_validate_file_over_one_megabyte(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path, "big.yaml", SCRIPT + "# " + "x" * 1_100_000 + "\n")
    size = path.stat().st_size

    result = runner.invoke(app, ["validate", str(path)])

    assert result.exit_code == 1
    assert result.stderr == (
        f"{path}: the script is {size:,} bytes; a script may be at most 1,000,000 bytes (1 MB)\n"
    )


def test_validate_endless_device_is_refused_after_one_megabyte(runner: CliRunner) -> None:
    result = runner.invoke(app, ["validate", "/dev/zero"])
    assert result.exit_code == 1
    assert result.stderr == (
        "/dev/zero: the script is more than 1,000,000 bytes; a script may be at most "
        "1,000,000 bytes (1 MB)\n"
    )


def test_preview_zone_that_is_a_folder(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path, "line.yaml", SCRIPT)
    result = runner.invoke(app, ["preview", str(path), "--start", "2026-03-23", "--tz", "Europe"])
    assert result.exit_code == 1
    assert "--tz 'Europe' is not a known time zone" in result.stderr
    assert isinstance(result.exception, SystemExit)
