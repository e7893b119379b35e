"""``funnelbot simulate`` end to end: small cohorts through the bot's use cases and the
real storage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from bot.cli import app
from bot.simulation import Simulation, SimulationOptions
from funnels.scripts.library import DEFAULT_SCRIPT, script_path
from funnels.scripts.loader import load_script
from storage.tables import (
    cohort_members as members_t,
    cohorts as cohorts_t,
    fan_locks as fan_locks_t,
    inbound_events as events_t,
    invite_links as links_t,
    member_activity as activity_t,
)
from storage.uow import SqlStore

runner = CliRunner()


def test_simulate_json_report_is_consistent() -> None:
    result = runner.invoke(
        app, ["simulate", "--cohorts", "2", "--members", "40", "--reply-rate", "0.5", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    counts = [row["members"] for row in report["funnel"]]
    assert counts[0] == 80  # everyone joined
    assert counts == sorted(counts, reverse=True)  # a funnel never widens
    stages = {row["stage"]: row["members"] for row in report["funnel"]}
    assert 0 < stages["replied"] < stages["engaged"]
    assert stages["admitted"] == stages["replied"]  # every simulated responder comes over
    assert report["spend_minor"] <= report["budget_minor"]
    assert report["envelopes"]["claimed_minor"] <= report["envelopes"]["planned_minor"]
    assert report["steps"]["status"] == {"done": report["run"]["steps_run"]}
    assert report["run"]["duplicate_events"] >= 0


def test_simulate_is_reproducible_with_a_seed() -> None:
    args = ["simulate", "--cohorts", "1", "--members", "30", "--seed", "7", "--json"]
    first = json.loads(runner.invoke(app, args).stdout)
    second = json.loads(runner.invoke(app, args).stdout)
    assert first["funnel"] == second["funnel"]
    assert first["envelopes"]["claimed_minor"] == second["envelopes"]["claimed_minor"]


def test_simulate_refuses_impossible_options() -> None:
    result = runner.invoke(app, ["simulate", "--reply-rate", "1.5", "--members", "0"])
    assert result.exit_code == 1
    assert "--reply-rate must be between 0 and 1" in result.output
    assert "--members must be between 1" in result.output


def test_simulate_reports_a_broken_script(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nversion: 1\nbogus: true\n", encoding="utf-8")
    result = runner.invoke(app, ["simulate", "--script", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:3: bogus: unknown key" in result.output
    assert "Traceback" not in result.output


def test_simulate_runs_on_the_given_database(db_url: str) -> None:
    # Typer's runner drives asyncio.run itself, so the database is handed over by URL.
    result = runner.invoke(
        app, ["simulate", "--cohorts", "1", "--members", "25", "--database-url", db_url, "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["funnel"][0]["members"] == 25
    assert report["steps"]["status"] == {"done": report["run"]["steps_run"]}


def test_simulate_can_run_twice_on_one_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'sim.db'}"
    args = ["simulate", "--cohorts", "1", "--members", "20", "--database-url", url, "--json"]
    first = runner.invoke(app, args)
    second = runner.invoke(app, args)
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    # Each report covers its own run's cohort only, and the second run's events are its
    # own, not taken for re-sends of the first run's.
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert b["funnel"][0]["members"] == 20
    assert b["run"]["events"] == a["run"]["events"]
    assert b["funnel"] == a["funnel"]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("nonsense", "'nonsense' is not a database URL"),
        ("postgresql://x", "postgresql:// does not name an async driver"),
        ("sqlite+aiosqlite:////nonexistent/dir/x.db", "the folder /nonexistent/dir does not exist"),
        ("postgresql+asyncpg://u@127.0.0.1:1/x", "cannot use the database"),
    ],
)
def test_simulate_refuses_a_database_it_cannot_use(url: str, says: str) -> None:
    result = runner.invoke(
        app, ["simulate", "--cohorts", "1", "--members", "5", "--database-url", url]
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: --database-url: ") and says in line


def test_simulate_refuses_a_script_file_it_cannot_read(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("", encoding="utf-8")
    cases = {
        tmp_path / "nope.yaml": "no such file",
        tmp_path: "is a directory, not a script file",
        afile / "x.yaml": "cannot read the file: Not a directory",
    }
    for path, says in cases.items():
        result = runner.invoke(app, ["simulate", "--script", str(path)])
        assert result.exit_code == 1
        assert "Traceback" not in result.output
        assert result.stderr == f"error: --script {path}: {says}\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_simulate_refuses_an_unreadable_script(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text("id: x\n", encoding="utf-8")
    path.chmod(0)
    result = runner.invoke(app, ["simulate", "--script", str(path)])
    assert result.exit_code == 1
    assert result.stderr == f"error: --script {path}: cannot read the file: permission denied\n"


async def test_simulated_people_take_the_bots_own_paths(db_url: str, store: SqlStore) -> None:
    loaded = load_script(script_path(DEFAULT_SCRIPT))
    options = SimulationOptions(cohorts=2, members=60, reply_rate=0.6, seed=5, database_url=db_url)
    simulation = Simulation(loaded, options)

    result = await simulation.run()

    async with store.transaction() as tx:
        members = (
            await tx.conn.execute(
                select(members_t.c.cohort_id, members_t.c.inviter_id, cohorts_t.c.leader_id).join(
                    cohorts_t, cohorts_t.c.id == members_t.c.cohort_id
                )
            )
        ).all()
        links = (await tx.conn.execute(select(links_t))).all()
        counted = (await tx.conn.execute(select(func.count()).select_from(activity_t))).scalar()
    # Launched by a leader, whose link is every member's inviter unless they came by a
    # member's own link (/mylink), which is then theirs.
    assert len(members) == 120
    assert all(m.leader_id is not None for m in members)
    by_members = [m for m in members if m.inviter_id != m.leader_id]
    assert by_members and len(by_members) < len(members) / 2
    owners = {link.owner_id for link in links if link.kind == "member"}
    assert {m.inviter_id for m in by_members} <= owners
    kinds = sorted((link.cohort_id, link.kind) for link in links if link.kind != "member")
    assert kinds == sorted((c, k) for c in result.cohort_ids for k in ("admission", "leader"))
    # Responders asked into the task group and were let in there (DecideJoinRequest).
    answers = simulation.people.messenger.join_answers
    assert all(approve for _, _, approve in answers)
    assert len(answers) == result.report.stages["admitted"] > 0
    # Chatter was counted by Telegram id, per member and day.
    assert counted and result.report.stages["engaged"] > result.report.stages["replied"]


async def test_simulated_ladder_goes_through_links_payouts_and_reminders(
    db_url: str, store: SqlStore
) -> None:
    """Visitors click members' tracked links through the link tracking (fans locked in
    ``fan_locks``, events from the ``links`` source), every reward credited is delivered
    to the payout receiver (which fails now and then: more attempts than payouts), and
    the tick's reminders are counted, never more than one a member a day."""
    loaded = load_script(script_path(DEFAULT_SCRIPT))
    options = SimulationOptions(cohorts=1, members=80, reply_rate=0.6, seed=3, database_url=db_url)
    simulation = Simulation(loaded, options)

    result = await simulation.run()
    data = result.as_dict()

    async with store.transaction() as tx:
        fans = (await tx.conn.execute(select(func.count()).select_from(fan_locks_t))).scalar()
        from_links = (
            await tx.conn.execute(
                select(events_t.c.type, func.count())
                .where(events_t.c.source == "links")
                .group_by(events_t.c.type)
            )
        ).all()
        pending = (
            await tx.conn.execute(select(func.count()).where(events_t.c.state == "pending"))
        ).scalar()
    assert result.clicks > 0 and fans
    assert {t for t, _ in from_links} == {"link.clicked", "fan.locked"}
    assert dict(from_links)["fan.locked"] == fans
    assert pending == 0  # every stored event was applied
    assert data["rewards"]["paid"] > 0
    assert data["payouts"]["delivered"] == data["rewards"]["paid"]
    assert data["payouts"]["pending"] == data["payouts"]["parked"] == 0
    assert data["payouts"]["attempts"] >= data["payouts"]["delivered"]
    assert data["rewards"]["owed"] == 0  # the shipped budget covers the ladder
    assert data["reminders"]["sent"] > 0
    assert 0 < data["reminders"]["per_member_day"] <= 1


