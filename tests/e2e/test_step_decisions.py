"""/retry, /skip and /status end to end: a talk whose first part got no answer from
Telegram waits, the leader sees it in /status and decides in the group; strangers are
refused whatever they type."""

from __future__ import annotations

from bot.telegram.i18n import Catalog
from storage.uow import SqlStore
from tests.e2e.test_faults import launched, world
from tests.support.harness import ADMIN, LEADER, WARMUP, Harness, at, running_bot

CATALOG = Catalog.load()
TALK = "d2_talk_retail"
HELD = [f"{TALK}.p{n}" for n in range(1, 5)]
MEMBER = 1001


def text(key: str, **params: object) -> str:
    return CATALOG.text("en", key, **params)


async def statuses(h: Harness, *keys: str) -> list[str]:
    async with h.store.transaction() as tx:
        cohort = await tx.cohorts.by_chat(WARMUP)
        assert cohort is not None
        runs = [await tx.steps.get(cohort.id, key) for key in keys]
    return [run.status if run else "-" for run in runs]


PARTS = (  # how each part of the talk begins, in the shipped English script
    "Retail then and now",
    "The second stage came",
    "The third stage was",
    "Today we're in a fourth stage",
    "To sum up, three things",
)


def talk_texts(h: Harness) -> list[str]:
    """The talk's parts the group got, each named by the index of its opening words."""
    return [str(n) for t in h.texts(WARMUP) for n, start in enumerate(PARTS) if t.startswith(start)]


async def talk_in_doubt(h: Harness) -> None:
    """The talk's first part is answered with a proxy's error page: in doubt."""
    world(h)
    h.api.set_member(WARMUP, MEMBER, "member")
    h.api.set_member(WARMUP, ADMIN, "member")
    await launched(h)
    await h.run_until(at(2, "19:59"))
    h.api.break_next("sendMessage")
    await h.run_until(at(2, "20:15"))
    assert await statuses(h, TALK, *HELD) == ["unknown"] + ["held"] * 4
    assert talk_texts(h) == []


async def test_the_leader_sees_the_talk_waiting_and_retries_it(store: SqlStore) -> None:
    async with running_bot(store, at(0, "10:00")) as h:
        await talk_in_doubt(h)

        await h.say(WARMUP, LEADER, "/status")
        assert h.last_text(WARMUP).splitlines()[-3:] == [
            CATALOG.text(
                "en",
                "status.attention",
                count=1,
                steps=f"{TALK} ({text('step.state.unknown')})",
            ),
            text("status.held", steps=", ".join(HELD)),
            text("status.decide", step=TALK),
        ]
        assert "Reply /retry d2_talk_retail to send it again or /skip" in h.last_text(WARMUP)

        await h.say(WARMUP, LEADER, f"/retry {TALK}")

        assert h.last_text(WARMUP) == "\n".join(
            [text("step.retried", step=TALK), text("step.talk_goes_on", steps=", ".join(HELD))]
        )
        await h.run_until(at(2, "20:40"))
        assert talk_texts(h) == ["0", "1", "2", "3", "4"]
        assert await statuses(h, TALK, *HELD) == ["done"] * 5
        await h.say(WARMUP, LEADER, "/status")
        assert "/retry" not in h.last_text(WARMUP)


async def test_the_leader_skips_the_part_in_doubt_and_the_talk_goes_on(
    store: SqlStore,
) -> None:
    async with running_bot(store, at(0, "10:00")) as h:
        await talk_in_doubt(h)

        await h.say(WARMUP, LEADER, f"/skip {TALK}")

        assert h.last_text(WARMUP).startswith(text("step.skipped", step=TALK))
        await h.run_until(at(2, "20:40"))
        assert talk_texts(h) == ["1", "2", "3", "4"]
        assert await statuses(h, TALK, *HELD) == ["skipped"] + ["done"] * 4


async def test_bad_decisions_get_a_clear_answer_and_change_nothing(store: SqlStore) -> None:
    async with running_bot(store, at(0, "10:00")) as h:
        await talk_in_doubt(h)
        async with h.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(WARMUP)
        assert cohort is not None

        for sent, expected in (
            ("/retry", text("step.usage", command="retry")),
            ("/skip a b", text("step.usage", command="skip")),
            ("/retry d9_nothing", text("step.no_step", code=cohort.code, step="d9_nothing")),
            (
                f"/skip {HELD[0]}",
                text("step.waiting", step=HELD[0], on=TALK),
            ),
            (
                "/retry d1_welcome",
                text("step.cannot_retry", step="d1_welcome", status=text("step.state.done")),
            ),
            (
                "/skip d3_recap",
                text("step.cannot_skip", step="d3_recap", status=text("step.state.pending")),
            ),
        ):
            await h.say(WARMUP, LEADER, sent)
            assert h.last_text(WARMUP) == expected, sent
        assert await statuses(h, TALK, *HELD, "d1_welcome", "d3_recap") == (
            ["unknown"] + ["held"] * 4 + ["done", "pending"]
        )


async def test_a_member_is_refused_before_anything_is_read(store: SqlStore) -> None:
    async with running_bot(store, at(0, "10:00")) as h:
        await talk_in_doubt(h)

        for sent in ("/retry", "/skip", f"/retry {TALK}", f"/skip {TALK}", "/skip nonsense x"):
            await h.say(WARMUP, MEMBER, sent)
            assert h.last_text(WARMUP) == text("leader.only"), sent
        await h.say(MEMBER, MEMBER, f"/retry {TALK}")
        assert h.last_text(MEMBER) == text("error.group_only")
        assert await statuses(h, TALK) == ["unknown"]

        await h.say(WARMUP, ADMIN, f"/retry {TALK}")  # a bootstrap admin may decide
        assert h.last_text(WARMUP).startswith(text("step.retried", step=TALK))
        assert await statuses(h, TALK) == ["pending"]
