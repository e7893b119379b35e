"""A task's target (``link: {target: …}``): a full http(s) address or a clear error at
its line; the library scripts give each task that needs a link a placeholder target."""

from __future__ import annotations

from pathlib import Path

import pytest

from funnels.scripts.loader import load_script_text
from tests.support.scripts import edit, line_of, only_error

LIBRARY = Path(__file__).resolve().parents[2] / "funnels" / "scripts" / "library"
AFTER_UNLOCK = "      unlock: {day: 1}\n"


def with_target(target: str) -> str:
    return edit(AFTER_UNLOCK, AFTER_UNLOCK + f"      link: {{target: {target}}}\n")


def test_a_task_declares_its_target() -> None:
    loaded = load_script_text(with_target('"https://shop.example.com/deal?utm=x"'))
    task = loaded.script.task("invite_fans")
    assert task.link is not None
    assert task.link.target == "https://shop.example.com/deal?utm=x"
    assert loaded.script.task("first_order").link is None


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ('"ftp://shop.example.com/deal"', "is not an http or https address"),
        ('"javascript:alert(1)"', "is not an http or https address"),
        ('"shop.example.com/deal"', "is not an http or https address"),
        ('"https:///deal"', "names no host"),
        ('"https://shop.example.com:99999/"', "names no host"),
        ('"https://shop.example.com/a deal"', "spaces or control characters"),
        ('"https://shop.example.com/' + "a" * 2100 + '"', "at most 2048"),
    ],
)
def test_a_bad_target_is_reported_at_its_line(target: str, message: str) -> None:
    text = with_target(target)
    problem = only_error(text)
    assert problem.field == "tasks.ladder[invite_fans].link.target"
    assert problem.line == line_of(text, "link: {target:")
    assert message in problem.message


def test_a_link_takes_only_a_target() -> None:
    text = edit(AFTER_UNLOCK, AFTER_UNLOCK + '      link: {target: "https://a.example", to: "x"}\n')
    problem = only_error(text)
    assert problem.field.startswith("tasks.ladder[invite_fans].link")


@pytest.mark.parametrize("locale", ["en", "es", "zh-CN"])
def test_the_library_scripts_link_the_tasks_that_need_one(locale: str) -> None:
    path = LIBRARY / f"seven-plus-twentyone.{locale}.yaml"
    script = load_script_text(path.read_text(encoding="utf-8"), str(path)).script
    linked = {t.id: t.link.target for t in script.tasks.ladder if t.link is not None}
    assert set(linked) == {"invite_fans", "share_deal", "first_order"}
    assert all(url.startswith("https://shop.example.com/") for url in linked.values())
