"""The local Bot API server (tests/botapi) as the real aiogram client sees it.

Every call goes through aiogram's ``Bot`` over HTTP on 127.0.0.1, so these tests pin both
the shapes the server answers with (aiogram validates them) and the exceptions aiogram
raises for its errors. Flood windows and timeouts are scaled down to keep the file fast.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    ChatPermissions,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from aiohttp import web

from tests.botapi import SECRET_HEADER, LocalBotAPI
from tests.botapi.remote import RemoteBotAPI
from tests.support.loopback import LoopbackSession

GROUP = -1001
BASIC_GROUP = -2002
ANN, BOB, CAT = 101, 102, 103

KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="Join", callback_data="join:7")]]
)


@asynccontextmanager
async def connected(api: LocalBotAPI, token: str | None = None) -> AsyncIterator[Bot]:
    session = LoopbackSession(api=TelegramAPIServer.from_base(api.base_url))
    bot = Bot(token or api.token, session=session)
    try:
        yield bot
    finally:
        await session.close()


def populate(api: LocalBotAPI) -> None:
    api.add_user(ANN, "Ann", username="ann", started_bot=True)
    api.add_user(BOB, "Bob")
    api.add_user(CAT, "Cat", started_bot=True)
    api.add_group(GROUP, "Warm-up", supergroup=True, members=[ANN, BOB], owner=CAT)
    api.add_group(BASIC_GROUP, "Basic", members=[ANN])


@pytest.fixture
async def api() -> AsyncIterator[LocalBotAPI]:
    async with LocalBotAPI(group_window=1.0, private_interval=0.3, callback_timeout=0.3) as server:
        populate(server)
        yield server


@pytest.fixture
async def bot(api: LocalBotAPI) -> AsyncIterator[Bot]:
    async with connected(api) as client:
        yield client


def validate(bot: Bot, update: dict[str, Any]) -> Update:
    """What aiogram's dispatcher would make of the update (fails on a wrong shape)."""
    return Update.model_validate(update, context={"bot": bot})


# ---------------------------------------------------------------- basics


async def test_get_me_is_the_bot_of_the_token(api: LocalBotAPI, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (42, True, "test_bot")
    assert api.bot_user["id"] == 42
    assert api.calls_of("getMe")[0].ok


async def test_unknown_token_method_and_method_case(api: LocalBotAPI) -> None:
    async with connected(api, token="42:WRONG") as stranger:
        with pytest.raises(TelegramUnauthorizedError):
            await stranger.get_me()
    async with aiohttp.ClientSession() as http:
        url = f"{api.base_url}/bot{api.token}"
        async with http.post(f"{url}/sendSticker", data={"chat_id": "1"}) as response:
            assert response.status == 404
            assert await response.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found: method not found",
            }
        async with http.post(f"{url}/SENDMESSAGE", json={"chat_id": ANN, "text": "hi"}) as response:
            body = await response.json()
    assert body["ok"] and body["result"]["text"] == "hi"
    assert api.calls[-1].method == "sendMessage"


async def test_send_edit_and_not_modified(api: LocalBotAPI, bot: Bot) -> None:
    sent = await bot.send_message(GROUP, "Day 1", reply_markup=KEYBOARD)
    assert sent.from_user is not None and sent.from_user.id == 42
    assert sent.chat.type == "supergroup" and sent.reply_markup is not None
    assert sent.reply_markup.model_dump(exclude_none=True) == KEYBOARD.model_dump(exclude_none=True)

    edited = await bot.edit_message_text(
        "Day 1, updated", chat_id=GROUP, message_id=sent.message_id, reply_markup=KEYBOARD
    )
    assert not isinstance(edited, bool) and edited.edit_date is not None
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.edit_message_text(
            "Day 1, updated", chat_id=GROUP, message_id=sent.message_id, reply_markup=KEYBOARD
        )
    assert caught.value.message == (
        "Bad Request: message is not modified: specified new message content and reply markup "
        "are exactly the same as a current content and reply markup of the message"
    )
    # Without reply_markup an edit removes the keyboard, as on Telegram.
    await bot.edit_message_text("Day 1, updated", chat_id=GROUP, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=GROUP, message_id=999)

    [stored] = api.messages(GROUP)
    assert stored["text"] == "Day 1, updated" and "reply_markup" not in stored
    assert stored["edited"] == 2 and not stored["deleted"]
    assert [c.ok for c in api.calls_of("editMessageText")] == [True, False, True, False]


