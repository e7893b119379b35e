"""The service's parts of tracked links: ``FUNNELBOT_PUBLIC_URL`` and the addresses made
from it, and the click writer (clicks stored in order, in group commits, before the
redirect; a failed write reaches the route, which redirects anyway)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from bot.cli.common import settings_problems
from bot.http.links import ClickWriter
from bot.settings import Settings
from funnels.kernel.records import TrackedLinkRecord
from funnels.ladder.links import Click, LinkTarget

TARGET = LinkTarget(
    TrackedLinkRecord("ABCDEFGHJK", 1, 2, "REF", "invite_fans"), "https://a.example"
)
AT = datetime(2026, 3, 1, tzinfo=UTC)


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_tracked_links_start_at_the_public_url() -> None:
    assert settings(public_url="https://go.example.com/").tracked_link("X") == (
        "https://go.example.com/r/X"
    )
    assert settings(public_url="https://go.example.com/funnel").links_base == (
        "https://go.example.com/funnel"
    )


def test_without_a_public_url_links_start_at_this_process() -> None:
    plain = settings(http_host="0.0.0.0", http_port=9000)
    assert plain.public_url is None
    assert plain.tracked_link("X") == "http://0.0.0.0:9000/r/X"
    assert settings(public_url="  ").public_url is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://go.example.com", "not an http or https address"),
        ("go.example.com", "not an http or https address"),
        ("https://", "names no host"),
        ("https://go.example.com/?a=1", "no ?query or #fragment"),
    ],
)
def test_a_bad_public_url_is_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(public_url=url)
    [line] = settings_problems(caught.value)
    assert line.startswith("FUNNELBOT_PUBLIC_URL: ") and message in line


def clicks(n: int) -> list[Click]:
    return [Click(TARGET, f"visitor{i}", AT) for i in range(n)]


class Applier:
    """Stands in for the event applier: counts how often it is woken, and how many
    stores it was told were in progress at once."""

    def __init__(self) -> None:
        self.woken = 0
        self.storing_now = 0
        self.most_storing = 0

    def wake(self) -> None:
        self.woken += 1

    @contextlib.contextmanager
    def storing(self) -> Iterator[None]:
        self.storing_now += 1
        self.most_storing = max(self.most_storing, self.storing_now)
        try:
            yield
        finally:
            self.storing_now -= 1


async def test_clicks_are_stored_in_order_in_group_commits_before_add_returns() -> None:
    written: list[list[str]] = []

    async def write(batch: list[Click]) -> None:
        written.append([c.visitor for c in batch])
        await asyncio.sleep(0)

    applier = Applier()
    writer = ClickWriter(write, applier)  # type: ignore[arg-type]
    await asyncio.gather(*(writer.add(c) for c in clicks(50)))

    # Every add returned after its click was written: nothing is left to write.
    assert [v for batch in written for v in batch] == [f"visitor{i}" for i in range(50)]
    assert len(written) < 50  # clicks of one loop turn share a write
    assert applier.woken == 50
    # The applier knew the stores were in progress (it holds back meanwhile), and that
    # they are over.
    assert (applier.most_storing, applier.storing_now) == (50, 0)


async def test_a_failed_write_reaches_the_caller_and_wakes_nothing() -> None:
    async def broken(batch: list[Click]) -> None:
        raise RuntimeError("database down")

    applier = Applier()
    writer = ClickWriter(broken, applier)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="database down"):
        await writer.add(clicks(1)[0])
    assert applier.woken == 0
    assert applier.storing_now == 0
