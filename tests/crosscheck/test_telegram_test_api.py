"""Cross-check: the bot's basic flows against ``telegram-test-api``, a third-party emulator
of the Bot API, instead of our own fake server.

The end-to-end tests run the bot against ``tests/botapi``, a server written alongside
the bot: a misreading of the Bot API shared by both would pass there. Here the same bot
(aiogram's HTTP client, the real dispatcher and routers, the throttled messenger, SQLite)
talks to ``telegram-test-api`` 4.2.1 from npm (pinned in ``package.json``), which
``server.js`` starts in a node process. The test plays both other parties: a Telegram user,
through the emulator's client API with the message shapes of the emulator's own
``TelegramClient`` (``lib/modules/telegramClient.js``); and the bot's polling loop, asking
the emulator's Bot API for updates through aiogram and feeding each to the dispatcher.

Cross-checked:

- ``/start`` in a private chat gets the welcome, in the user's language, or in English
  when the update has no ``language_code`` (the emulator's users have none unless given
  one; ours default to ``en``).
- ``/help``; ``/lang`` and its inline keyboard as the emulator stored it; a tap on a
  language from the emulator's client, answered by the bot with the emulator's query id,
  then the confirmation and ``/help`` in the chosen language.
- ``/launch`` in a group from someone who is not a leader: refused, in reply to the command.
- Every Bot API call the bot made succeeded, the emulator's answers parsed by aiogram
  (``Services.say`` only logs a reply that fails, so the calls are recorded on the way out).

What the emulator cannot do, so these stay with ``tests/e2e``:

- It has 9 methods: getMe, getUpdates, sendMessage, editMessageText,
  editMessageReplyMarkup, deleteMessage, answerCallbackQuery, setWebhook and
  deleteWebhook. Any other gets HTTP 500 with ``{"message": ...}`` instead of Telegram's
  ``{"ok": false, "error_code", "description"}``, which aiogram reports as
  ``ClientDecodeError``, not a ``TelegramAPIError``. No chat members, rights, invite links,
  join requests, pins, reactions, media or command menus: no cohort launch, warm-up week,
  envelope or task group.
- Its getMe user has no ``is_bot``, so aiogram's ``bot.me()`` fails, and with it
  ``Dispatcher.start_polling`` (hence the test's own polling loop) and any command
  addressed as ``/cmd@botname``.
- Its callback queries have no ``chat_instance`` (a required field), so aiogram rejects
  the whole getUpdates answer that holds one. The test reads such updates raw, adds the
  field and feeds them with ``dp.feed_raw_update``.
- answerCallbackQuery is accepted (``result: null``; Telegram's is ``true``) but not
  stored: the answer is checked on the bot's side of the wire.
- No flood limits and no errors for unknown chats. The bot's sent messages come back
  with ``date`` in milliseconds and the chat always ``private``; getUpdates ignores
  ``offset`` and ``timeout`` and marks updates read once served, so an answer aiogram
  rejects loses every update in it.

Needs node and ``npm ci`` in ``tests/crosscheck``; without them the tests skip, except
under ``CI=true``, where they fail.
"""

from __future__ import annotations

import itertools
import json
import select
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from pydantic import SecretStr

from bot.composition import build_services
from bot.settings import Settings
from bot.telegram.app import allowed_updates, build_bot, build_dispatcher
from bot.telegram.i18n import Catalog
from funnels.kernel.clock import ManualClock
from storage.db import create_engine
from storage.uow import SqlStore
from tests.support.availability import unavailable
from tests.support.harness import BOT_LIMITS

pytestmark = pytest.mark.crosscheck

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "node_modules" / "telegram-test-api" / "package.json"
PINNED = json.loads((HERE / "package.json").read_text())["dependencies"]["telegram-test-api"]
INSTALL_HINT = "run npm ci in tests/crosscheck"
START_TIMEOUT_SECONDS = 30.0

CATALOG = Catalog.load()
NOW = datetime(2026, 3, 1, 10, 0, tzinfo=ZoneInfo("Asia/Singapore"))
_tokens = itertools.count(7001)