def _with_pitch_variant(tmp_path: Path) -> Path:
    text = script_path(DEFAULT_SCRIPT, "en").read_text(encoding="utf-8")
    marker = '        reply: {match: ["1", "one"], window: 24h}\n'
    assert marker in text
    varied = text.replace(
        marker,
        marker + '        variants: [{id: short, text: "Seven days done. Reply 1 to go on."}]\n',
        1,
    )
    path = tmp_path / "ab.yaml"
    path.write_text(varied, encoding="utf-8")
    return path


def test_simulate_runs_both_arms_and_compares_them(tmp_path: Path) -> None:
    script = str(_with_pitch_variant(tmp_path))
    args = ["simulate", "--script", script, "--cohorts", "8", "--members", "30", "--json"]
    lifted = runner.invoke(app, [*args, "--arm-lift", "short=3"])
    assert lifted.exit_code == 0, lifted.output
    [experiment] = json.loads(lifted.stdout)["experiments"]
    assert (experiment["step_key"], experiment["kind"]) == ("d7_pitch", "pitch")
    arms = {a["arm"]: a for a in experiment["arms"]}
    assert set(arms) == {"a", "short"}
    assert arms["a"]["cohorts"] + arms["short"]["cohorts"] == 8
    assert all(a["cohorts"] > 0 for a in arms.values())  # both arms ran
    assert arms["short"]["rate"] > arms["a"]["rate"]  # three times as likely to reply
    assert experiment["verdict"] in {"better", "too_small"}
    again = runner.invoke(app, [*args, "--arm-lift", "short=3"])
    assert json.loads(again.stdout)["experiments"] == [experiment]  # the seed decides
    plain = json.loads(runner.invoke(app, args).stdout)["experiments"]
    assert [a["cohorts"] for a in plain[0]["arms"]] == [a["cohorts"] for a in experiment["arms"]]
    for bad in ("short", "short=x", "=2", "short=-1"):
        refused = runner.invoke(app, [*args, "--arm-lift", bad])
        assert refused.exit_code == 1 and "--arm-lift" in refused.stderr, bad