async def test_html_is_parsed_into_entities_and_broken_html_refused(bot: Bot) -> None:
    sent = await bot.send_message(ANN, "<b>Hi</b> &amp; welcome", parse_mode="HTML")
    assert sent.text == "Hi & welcome"
    assert sent.entities is not None and sent.entities[0].type == "bold"
    with pytest.raises(TelegramBadRequest, match="can't parse entities: Unsupported start tag"):
        await bot.send_message(ANN, "1 <3 you", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(ANN, " ")


# ---------------------------------------------------------------- flood limits


async def test_21st_group_send_in_a_window_is_429(api: LocalBotAPI, bot: Bot) -> None:
    for i in range(20):
        await bot.send_message(GROUP, f"message {i}")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(GROUP, "one too many")
    assert caught.value.retry_after >= 1
    assert f"Too Many Requests: retry after {caught.value.retry_after}" in caught.value.message
    assert api.too_many_requests == 1
    refused = api.calls_of("sendMessage")[-1]
    assert (refused.ok, refused.error_code, refused.chat_id) == (False, 429, GROUP)
    assert len(api.messages(GROUP)) == 20  # the refused call did not send

    await bot.send_message(BASIC_GROUP, "another group has its own window")
    await asyncio.sleep(1.0)
    await bot.send_message(GROUP, "the window slid on")


async def test_private_chats_take_one_message_per_interval(api: LocalBotAPI, bot: Bot) -> None:
    await bot.send_message(ANN, "first")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(ANN, "second")
    assert caught.value.retry_after == 1
    await bot.send_message(CAT, "another user is another chat")
    await asyncio.sleep(0.3)
    await bot.send_message(ANN, "second, later")


async def test_global_limit_and_limits_off() -> None:
    async with LocalBotAPI(global_per_second=3, private_interval=None) as api:
        populate(api)
        async with connected(api) as bot:
            for chat in (ANN, CAT, GROUP):
                await bot.send_message(chat, "hi")
            with pytest.raises(TelegramRetryAfter):
                await bot.send_message(BASIC_GROUP, "fourth in one second")
    async with LocalBotAPI(limits=None) as api:
        populate(api)
        async with connected(api) as bot:
            await asyncio.gather(*(bot.send_message(ANN, f"{i}") for i in range(40)))
        assert api.too_many_requests == 0


# ---------------------------------------------------------------- who the bot may write to


async def test_blocked_user_is_403(api: LocalBotAPI, bot: Bot) -> None:
    update = api.block_bot(ANN)
    member_update = validate(bot, update).my_chat_member
    assert member_update is not None and member_update.new_chat_member.status == "kicked"
    with pytest.raises(TelegramForbiddenError, match="Forbidden: bot was blocked by the user"):
        await bot.send_message(ANN, "still there?")
    api.start_bot(ANN)
    await bot.send_message(ANN, "welcome back")


async def test_no_first_message_except_after_a_join_request(api: LocalBotAPI, bot: Bot) -> None:
    with pytest.raises(TelegramForbiddenError) as caught:
        await bot.send_message(BOB, "hello")
    assert caught.value.message == "Forbidden: bot can't initiate conversation with a user"

    link = await bot.create_chat_invite_link(GROUP, creates_join_request=True)
    api.leave(GROUP, BOB)
    request = validate(bot, api.request_join(GROUP, BOB, link.invite_link)).chat_join_request
    assert request is not None and request.user_chat_id == BOB
    assert request.invite_link is not None and request.invite_link.creates_join_request
    await bot.send_message(request.user_chat_id, "Tell us about yourself")


async def test_migrated_group_answers_with_the_new_id(api: LocalBotAPI, bot: Bot) -> None:
    new_id = api.migrate(BASIC_GROUP)
    assert str(new_id).startswith("-100")
    with pytest.raises(TelegramMigrateToChat) as caught:
        await bot.send_message(BASIC_GROUP, "hello")
    assert caught.value.migrate_to_chat_id == new_id
    assert "Bad Request: group chat was upgraded to a supergroup chat" in caught.value.message
    sent = await bot.send_message(new_id, "hello again")
    assert sent.chat.type == "supergroup"

    messages = [validate(bot, u).message for u in api.pending_updates()]
    assert [(m.migrate_to_chat_id, m.migrate_from_chat_id) for m in messages if m] == [
        (new_id, None),
        (None, BASIC_GROUP),
    ]


async def test_kicked_and_restricted_bot(api: LocalBotAPI, bot: Bot) -> None:
    kicked = validate(bot, api.kick_bot(BASIC_GROUP)).my_chat_member
    assert kicked is not None and kicked.old_chat_member.status == "administrator"
    with pytest.raises(TelegramForbiddenError, match="bot was kicked from the group chat"):
        await bot.send_message(BASIC_GROUP, "hello")

    api.set_bot_rights(GROUP, "restricted", can_send_photos=True)
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.send_message(GROUP, "hello")
    assert (
        caught.value.message == "Bad Request: not enough rights to send text messages to the chat"
    )
    photo = await bot.send_photo(GROUP, "https://example.org/a.jpg")
    with pytest.raises(TelegramBadRequest, match="not enough rights to pin a message"):
        await bot.pin_chat_message(GROUP, photo.message_id)

    api.set_bot_rights(GROUP, "administrator", can_invite_users=False)
    with pytest.raises(TelegramBadRequest, match="not enough rights to manage chat invite link"):
        await bot.create_chat_invite_link(GROUP)
    await bot.pin_chat_message(GROUP, photo.message_id)
    assert api.messages(GROUP)[0]["pinned"]
    assert api.messages(GROUP)[0]["media_source"] == "https://example.org/a.jpg"

    api.set_bot_rights(GROUP, "left")
    with pytest.raises(TelegramForbiddenError, match="bot is not a member of the supergroup chat"):
        await bot.get_chat(GROUP)


# ---------------------------------------------------------------- callbacks


async def test_callback_answers_in_time_once_and_never_late(api: LocalBotAPI, bot: Bot) -> None:
    sent = await bot.send_message(GROUP, "Ready?", reply_markup=KEYBOARD)
    query = validate(bot, api.tap(GROUP, sent.message_id, ANN)).callback_query
    assert query is not None and query.data == "join:7"
    assert query.message is not None and query.message.message_id == sent.message_id
    await bot.answer_callback_query(query.id, text="Noted")
    assert api.callback_answers[query.id][:2] == ("Noted", False)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query.id)

    late = api.tap(GROUP, sent.message_id, BOB, data="custom")["callback_query"]
    assert late["data"] == "custom" and late["id"] != query.id
    await asyncio.sleep(0.35)
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.answer_callback_query(late["id"])
    assert caught.value.message == (
        "Bad Request: query is too old and response timeout expired or query ID is invalid"
    )


