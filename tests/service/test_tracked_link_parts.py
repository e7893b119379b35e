"""The service's parts of tracked links: ``FUNNELBOT_PUBLIC_URL`` and the addresses made
from it, and the write-behind buffer of clicks (order kept, failures retried, a batch
that keeps failing dropped rather than blocking the rest)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from bot.http import links as http_links
from bot.http.links import ClickBuffer
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
    with pytest.raises(ValidationError, match="FUNNELBOT_PUBLIC_URL") as caught:
        settings(public_url=url)
    assert message in str(caught.value)


def clicks(n: int) -> list[Click]:
    return [Click(TARGET, f"visitor{i}", AT) for i in range(n)]


async def test_clicks_are_written_in_order_in_batches() -> None:
    written: list[list[str]] = []

    async def write(batch: list[Click]) -> None:
        written.append([c.visitor for c in batch])
        await asyncio.sleep(0)

    buffer = ClickBuffer(write)
    await asyncio.gather(*(buffer.add(c) for c in clicks(50)))
    await buffer.drain()
    assert [v for batch in written for v in batch] == [f"visitor{i}" for i in range(50)]
    assert len(written) < 50  # clicks of one loop turn share a write


async def test_a_failed_write_is_tried_again_then_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_links, "RETRIES", (0.0, 0.0))
    calls: list[int] = []
    failures = [RuntimeError("deadlock")]

    async def flaky(batch: list[Click]) -> None:
        calls.append(len(batch))
        if failures:
            raise failures.pop()

    buffer = ClickBuffer(flaky)
    await buffer.add(clicks(1)[0])
    await buffer.drain()
    assert calls == [1, 1]  # failed once, then written

    async def broken(batch: list[Click]) -> None:
        calls.append(-len(batch))
        raise RuntimeError("down")

    buffer = ClickBuffer(broken)
    await buffer.add(clicks(1)[0])
    await buffer.drain()
    assert calls[2:] == [-1, -1, -1]  # the first try and two retries, then dropped


async def test_a_buffer_far_behind_makes_new_clicks_wait() -> None:
    release = asyncio.Event()
    written: list[int] = []

    async def slow(batch: list[Click]) -> None:
        await release.wait()
        written.append(len(batch))

    buffer = ClickBuffer(slow, limit=3)
    for click in clicks(3):
        await buffer.add(click)  # under the limit: no wait
    over = asyncio.create_task(buffer.add(clicks(1)[0]))
    await asyncio.sleep(0.01)
    assert not over.done()
    release.set()
    await over
    assert sum(written) == 4