def _with_reminder_variants(tmp_path: Path) -> Path:
    text = script_path(DEFAULT_SCRIPT, "en").read_text(encoding="utf-8")
    marker = "tasks:\n  days: 21\n"
    assert marker in text
    wording = (
        "  reminders:\n"
        "    inactive:\n"
        '      text: "Two quiet days. {title} is the next step: /tasks shows how."\n'
        '      variants: [{id: nudge, text: "{title} takes ten minutes. Start it today?"}]\n'
    )
    path = tmp_path / "reminders-ab.yaml"
    path.write_text(text.replace(marker, marker + wording, 1), encoding="utf-8")
    return path


def test_simulate_runs_both_reminder_arms_member_by_member(tmp_path: Path) -> None:
    script = str(_with_reminder_variants(tmp_path))
    args = ["simulate", "--script", script, "--cohorts", "4", "--members", "60", "--json"]
    lifted = runner.invoke(app, [*args, "--arm-lift", "nudge=1.6"])
    assert lifted.exit_code == 0, lifted.output
    [experiment] = json.loads(lifted.stdout)["experiments"]
    assert (experiment["step_key"], experiment["kind"], experiment["stage"]) == (
        "reminder.inactive",
        "reminder",
        "next",
    )
    arms = {a["arm"]: a for a in experiment["arms"]}
    assert set(arms) == {"a", "nudge"}
    assert all(a["members"] > 0 for a in arms.values())  # both arms went out
    assert arms["nudge"]["cohorts"] == arms["a"]["cohorts"] == 4  # drawn per member
    again = runner.invoke(app, [*args, "--arm-lift", "nudge=1.6"])
    assert json.loads(again.stdout)["experiments"] == [experiment]  # the seed decides
