"""The private chat with a member: /start (``join-CODE``: a personal link into the task
group), /join, /help, /lang, /balance, /mylink, /tasks (with a how-to button per open
task)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    User,
)

from bot.telegram.i18n import SUPPORTED
from bot.telegram.render import PickLocale, TaskHow
from bot.telegram.routers.filters import Button, InPrivate
from bot.telegram.routers.middleware import WhoAsks
from bot.telegram.routers.refusals import refusal_text
from bot.telegram.services import Services
from funnels.kernel.actor import Actor
from funnels.kernel.refusals import Refused
from funnels.kernel.text import cut
from funnels.ladder.links import MyLinks
from funnels.ladder.progress import Balance, MyTasks, TaskHowTo
from funnels.people.leaders import MayLead
from funnels.people.links import MemberLink
from funnels.people.users import ChooseLocale, StartedBot
from funnels.warmup.admissions import code_of_payload
from funnels.warmup.personal import AskPersonalLink

# Refusal codes of AskPersonalLink -> catalogue keys.
_PERSONAL = {
    "no_cohort": "personal.no_cohort",
    "by_request": "personal.by_request",
    "ended": "personal.ended",
    "not_replied": "admission.refused",
    "closed": "admission.closed",
    "no_task_group": "personal.no_task_group",
    "busy": "personal.busy",
    "failed": "personal.failed",
}


async def start(
    message: Message,
    command: CommandObject,
    services: Services,
    actor: Actor,
    locale: str,
    event_from_user: User,
) -> None:
    await StartedBot(services.deps)(actor)
    code = code_of_payload(command.args)
    if code is not None:  # the "come on over" button of a cohort with personal links
        await personal_link(message.chat.id, services, actor, locale, code)
        return
    await services.say(
        message.chat.id,
        services.text(locale, "start.welcome", name=event_from_user.first_name),
    )


async def join(
    message: Message, command: CommandObject, services: Services, actor: Actor, locale: str
) -> None:
    """``/join [CODE]``: a personal link into the task group of the member's cohort."""
    args = (command.args or "").split()
    await personal_link(message.chat.id, services, actor, locale, args[0] if args else None)


async def personal_link(
    chat_id: int, services: Services, actor: Actor, locale: str, code: str | None
) -> None:
    try:
        given = await AskPersonalLink(services.deps)(actor, code)
    except Refused as refused:
        await services.say(chat_id, refusal_text(services, locale, refused, _PERSONAL))
        return
    until = services.catalog.when(locale, given.expires_at, given.timezone)
    text = services.text(
        locale, "personal.link", code=given.cohort_code, link=given.link, until=until
    )
    await services.say(chat_id, text)


async def help_(
    message: Message, services: Services, actor: Actor, locale: str, is_admin: bool
) -> None:
    text = services.text(locale, "help.member")
    if await MayLead(services.deps)(actor, is_admin):
        text += "\n\n" + services.text(locale, "help.leader")
    await services.say(message.chat.id, text)


async def lang(message: Message, services: Services, locale: str) -> None:
    buttons = [
        [
            InlineKeyboardButton(
                text=services.catalog.language_name(code),
                callback_data=PickLocale(locale=code).pack(),
            )
        ]
        for code in SUPPORTED
    ]
    await services.say(
        message.chat.id,
        services.text(locale, "lang.choose"),
        keyboard=InlineKeyboardMarkup(inline_keyboard=buttons),
    )


async def picked(
    query: CallbackQuery, callback_data: PickLocale, services: Services, actor: Actor
) -> None:
    locale = callback_data.locale if callback_data.locale in SUPPORTED else "en"
    ref = await ChooseLocale(services.deps)(actor, locale)
    services.users.remember(actor.telegram_id, ref.user_id, locale)
    await query.answer(services.text(locale, "lang.set"))
    if query.message is not None:
        await services.say(query.message.chat.id, services.text(locale, "lang.set"))