# --- the emulator process -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """telegram-test-api on a free port, for this module; its base URL.

    Tests share it and keep apart by bot token: the emulator keeps each token's updates
    and messages to itself.
    """
    node = shutil.which("node")
    if node is None:
        unavailable(f"node is not installed (install Node.js 18+, then {INSTALL_HINT})")
    if not PACKAGE.is_file():
        unavailable(f"telegram-test-api is not installed: {INSTALL_HINT}")
    installed = json.loads(PACKAGE.read_text())["version"]
    if installed != PINNED:
        pytest.fail(f"telegram-test-api {installed} installed, {PINNED} pinned: {INSTALL_HINT}")

    log_path = tmp_path_factory.mktemp("crosscheck") / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [node, str(HERE / "server.js"), str(_free_port())],
            cwd=HERE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_SECONDS)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("ready "):
            proc.kill()
            proc.wait()
            pytest.fail(
                f"telegram-test-api did not start: {line!r}\n{log_path.read_text()}",
                pytrace=False,
            )
        yield line.split()[-1]
    finally:
        proc.stdin.close()  # the launcher stops when its stdin closes
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- a user, through the emulator's client API ----------------------------------------


@dataclass(frozen=True)
class BotMessage:
    """A message the bot sent, as the emulator stored it (the sendMessage parameters)."""

    message_id: int
    chat_id: int
    text: str
    params: dict[str, Any]

    @property
    def buttons(self) -> list[dict[str, Any]]:
        markup = self.params.get("reply_markup") or {}
        return [button for row in markup.get("inline_keyboard", []) for button in row]


@dataclass
class User:
    """A Telegram user talking to the bot in one chat, shaped as the emulator's own
    ``TelegramClient`` shapes them (``makeMessage``, ``makeCommand``,
    ``makeCallbackQuery``), with the options it takes as fields."""

    http: httpx.AsyncClient
    token: str
    user_id: int
    first_name: str
    chat_id: int | None = None  # the private chat by default
    chat_type: str = "private"
    chat_title: str | None = None
    language_code: str | None = None

    def _common(self) -> dict[str, Any]:
        user: dict[str, Any] = {
            "id": self.user_id,
            "first_name": self.first_name,
            "username": f"user{self.user_id}",
            "is_bot": False,
        }
        if self.language_code is not None:
            user["language_code"] = self.language_code
        chat = {
            "id": self.chat,
            "title": self.chat_title or self.first_name,
            "first_name": self.first_name,
            "username": user["username"],
            "type": self.chat_type,
        }
        return {"from": user, "chat": chat, "botToken": self.token, "date": int(NOW.timestamp())}

    @property
    def chat(self) -> int:
        return self.user_id if self.chat_id is None else self.chat_id

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = await self.http.post(path, json=body)
        response.raise_for_status()
        answer = response.json()
        assert answer["ok"] is True, answer
        return answer["result"]

    async def send_command(self, text: str) -> None:
        command = text.split(" ", 1)[0]
        entity = {"offset": 0, "length": len(command), "type": "bot_command"}
        await self._post("/sendCommand", {**self._common(), "text": text, "entities": [entity]})

    async def tap(self, message: BotMessage, data: str) -> None:
        common = self._common()
        # makeCallbackQuery's message has neither message_id nor date (both required by
        # the Bot API); like a test passing options to it, name the message tapped.
        tapped = {
            "from": common["from"],
            "chat": common["chat"],
            "message_id": message.message_id,
            "date": common["date"],
            "text": message.text,
        }
        query = {"botToken": self.token, "date": common["date"], "from": common["from"]}
        await self._post("/sendCallback", {**query, "message": tapped, "data": data})

    async def replies(self) -> list[BotMessage]:
        """The bot's messages in this chat not read yet (the client's getUpdates)."""
        stored = await self._post("/getUpdates", {"token": self.token, "chatId": self.chat})
        return [
            BotMessage(
                message_id=item["messageId"],
                chat_id=int(item["message"]["chat_id"]),
                text=item["message"].get("text", ""),
                params=item["message"],
            )
            for item in stored
        ]

    async def reply(self) -> BotMessage:
        """The one message the bot sent since the last look."""
        replies = await self.replies()
        assert len(replies) == 1, [r.text for r in replies]
        return replies[0]


# --- the bot, polling the emulator ----------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]
    result: Any = None
    error: str | None = None


class CallRecorder(BaseRequestMiddleware):
    """Every Bot API call the bot makes, with what the emulator answered."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        name = method.__api_method__
        params = method.model_dump(exclude_none=True)
        try:
            response = await make_request(bot, method)
        except Exception as exc:
            self.calls.append(Call(name, params, error=repr(exc)))
            raise
        # The chain passes on the method's result, not the Response its annotations name.
        self.calls.append(Call(name, params, result=response))
        return response

    def of(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def failed(self) -> list[Call]:
        return [call for call in self.calls if call.error is not None]


@dataclass
class Polling:
    bot: Bot
    dp: Dispatcher
    recorder: CallRecorder
    http: httpx.AsyncClient
    token: str
    offset: int | None = None

    def user(self, user_id: int, first_name: str, **options: Any) -> User:
        return User(self.http, self.token, user_id, first_name, **options)

    async def poll(self) -> int:
        """One round of polling as aiogram's own loop does it: getUpdates, then each
        update through the dispatcher. Returns how many updates there were."""
        updates = await self.bot.get_updates(
            offset=self.offset, timeout=0, allowed_updates=allowed_updates(self.dp)
        )
        for update in updates:
            self.offset = update.update_id + 1
            await self.dp.feed_update(self.bot, update)
        return len(updates)

    async def poll_raw(self) -> list[dict[str, Any]]:
        """A round of polling for the emulator's callback queries, which aiogram's
        getUpdates rejects: read raw, give each the ``chat_instance`` Telegram always
        sends, feed through the dispatcher. Returns the updates fed."""
        response = await self.http.get(f"/bot{self.token}/getUpdates")
        response.raise_for_status()
        updates: list[dict[str, Any]] = response.json()["result"]
        for update in updates:
            query = update.get("callback_query")
            if query is not None:
                assert "chat_instance" not in query, "the emulator sends it now: use poll()"
                query["chat_instance"] = f"crosscheck-{query['message']['chat']['id']}"
            self.offset = update["update_id"] + 1
            await self.dp.feed_raw_update(self.bot, update)
        return updates


@asynccontextmanager
async def polling_bot(base_url: str, sqlite_url: str) -> AsyncIterator[Polling]:
    token = f"{next(_tokens)}:CROSSCHECK"
    settings = Settings(
        bot_token=SecretStr(token),
        telegram_api_url=base_url,
        _env_file=None,
    )
    engine = create_engine(sqlite_url)
    bot = build_bot(settings)
    recorder = CallRecorder()
    bot.session.middleware(recorder)
    # The e2e limits: one private message per 50 ms instead of per second.
    services = build_services(settings, SqlStore(engine), ManualClock(NOW), bot, limits=BOT_LIMITS)
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            yield Polling(bot, build_dispatcher(services), recorder, http, token)
    finally:
        await services.close()
        await engine.dispose()


@pytest.fixture
async def bot(emulator: str, sqlite_url: str) -> AsyncIterator[Polling]:
    """The bot polling the emulator; afterwards, every call it made must have succeeded."""
    async with polling_bot(emulator, sqlite_url) as polling:
        yield polling
        assert polling.recorder.failed() == []


# --- the flows --------------------------------------------------------------------------


@pytest.mark.parametrize(("language_code", "locale"), [(None, "en"), ("es-419", "es")])
async def test_start_in_a_private_chat_gets_the_welcome(
    bot: Polling, language_code: str | None, locale: str
) -> None:
    ana = bot.user(31, "Ana", language_code=language_code)
    await ana.send_command("/start")
    assert await bot.poll() == 1
    welcome = await ana.reply()
    assert welcome.chat_id == 31
    assert welcome.text == CATALOG.text(locale, "start.welcome", name="Ana")


async def test_a_member_picks_a_language_from_the_menu(bot: Polling) -> None:
    zhang = bot.user(41, "Zhang", language_code="zh-hans")
    await zhang.send_command("/help")
    await bot.poll()
    assert (await zhang.reply()).text == CATALOG.text("zh-CN", "help.member")

    await zhang.send_command("/lang")
    await bot.poll()
    menu = await zhang.reply()
    assert menu.text == CATALOG.text("zh-CN", "lang.choose")
    assert [b["text"] for b in menu.buttons] == ["简体中文", "Español", "English"]

    await zhang.tap(menu, menu.buttons[1]["callback_data"])
    [update] = await bot.poll_raw()
    [answer] = bot.recorder.of("answerCallbackQuery")
    assert answer.params["callback_query_id"] == update["callback_query"]["id"]
    assert answer.params["text"] == CATALOG.text("es", "lang.set")
    assert answer.result is None  # the emulator's answer; Telegram's is True
    assert (await zhang.reply()).text == CATALOG.text("es", "lang.set")

    # The choice sticks over the language the updates carry.
    await zhang.send_command("/help")
    await bot.poll()
    assert (await zhang.reply()).text == CATALOG.text("es", "help.member")


async def test_launch_from_someone_not_a_leader_is_refused_in_the_group(bot: Polling) -> None:
    li = bot.user(51, "Li", chat_id=-100, chat_type="supergroup", chat_title="Spring line")
    await li.send_command("/launch")
    await bot.poll()
    refusal = await li.reply()
    assert refusal.chat_id == -100
    assert refusal.text == CATALOG.text("en", "launch.not_leader")
    [polled] = bot.recorder.of("getUpdates")
    [sent] = bot.recorder.of("sendMessage")
    assert sent.params["reply_to_message_id"] == polled.result[0].message.message_id


# --- where the emulator departs from the Bot API ----------------------------------------


async def test_the_emulator_departs_from_the_bot_api_where_the_docstring_says(
    emulator: str, sqlite_url: str
) -> None:
    """Pins the gaps the harness works around: if this fails, the emulator changed."""
    async with polling_bot(emulator, sqlite_url) as bot:
        with pytest.raises(ClientDecodeError, match="is_bot"):
            await bot.bot.get_me()
        with pytest.raises(ClientDecodeError) as unsupported:
            await bot.bot.set_my_commands([])
        assert not isinstance(unsupported.value, TelegramAPIError)

        posted = await bot.bot.send_message(-100, "hello")  # a group that was never made
        assert (posted.chat.id, posted.chat.type) == (-100, "private")

        ana = bot.user(61, "Ana")
        menu = await bot.bot.send_message(61, "pick")
        await ana.send_command("/start")
        await ana.tap(BotMessage(menu.message_id, 61, "pick", {}), "lang:en")
        with pytest.raises(ClientDecodeError, match="chat_instance"):
            await bot.poll()
        # Both updates were served, so the /start in that batch is gone too.
        assert await bot.poll() == 0