# ---------------------------------------------------------------- updates


async def test_long_poll_offset_and_allowed_updates(api: LocalBotAPI, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=3, allowed_updates=["message"]))
    await asyncio.sleep(0.1)
    api.say(GROUP, ANN, "hello everyone")
    updates = await asyncio.wait_for(poll, 2)
    assert [u.message.text for u in updates if u.message] == ["hello everyone"]

    # chat_member is not in the allowed set: only the service message arrives.
    api.add_user(104, "Dan")
    api.join(GROUP, 104)
    updates = await bot.get_updates(offset=updates[-1].update_id + 1)
    assert len(updates) == 1 and updates[0].message is not None
    assert updates[0].message.new_chat_members is not None

    await bot.get_updates(offset=updates[-1].update_id + 1, allowed_updates=["chat_member"])
    api.leave(GROUP, 104)
    updates = await bot.get_updates(offset=updates[-1].update_id + 1)
    assert [u.chat_member.new_chat_member.status for u in updates if u.chat_member] == ["left"]
    assert all(u.message is None for u in updates)  # "message" was dropped from the list
    await bot.get_updates(offset=updates[-1].update_id + 1)
    assert api.pending_updates() == []

    await bot.get_updates(allowed_updates=[])  # back to the default set
    redelivered = api.redeliver(api.say(ANN, ANN, "/help"))
    [first, again] = await bot.get_updates()
    assert first.message == again.message and again.update_id == redelivered["update_id"]


async def test_chat_member_updates_carry_the_invite_link(api: LocalBotAPI, bot: Bot) -> None:
    await bot.get_updates(allowed_updates=["message", "chat_member", "chat_join_request"])
    link = await bot.create_chat_invite_link(GROUP, name="cohort 7", member_limit=5)
    assert link.invite_link.startswith("https://t.me/+") and link.member_limit == 5
    assert (link.is_primary, link.is_revoked, link.creates_join_request) == (False, False, False)
    api.add_user(104, "Dan")
    joined = validate(bot, api.join(GROUP, 104, invite_link=link.invite_link)).chat_member
    assert joined is not None and joined.invite_link is not None
    assert joined.invite_link.name == "cohort 7"
    assert (joined.old_chat_member.status, joined.new_chat_member.status) == ("left", "member")
    assert api.invite_links[link.invite_link].joined == [104]
    assert await bot.get_chat_member_count(GROUP) == 5  # owner, Ann, Bob, Dan and the bot