async def balance(message: Message, services: Services, actor: Actor, locale: str) -> None:
    amounts = await Balance(services.deps)(actor)
    if not any(amounts.values()):
        await services.say(message.chat.id, services.text(locale, "balance.empty"))
        return
    lines = "\n".join(
        services.catalog.money(locale, minor, currency)
        for currency, minor in sorted(amounts.items())
    )
    await services.say(message.chat.id, services.text(locale, "balance.body", amounts=lines))


async def mylink(message: Message, services: Services, actor: Actor, locale: str) -> None:
    """In the task stage: the member's tracked link for each open task with a target.
    Before it: their invite link into the warm-up group, and when task links come."""
    links = await MyLinks(services.deps)(actor)
    if links is not None:
        lines = [
            services.text(
                locale, "links.line", title=t.title, link=services.settings.tracked_link(t.code)
            )
            for t in links
        ]
        text = "\n\n".join([services.text(locale, "links.header"), *lines])
        await services.say(
            message.chat.id, text if lines else services.text(locale, "links.none_open")
        )
        return
    link = await MemberLink(services.deps)(actor)
    if link is None:
        await services.say(message.chat.id, services.text(locale, "mylink.none"))
        return
    text = services.text(locale, "mylink.body", link=link)
    await services.say(message.chat.id, text + "\n\n" + services.text(locale, "links.later"))


async def tasks(message: Message, services: Services, actor: Actor, locale: str) -> None:
    ladder = await MyTasks(services.deps)(actor)
    if ladder is None:
        await services.say(message.chat.id, services.text(locale, "tasks.none"))
        return
    lines = [services.text(locale, "tasks.header", code=ladder.cohort_code)]
    buttons = []
    for line in ladder.lines:
        if line.state == "done":
            lines.append(services.text(locale, "tasks.line_done", title=line.title))
        elif line.state == "locked":
            when = services.catalog.when(locale, line.unlocks_at, ladder.timezone)
            lines.append(services.text(locale, "tasks.line_locked", title=line.title, when=when))
        else:
            progress = services.renderer.task_progress(locale, line.progress)
            lines.append(
                services.text(locale, "tasks.line_open", title=line.title, progress=progress)
            )
            if not ladder.ended:
                data = TaskHow(cohort=ladder.cohort_id, task=line.index).pack()
                label = services.text(locale, "tasks.how_button", title=cut(line.title, 48))
                buttons.append([InlineKeyboardButton(text=label, callback_data=data)])
    keyboard = InlineKeyboardMarkup(inline_keyboard=buttons) if buttons else None
    await services.say(message.chat.id, "\n".join(lines), keyboard=keyboard)


async def how_to(
    query: CallbackQuery, button: TaskHow | None, services: Services, actor: Actor, locale: str
) -> None:
    """A how-to button pressed: the task's how-to as a new message, for an open task
    only; a forged or outdated button gets a short answer and nothing else."""
    try:
        if button is None:
            raise Refused("button_stale")
        guide = await TaskHowTo(services.deps, task_link=services.task_link)(
            actor, button.cohort, button.task
        )
    except Refused as refused:
        key = "tasks.task_done" if refused.code == "task_done" else "tasks.button_stale"
        await query.answer(services.text(locale, key))
        return
    await query.answer()
    parts = [services.text(locale, "tasks.how", title=guide.title, how=guide.how)]
    if guide.link:
        parts.append(services.text(locale, "tasks.how_link", link=guide.link))
    if guide.proof:
        parts.append(services.text(locale, "tasks.how_proof"))
    await services.say(actor.telegram_id, "\n\n".join(parts))


def make_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="private")
    router.message.middleware(WhoAsks())
    router.callback_query.middleware(WhoAsks())
    router.message.filter(InPrivate())
    router.message.register(start, CommandStart())
    router.message.register(join, Command("join"))
    router.message.register(help_, Command("help"))
    router.message.register(lang, Command("lang"))
    router.callback_query.register(picked, PickLocale.filter())
    router.message.register(balance, Command("balance"))
    router.message.register(mylink, Command("mylink"))
    router.message.register(tasks, Command("tasks"))
    router.callback_query.register(how_to, Button(TaskHow))
    return router
