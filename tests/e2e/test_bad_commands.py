"""Bad input to the leader and admin commands, end to end: every one gets a clear reply
from the catalogue, changes nothing in the database, and lets no exception out of the
dispatcher (``Harness.say`` feeds the update through ``dp.feed_raw_update``, which would
raise it)."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.telegram.i18n import Catalog
from funnels.kernel.stages import Role
from funnels.people.leaders import RevokeLeader
from funnels.scripts.library import available_scripts
from storage.uow import SqlStore
from tests.support.harness import ADMIN, LEADER, TASKS, WARMUP, Harness, running_bot
from tests.support.scripts import spring_line

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=ZoneInfo("Asia/Singapore"))
CATALOG = Catalog.load()
STRANGER = 1001
SHY_LEADER = 1002  # a leader who never pressed Start in a private chat with the bot
BROKEN = "id: x\nversion: 1\nbogus: true\n"


def text(key: str, **params: object) -> str:
    return CATALOG.text("en", key, **params)


def world(h: Harness) -> None:
    h.api.add_user(ADMIN, "Ada", started_bot=True)
    h.api.add_user(LEADER, "Lena", started_bot=True)
    h.api.add_user(STRANGER, "Sam")
    h.api.add_user(SHY_LEADER, "Shy")
    h.api.add_group(WARMUP, "Warm-up", supergroup=True, owner=LEADER)
    h.api.add_group(TASKS, "Tasks", supergroup=True, owner=LEADER)
    for chat in (WARMUP, TASKS):
        h.api.set_member(chat, STRANGER, "member")
        h.api.set_member(chat, SHY_LEADER, "member")


async def no_cohort(h: Harness) -> bool:
    async with h.store.transaction() as tx:
        return await tx.cohorts.by_chat(WARMUP) is None and await tx.cohorts.by_chat(TASKS) is None


async def role_of(h: Harness, telegram_id: int) -> int:
    async with h.store.transaction() as tx:
        user = await tx.users.by_telegram(telegram_id)
        return 0 if user is None else await tx.users.role(user.user_id)


async def test_capacity_takes_ascii_digits_only(store: SqlStore) -> None:
    async with running_bot(store, NOW) as h:
        world(h)
        await h.say(ADMIN, ADMIN, f"/grant_leader {LEADER} SEA")
        for capacity in ("²", "٣", "３", "1²", "9" * 5000, "-1", "0", "200001", "1e3", ""):
            await h.say(WARMUP, LEADER, f"/launch capacity={capacity}")
            assert h.last_text(WARMUP) == text("launch.bad_capacity", max=200_000), capacity
        assert await no_cohort(h)


async def test_grant_leader_takes_a_telegram_user_id_in_ascii_digits(store: SqlStore) -> None:
    bad_ids = ["²", "٣٣", "３３", str(2**76), str(2**53), "0", "-33", "33.0", "0x21", "1_000"]
    async with running_bot(store, NOW) as h:
        world(h)
        for bad in bad_ids:
            await h.say(ADMIN, ADMIN, f"/grant_leader {bad} SEA")
            assert h.last_text(ADMIN) == text("grant.bad_id"), bad
        async with h.store.transaction() as tx:
            for telegram_id in (33, 2**53, 2**53 - 1):
                assert await tx.users.by_telegram(telegram_id) is None
        # The largest id Telegram can hand out is fine.
        await h.say(ADMIN, ADMIN, f"/grant_leader {2**53 - 1} SEA")
        assert h.last_text(ADMIN) == text(
            "grant.done", name=str(2**53 - 1), region="Southeast Asia"
        )
        assert await role_of(h, 2**53 - 1) == Role.LEADER


async def test_a_non_admin_hears_admins_only_whatever_they_typed(store: SqlStore) -> None:
    async with running_bot(store, NOW) as h:
        world(h)
        for args in ("", "² SEA", f"{2**76} SEA", "33 SEA", "SEA", "a b c"):
            await h.say(STRANGER, STRANGER, f"/grant_leader {args}".strip())
            assert h.last_text(STRANGER) == text("grant.not_admin"), args
            await h.say(WARMUP, LEADER, f"/grant_leader {args}".strip())
            assert h.last_text(WARMUP) == text("grant.not_admin"), args
        for telegram_id in (33, STRANGER, LEADER):
            assert await role_of(h, telegram_id) < Role.LEADER


async def test_a_non_leader_hears_not_a_leader_before_any_option_is_read(
    store: SqlStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(BROKEN, encoding="utf-8")
    async with running_bot(store, NOW) as h:
        world(h)
        for args in ("", "capacity=²", "start=soon", "bogus=1", str(outside), "x" * 4000):
            await h.say(WARMUP, STRANGER, f"/launch {args}".strip())
            assert h.last_text(WARMUP) == text("launch.not_leader"), args[:20]
        for args in ("", "A B", "NOPE"):
            await h.say(TASKS, STRANGER, f"/taskgroup {args}".strip())
            assert h.last_text(TASKS) == text("leader.only"), args
        assert await no_cohort(h)


@pytest.mark.parametrize(
    "name",
    [
        "x" * 4000,  # once an OSError: file name too long
        "x" * 65,
        "../seven-plus-twentyone",
        "~/seven-plus-twentyone",
        "funnels/scripts/library/seven-plus-twentyone",
        "seven-plus-twentyone.en",
        "seven-plus-twentyone.en.yaml",
        "x.yaml",
        "a\\b",
        "a\x00b",
        "..",
        ".",
        "脚本",
    ],
)
async def test_launch_takes_script_names_from_the_library_only(store: SqlStore, name: str) -> None:
    async with running_bot(store, NOW) as h:
        world(h)
        await h.say(ADMIN, ADMIN, f"/grant_leader {LEADER} SEA")
        await h.say(WARMUP, LEADER, f"/launch {name}")
        names = ", ".join(available_scripts())
        assert h.last_text(WARMUP) == text("launch.bad_script_name", names=names)
        assert await no_cohort(h)


async def test_launch_never_opens_a_file_by_its_path(store: SqlStore, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(spring_line("Asia/Singapore"), encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN, encoding="utf-8")
    async with running_bot(store, NOW) as h:
        world(h)
        await h.say(ADMIN, ADMIN, f"/grant_leader {LEADER} SEA")
        names = ", ".join(available_scripts())
        for path in (good, broken, tmp_path / "good", Path("/etc/passwd")):
            await h.say(WARMUP, LEADER, f"/launch {path}")
            assert h.last_text(WARMUP) == text("launch.bad_script_name", names=names)
        assert all("bogus" not in t for t in h.texts(WARMUP))
        await h.say(WARMUP, LEADER, "/launch good")  # a plain name, but not in the library
        assert h.last_text(WARMUP) == text("launch.unknown_script", name="good", names=names)
        assert await no_cohort(h)


async def test_a_plain_name_finds_a_script_in_the_scripts_dir(
    store: SqlStore, tmp_path: Path
) -> None:
    (tmp_path / "spring_line.yaml").write_text(spring_line("Asia/Singapore"), encoding="utf-8")
    async with running_bot(store, NOW) as h:
        h.services.settings.scripts_dir = tmp_path
        world(h)
        await h.say(ADMIN, ADMIN, f"/grant_leader {LEADER} SEA")
        await h.say(WARMUP, LEADER, "/launch spring_line start=2026-03-02")
        async with h.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(WARMUP)
        assert cohort is not None and cohort.script_id == "spring_line", h.last_text(WARMUP)


async def test_a_broken_library_script_is_reported_to_ops_not_to_the_group(
    store: SqlStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN, encoding="utf-8")
    caplog.set_level(logging.WARNING, logger="funnelbot")
    async with running_bot(store, NOW) as h:
        h.services.settings.scripts_dir = tmp_path
        world(h)
        await h.say(ADMIN, ADMIN, f"/grant_leader {LEADER} SEA")
        private_before = len(h.texts(LEADER))
        await h.say(WARMUP, LEADER, "/launch broken")
        assert h.last_text(WARMUP) == text("launch.script_unusable", name="broken")
        assert h.texts(LEADER)[private_before:] == [
            text("launch.script_unusable_leader", name="broken")
        ]
        assert all("bogus" not in t for t in h.texts(WARMUP) + h.texts(LEADER))
        assert await no_cohort(h)
    (record,) = [r for r in caplog.records if str(broken) in r.getMessage()]
    assert record.levelno == logging.WARNING and "bogus" in record.getMessage()
    assert record.exc_info is None  # a line for ops, not a traceback


async def test_a_leader_who_never_pressed_start_still_gets_the_group_reply(
    store: SqlStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    caplog.set_level(logging.WARNING, logger="funnelbot")
    async with running_bot(store, NOW) as h:
        h.services.settings.scripts_dir = tmp_path
        world(h)
        await h.say(ADMIN, ADMIN, f"/grant_leader {SHY_LEADER} SEA")
        await h.say(WARMUP, SHY_LEADER, "/launch broken")
        assert h.last_text(WARMUP) == text("launch.script_unusable", name="broken")
        assert h.texts(SHY_LEADER) == []  # Telegram refused the private note
        assert await no_cohort(h)
    assert any(f"reply in {SHY_LEADER} failed" in r.getMessage() for r in caplog.records)


async def test_dates_and_options_are_refused_and_quoted_back_briefly(store: SqlStore) -> None:
    async with running_bot(store, NOW) as h:
        world(h)
        await h.say(ADMIN, ADMIN, f"/grant_leader {LEADER} SEA")
        for far in ("9999-12-31", "2027-06-01"):  # the first once overflowed the calendar
            await h.say(WARMUP, LEADER, f"/launch start={far}")
            assert h.last_text(WARMUP) == text("launch.far_date", value=far, days=366)
        await h.say(WARMUP, LEADER, "/launch start=" + "9" * 3000)
        assert h.last_text(WARMUP) == text("launch.bad_date", value="9" * 37 + "...")
        await h.say(WARMUP, LEADER, "/launch " + "x" * 3000 + "=1")
        usage = "\n" + text("launch.usage")
        assert h.last_text(WARMUP) == text("launch.bad_option", option="x" * 37 + "...") + usage
        await h.say(WARMUP, LEADER, "/launch one two")
        assert h.last_text(WARMUP) == text("launch.bad_option", option="two") + usage
        assert await no_cohort(h)


async def test_a_capacity_past_the_budget_is_told_in_the_leaders_words(
    store: SqlStore, tmp_path: Path
) -> None:
    """The refusal comes from the domain as a code with amounts in minor units; the group
    reads it in the leader's language, with money written as money."""
    # 100 seats x 5.00 of rewards + a 20.00 envelope fit the 600.00 budget; 200 do not.
    (tmp_path / "spring_line.yaml").write_text(spring_line("Asia/Singapore"), encoding="utf-8")
    async with running_bot(store, NOW) as h:
        world(h)
        h.services.settings.scripts_dir = tmp_path
        await h.say(ADMIN, ADMIN, f"/grant_leader {LEADER} SEA")
        await h.say(WARMUP, LEADER, "/launch spring_line capacity=200")
        money = CATALOG.money
        assert h.last_text(WARMUP) == text(
            "launch.over_budget",
            budget=money("en", 60000, "EUR"),
            capacity=200,
            needed=money("en", 102000, "EUR"),
        )
        assert await no_cohort(h)


async def test_a_leader_removed_cannot_launch_at_their_very_next_command(
    store: SqlStore,
) -> None:
    async with running_bot(store, NOW) as h:
        world(h)
        await h.say(ADMIN, ADMIN, f"/grant_leader {SHY_LEADER} SEA")
        assert await role_of(h, SHY_LEADER) == Role.LEADER
        await RevokeLeader(h.services.deps)(telegram_id=SHY_LEADER, is_admin=True)
        await h.say(WARMUP, SHY_LEADER, "/launch")
        assert h.last_text(WARMUP) == text("launch.not_leader")
        await h.say(TASKS, SHY_LEADER, "/taskgroup ANY")
        assert h.last_text(TASKS) == text("leader.only")
        assert await no_cohort(h)