async def test_webhook_pushes_updates_with_the_secret(api: LocalBotAPI, bot: Bot) -> None:
    received: list[tuple[dict[str, Any], str | None]] = []

    async def receive(request: web.Request) -> web.Response:
        update = await request.json()
        received.append((update, request.headers.get(SECRET_HEADER)))
        chat_id = update["message"]["chat"]["id"]
        return web.json_response({"method": "sendMessage", "chat_id": chat_id, "text": "pong"})

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
        assert await bot.set_webhook(url, secret_token="s3cret", drop_pending_updates=True)
        with pytest.raises(TelegramConflictError, match="webhook is active"):
            await bot.get_updates()
        api.say(ANN, ANN, "ping")
        for _ in range(100):
            if api.calls_of("sendMessage"):
                break
            await asyncio.sleep(0.02)
        [(update, secret)] = received
        assert update["message"]["text"] == "ping" and secret == "s3cret"
        reply = api.calls_of("sendMessage")[0]
        assert reply.ok and reply.params == {"chat_id": ANN, "text": "pong"}
        info = await bot.get_webhook_info()
        assert (info.url, info.pending_update_count) == (url, 0)
        assert await bot.delete_webhook()
        assert await bot.get_updates() == []
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------- invite links, join requests


async def test_invite_links_and_join_requests(api: LocalBotAPI, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.create_chat_invite_link(GROUP, member_limit=10, creates_join_request=True)
    assert caught.value.message == (
        "Bad Request: member limit can't be specified for links requiring administrator approval"
    )
    link = await bot.create_chat_invite_link(GROUP, creates_join_request=True)
    for user in (104, 105):
        api.add_user(user, f"User {user}")
        api.request_join(GROUP, user, link.invite_link)

    assert await bot.approve_chat_join_request(GROUP, 104)
    assert api.members(GROUP)[104].status == "member"
    assert api.members(GROUP)[104].invite_link == link.invite_link
    with pytest.raises(TelegramBadRequest, match="USER_ALREADY_PARTICIPANT"):
        await bot.approve_chat_join_request(GROUP, 104)

    assert await bot.decline_chat_join_request(GROUP, 105)
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.decline_chat_join_request(GROUP, 105)
    assert caught.value.message == "Bad Request: HIDE_REQUESTER_MISSING"
    states = {key: request.status for key, request in api.join_requests.items()}
    assert states == {(GROUP, 104): "approved", (GROUP, 105): "declined"}

    revoked = await bot.revoke_chat_invite_link(GROUP, link.invite_link)
    assert revoked.is_revoked


async def test_a_one_time_link_admits_one_member_at_a_time(api: LocalBotAPI, bot: Bot) -> None:
    link = await bot.create_chat_invite_link(GROUP, name="once", member_limit=1)
    for user in (104, 105):
        api.add_user(user, f"User {user}")
    joined = validate(bot, api.join(GROUP, 104, invite_link=link.invite_link)).chat_member
    assert joined is not None and joined.invite_link is not None
    assert joined.invite_link.member_limit == 1
    with pytest.raises(ValueError, match="reached its member_limit"):
        api.join(GROUP, 105, invite_link=link.invite_link)
    # Telegram counts members who joined by it and are still there: one left, one may come.
    api.leave(GROUP, 104)
    api.join(GROUP, 105, invite_link=link.invite_link)
    assert (await bot.revoke_chat_invite_link(GROUP, link.invite_link)).is_revoked
    api.leave(GROUP, 105)
    with pytest.raises(ValueError, match="is revoked"):
        api.join(GROUP, 105, invite_link=link.invite_link)


async def test_ban_and_unban(api: LocalBotAPI, bot: Bot) -> None:
    await bot.get_updates(allowed_updates=["chat_member"])
    assert await bot.ban_chat_member(GROUP, BOB)
    [banned] = await bot.get_updates()
    assert banned.chat_member is not None and banned.chat_member.from_user.id == 42
    assert (
        banned.chat_member.old_chat_member.status,
        banned.chat_member.new_chat_member.status,
    ) == (
        "member",
        "kicked",
    )
    with pytest.raises(ValueError, match="banned"):
        api.join(GROUP, BOB)
    assert await bot.unban_chat_member(GROUP, BOB, only_if_banned=True)
    assert api.members(GROUP)[BOB].status == "left"
    api.join(GROUP, BOB)  # may come back

    # only_if_banned leaves a member alone; without it, the member is removed.
    assert await bot.unban_chat_member(GROUP, ANN, only_if_banned=True)
    assert api.members(GROUP)[ANN].status == "member"
    assert await bot.unban_chat_member(GROUP, ANN)
    assert api.members(GROUP)[ANN].status == "left"

    with pytest.raises(TelegramBadRequest, match="can't remove chat owner"):
        await bot.ban_chat_member(GROUP, CAT)
    api.set_bot_rights(GROUP, "administrator", can_restrict_members=False)
    with pytest.raises(TelegramBadRequest, match="not enough rights"):
        await bot.ban_chat_member(GROUP, BOB)


# ---------------------------------------------------------------- chats, members, commands


async def test_chat_and_member_methods(api: LocalBotAPI, bot: Bot) -> None:
    await bot.set_chat_permissions(GROUP, ChatPermissions(can_send_messages=True))
    chat = await bot.get_chat(GROUP)
    assert chat.permissions is not None and chat.permissions.can_send_messages
    assert not chat.permissions.can_send_photos
    admins = await bot.get_chat_administrators(GROUP)
    assert [(a.status, a.user.id) for a in admins] == [("creator", CAT), ("administrator", 42)]
    assert (await bot.get_chat_member(GROUP, BOB)).status == "member"
    assert (await bot.get_chat_member(GROUP, 42)).status == "administrator"

    await bot.restrict_chat_member(GROUP, BOB, ChatPermissions(can_send_messages=False))
    assert api.members(GROUP)[BOB].status == "restricted"
    with pytest.raises(TelegramBadRequest, match="can't remove chat owner"):
        await bot.restrict_chat_member(GROUP, CAT, ChatPermissions())

    message = validate(bot, api.say(GROUP, ANN, "hi")).message
    assert message is not None
    await bot.set_message_reaction(GROUP, message.message_id, [])
    assert await bot.delete_message(GROUP, message.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(GROUP, message.message_id)
    assert await bot.send_chat_action(ANN, "typing")
    assert await bot.leave_chat(BASIC_GROUP)
    assert api.bot_member(BASIC_GROUP).status == "left"


async def test_commands_are_kept_per_scope_and_language(api: LocalBotAPI, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand(command="start", description="Start")])
    groups = BotCommandScopeAllGroupChats()
    await bot.set_my_commands(
        [BotCommand(command="launch", description="Launch")], scope=groups, language_code="ru"
    )
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    assert [c.command for c in await bot.get_my_commands(scope=groups, language_code="ru")] == [
        "launch"
    ]
    assert await bot.get_my_commands(scope=groups) == []
    await bot.delete_my_commands()
    assert list(api.commands) == [('{"type":"all_group_chats"}', "ru")]


# ---------------------------------------------------------------- thread mode


async def test_thread_mode_serves_from_its_own_loop() -> None:
    api = LocalBotAPI(private_interval=None).start_in_thread()
    try:
        populate(api)
        async with connected(api) as bot:
            poll = asyncio.create_task(bot.get_updates(timeout=2))
            await asyncio.sleep(0.1)
            await asyncio.to_thread(api.start_bot, BOB, "ref42")
            [update] = await asyncio.wait_for(poll, 2)
            assert update.message is not None and update.message.text == "/start ref42"
            sent = await bot.send_message(BOB, "Welcome!")
            assert sent.chat.id == BOB
    finally:
        api.stop_thread()
    assert [c.method for c in api.calls] == ["getUpdates", "sendMessage"]


async def test_process_mode_proxies_the_world_and_its_errors() -> None:
    with RemoteBotAPI(private_interval=None) as api:
        populate(api)  # type: ignore[arg-type]  # World methods, run in the child process
        async with connected(api) as bot:  # type: ignore[arg-type]
            sent = await bot.send_message(ANN, "Welcome!")
            update = api.start_bot(BOB, "ref7")  # a result comes back as a copy
            assert update["message"]["text"] == "/start ref7"
            with pytest.raises(ValueError, match="user id"):
                api.add_user(0, "Nobody")  # the server's refusal is raised here
        [call] = api.calls_of("sendMessage")  # a property read, then a method
        assert call.result["message_id"] == sent.message_id
        assert api.base_url.startswith("http://127.0.0.1:")
    assert not api._process.is_alive()
