"""``POST /telegram/webhook`` in front of the real dispatcher: an update is answered 200
once stored, whatever its handling does; anything that is not an update gets a clear
4xx; nothing ever gets a 500 (a 500 makes Telegram send the same thing again and again).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from bot import metrics
from bot.composition import build_inbox
from bot.http.app import create_app
from bot.http.webhook import MAX_UPDATE_BYTES, TelegramWebhook
from bot.telegram.inbox import UpdateInbox
from funnels.cohorts.launch import StartCohort
from funnels.kernel.actor import Actor
from funnels.kernel.messaging import EnvelopeOffer
from funnels.scripts.library import DEFAULT_SCRIPT, script_path
from funnels.scripts.loader import load_script
from funnels.warmup.joins import MemberJoined
from storage.models import EnvelopeShare
from storage.uow import SqlStore
from tests.support.api import problem
from tests.support.harness import Harness, running_bot
from tests.support.process import free_port
from tests.support.stored import update_states

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
SECRET = "s3cret-token"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
MEMBER = 61


@dataclass
class Hook:
    harness: Harness
    inbox: UpdateInbox
    client: httpx.AsyncClient

    async def post(self, body: Any, **kwargs: Any) -> httpx.Response:
        return await self.client.post("/telegram/webhook", json=body, headers=HEADERS, **kwargs)

    async def states(self) -> dict[int, tuple[str, str | None]]:
        return await update_states(self.harness.store)


@pytest.fixture
async def hook(store: SqlStore) -> AsyncIterator[Hook]:
    async with running_bot(store, NOW) as h:
        h.api.add_user(MEMBER, "Ann")
        inbox = build_inbox(store, h.services, h.dp)
        app = create_app(store.engine, TelegramWebhook(inbox, SECRET))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
            yield Hook(h, inbox, client)
        await inbox.drain(5.0)


async def test_an_update_is_stored_answered_and_handled(hook: Hook) -> None:
    update = hook.harness.api.start_bot(MEMBER)
    response = await hook.post(update)
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert await hook.inbox.drain(5.0)
    assert "Ann" in hook.harness.last_text(MEMBER)
    assert (await hook.states())[update["update_id"]] == ("handled", None)


async def test_the_same_update_twice_is_handled_once(hook: Hook) -> None:
    update = hook.harness.api.start_bot(MEMBER)
    assert (await hook.post(update)).status_code == 200
    assert (await hook.post(update)).status_code == 200
    assert await hook.inbox.drain(5.0)
    assert len(hook.harness.api.messages(MEMBER)) == 1  # one welcome


async def test_an_update_that_cannot_be_handled_is_200_and_recorded_as_failed(
    hook: Hook,
) -> None:
    response = await hook.post({"update_id": 7, "message": {"text": "no chat, no date"}})
    assert response.status_code == 200
    assert await hook.inbox.drain(5.0)
    state, error = (await hook.states())[7]
    assert state == "failed"
    assert error is not None and error.startswith("not a valid update: message")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"update_id": "7"}, "update_id must be an integer"),
        ({"update_id": 7.0}, "update_id must be an integer"),
        ({"update_id": True}, "update_id must be an integer"),
        ({"update_id": -1}, "update_id is outside Telegram's range"),
        ({"update_id": 2**63}, "update_id is outside Telegram's range"),
        ({"message": {}}, "update_id must be an integer"),
        ([{"update_id": 1}], "an update is a JSON object"),
        ("hello", "an update is a JSON object"),
        (
            {"update_id": 8, "message": {"from": {"id": 2**63 + 5}}},
            "id is outside Telegram's range",
        ),
        (
            {"update_id": 8, "message": {"chat": {"id": -(2**70)}}},
            "id is outside Telegram's range",
        ),
        (
            {"update_id": 8, "chat_member": {"x": [{"user_id": 2**60}]}},
            "user_id is outside Telegram's range",
        ),
    ],
)
async def test_what_is_not_an_update_is_refused_and_not_stored(
    hook: Hook, body: Any, error: str
) -> None:
    response = await hook.post(body)
    assert problem(response, 400)["detail"] == f"not a Telegram update: {error}"
    assert await hook.states() == {}


@pytest.mark.parametrize(
    "content",
    [
        b"{",
        b"not json",
        b"\xff\xfe\x00",
        b"",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"update_id": 1' + b"1" * 5000 + b"}",
    ],
    ids=["cut", "text", "not utf-8", "empty", "nested 100k deep", "a 5000-digit number"],
)
async def test_a_body_that_is_not_json_is_400(hook: Hook, content: bytes) -> None:
    response = await hook.client.post("/telegram/webhook", content=content, headers=HEADERS)
    assert "JSON" in problem(response, 400)["detail"]
    assert await hook.states() == {}


async def test_a_body_over_the_limit_is_413_whether_or_not_it_says_its_length(
    hook: Hook,
) -> None:
    big = json.dumps({"update_id": 1, "padding": "x" * MAX_UPDATE_BYTES}).encode()
    response = await hook.client.post("/telegram/webhook", content=big, headers=HEADERS)
    assert problem(response, 413)["detail"] == f"the limit is {MAX_UPDATE_BYTES} bytes"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: streamed
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    response = await hook.client.post("/telegram/webhook", content=chunks(), headers=HEADERS)
    assert response.status_code == 413
    huge = {**HEADERS, "Content-Length": "9" * 40}
    response = await hook.client.post("/telegram/webhook", content=b"{}", headers=huge)
    assert response.status_code in (400, 413)  # never a 500
    assert await hook.states() == {}


@pytest.mark.parametrize("secret", [None, "nope", SECRET + "x", "sécret", "\x00"], ids=repr)
async def test_without_the_secret_nothing_is_stored(hook: Hook, secret: str | None) -> None:
    headers = {"Content-Type": "application/json"}
    if secret is not None:  # sent as raw bytes: a header need not be ASCII
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret.encode()  # type: ignore[assignment]
    update = hook.harness.api.start_bot(MEMBER)
    response = await hook.client.post(
        "/telegram/webhook", content=json.dumps(update).encode(), headers=headers
    )
    assert "secret token" in problem(response, 401)["detail"]
    assert await hook.states() == {}


async def test_an_update_that_cannot_be_stored_is_503_so_telegram_sends_it_again(
    hook: Hook,
) -> None:
    await hook.harness.store.engine.dispose()
    hook.inbox.store = SqlStore(_unreachable(hook.harness.store))
    response = await hook.post(hook.harness.api.start_bot(MEMBER))
    assert "send it again" in problem(response, 503)["detail"]
    assert response.headers["Retry-After"] == "5"


def _unreachable(store: SqlStore) -> Any:
    from storage.db import create_engine

    if store.engine.dialect.name == "sqlite":
        return create_engine("sqlite+aiosqlite:////nonexistent-dir/inbox.db")
    url = store.engine.url.set(port=1).render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=False)


# ------------------------------------------------------------------ fuzz

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_KEYS = st.sampled_from(
    [
        "message",
        "edited_message",
        "callback_query",
        "chat_member",
        "my_chat_member",
        "chat_join_request",
        "channel_post",
        "id",
        "from",
        "chat",
        "text",
        "data",
        "new_chat_member",
        "user",
        "date",
        "migrate_to_chat_id",
        "invite_link",
        "status",
    ]
)


def _mutated(update: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A real update with one field somewhere replaced by anything at all."""

    def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        out = [prefix] if prefix else []
        if isinstance(node, dict):
            for key, value in node.items():
                out += paths(value, (*prefix, key))
        return out

    def apply(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
        copy = json.loads(json.dumps(update))
        node = copy
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return copy

    return st.builds(apply, st.sampled_from(paths(update)), _JSON)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_fuzz_the_webhook_never_answers_500(hook: Hook, data: st.DataObject) -> None:
    api = hook.harness.api
    real = [
        api.start_bot(MEMBER),
        api.say(MEMBER, MEMBER, "/tasks"),
        {
            "update_id": 900,
            "callback_query": {
                "id": "q",
                "from": {"id": MEMBER, "is_bot": False, "first_name": "Ann"},
                "chat_instance": "1",
                "data": "grab:1",
            },
        },
    ]
    body = data.draw(
        st.one_of(
            st.sampled_from(real).flatmap(_mutated),
            st.dictionaries(_KEYS, _JSON, max_size=3).map(lambda d: {"update_id": 5, **d}),
            _JSON,
        )
    )
    response = await hook.post(body)
    assert response.status_code in (200, 400), response.text
    assert await hook.inbox.drain(5.0)  # the handling ended too, with no stray exception


GROUP = -100777


def _metric(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_tap_is_answered_in_the_webhooks_own_reply(store: SqlStore) -> None:
    """Telegram pushes taps to the webhook (over real HTTP) and makes the method call the
    reply carries: each tap's answer, with no request of the bot's own."""
    async with running_bot(store, NOW) as h:
        api, services = h.api, h.services
        api.add_group(GROUP, "Taps", supergroup=True)
        members = [7001, 7002, 7003]
        for tg in members:
            api.add_user(tg, f"M{tg}")
            api.set_member(GROUP, tg, "member")
        loaded = load_script(script_path(DEFAULT_SCRIPT, "en"))
        cohort = await StartCohort(services.deps)(
            loaded, start=NOW.date(), code="HOOK1", capacity=3, warmup_chat_id=GROUP
        )
        join = MemberJoined(services.deps)
        for tg in members:
            joined = await join(GROUP, Actor(tg, f"M{tg}", "en"))
            services.users.remember(tg, joined.user_id, "en")
        async with store.transaction() as tx:
            envelope = await tx.envelopes.open(
                cohort.id, "hook_envelope", "USD", [100, 250], NOW, NOW + timedelta(minutes=10)
            )
            await tx.commit()
        offer = EnvelopeOffer(envelope.id, 350, "USD", 2, envelope.expires_at, None, "en")
        message_id = await services.messenger.send(GROUP, offer)
        async with store.transaction() as tx:
            await tx.envelopes.set_message(envelope.id, GROUP, message_id)
            await tx.commit()

        inbox = build_inbox(store, services, h.dp)
        app = create_app(store.engine, TelegramWebhook(inbox, SECRET))
        claimed = _metric("funnelbot_envelope_claims_total", outcome="claimed")
        taps = _metric("funnelbot_tap_answer_seconds_count")
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        serving = asyncio.create_task(server.serve())
        try:
            for _ in range(500):
                if server.started:
                    break
                await asyncio.sleep(0.01)
            await h.bot.set_webhook(
                f"http://127.0.0.1:{port}/telegram/webhook", secret_token=SECRET
            )
            queries = [api.tap(GROUP, message_id, tg)["callback_query"]["id"] for tg in members]
            for _ in range(500):
                if len(api.answers_to(queries)) == 3:
                    break
                await asyncio.sleep(0.01)
            answers = api.answers_to(queries)
            assert len(answers) == 3, answers
            calls = api.calls_of("answerCallbackQuery")
            assert {c.via for c in calls} == {"webhook reply"}  # none of the bot's own
            texts = [answers[q].text or "" for q in queries]
            assert [answers[q].show_alert for q in queries] == [True, True, False]
            assert "$" in texts[0] and "$" in texts[1] and "$" not in texts[2]
            for _ in range(500):  # the last share closes it: the offer shows who got what
                if api.calls_of("editMessageText") or api.calls_of("editMessageReplyMarkup"):
                    break
                await asyncio.sleep(0.01)
            assert api.calls_of("editMessageText") or api.calls_of("editMessageReplyMarkup")
            async with store.engine.connect() as conn:
                shares = (
                    await conn.execute(
                        select(func.count()).where(EnvelopeShare.user_id.is_not(None))
                    )
                ).scalar()
            assert shares == 2
            # Counted for /metrics: two shares claimed, three taps answered.
            assert _metric("funnelbot_envelope_claims_total", outcome="claimed") == claimed + 2
            assert _metric("funnelbot_tap_answer_seconds_count") == taps + 3
        finally:
            server.should_exit = True
            await serving
            await inbox.drain(5.0)
