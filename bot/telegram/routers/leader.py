"""Leader and admin commands: /launch, /taskgroup, /grant_leader; and the router of all
of a leader's group commands (those on a running cohort are in ``cohort_ops``).

Handlers parse, call one use case, and render its answer or refusal from the catalogue.
Who asks (``actor``, ``locale``, ``is_admin``) is worked out before the handler runs, by
:class:`~bot.telegram.routers.middleware.WhoAsks`.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import NamedTuple

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.args import ascii_int, telegram_user_id
from bot.telegram.routers.cohort_ops import admission_line, decide_step, pause_or_resume, status
from bot.telegram.routers.filters import InGroup
from bot.telegram.routers.middleware import WhoAsks
from bot.telegram.routers.refusals import MAX_CAPACITY, refusal_text
from bot.telegram.services import Services
from funnels.cohorts.launch import BindTaskGroup, LaunchCohort, Launched
from funnels.kernel.actor import Actor
from funnels.kernel.records import ADMISSION_MODES, AdmissionMode
from funnels.kernel.refusals import Refused
from funnels.kernel.text import cut
from funnels.people.leaders import GrantLeader
from funnels.scripts.library import DEFAULT_SCRIPT, available_scripts, is_script_name, script_path
from funnels.scripts.loader import LoadedScript, ScriptError, load_script

log = logging.getLogger("funnelbot.bot")


# Refusal codes of the use cases -> catalogue keys, per command.
_LAUNCH = {
    "not_leader": "launch.not_leader",
    "already_bound": "launch.already_bound",
    "over_budget": "launch.over_budget",
    "bad_timezone": "launch.bad_timezone",
    "bad_capacity": "launch.bad_capacity",
    "past_date": "launch.past_date",
    "far_date": "launch.far_date",
}


_TASKGROUP = {
    "unknown": "taskgroup.unknown",
    "not_yours": "taskgroup.not_yours",
    "is_warmup": "taskgroup.is_warmup",
    "taken": "taskgroup.taken",
    "has_one": "taskgroup.has_one",
}


class _Usage(Exception):
    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


class LaunchOptions(NamedTuple):
    script: str | None = None
    start: date | None = None
    capacity: int | None = None
    admission: AdmissionMode = "requests"


def parse_launch(args: str | None) -> LaunchOptions:
    """``[script] [start=YYYY-MM-DD] [capacity=N] [admission=requests|personal]`` in
    any order."""
    script: str | None = None
    start: date | None = None
    capacity: int | None = None
    admission: AdmissionMode = "requests"
    for token in (args or "").split():
        name, sep, value = token.partition("=")
        if not sep:
            if script is not None:
                raise _Usage("launch.bad_option", option=cut(token))
            if not is_script_name(token):  # a name from the library, never a path
                raise _Usage("launch.bad_script_name")
            script = token
        elif name == "start":
            try:
                start = date.fromisoformat(value)
            except ValueError:
                raise _Usage("launch.bad_date", value=cut(value)) from None
        elif name == "capacity":
            capacity = ascii_int(value, high=MAX_CAPACITY)
            if capacity is None:
                raise _Usage("launch.bad_capacity", max=MAX_CAPACITY)
        elif name == "admission":
            mode = next((m for m in ADMISSION_MODES if m == value), None)
            if mode is None:
                raise _Usage("launch.bad_admission", value=cut(value))
            admission = mode
        else:
            raise _Usage("launch.bad_option", option=cut(token))
    return LaunchOptions(script, start, capacity, admission)


async def launch(
    message: Message,
    command: CommandObject,
    services: Services,
    actor: Actor,
    locale: str,
    is_admin: bool,
) -> None:
    chat_id = message.chat.id
    use = LaunchCohort(services.deps)
    extra = services.settings.scripts_dir
    try:
        await use.authorize(actor=actor, is_admin=is_admin)  # before reading any option
        name, start, capacity, admission = parse_launch(command.args)
    except Refused as refused:
        text = refusal_text(services, locale, refused, _LAUNCH)
        await services.say(chat_id, text, reply_to=message.message_id)
        return
    except _Usage as usage:
        await services.say(
            chat_id, _usage_text(services, locale, usage, extra), reply_to=message.message_id
        )
        return
    script_name = name or DEFAULT_SCRIPT

    def load() -> LoadedScript:
        try:
            if script_name not in available_scripts(extra):
                raise FileNotFoundError(script_name)
            path = script_path(script_name, locale, extra)
        except FileNotFoundError:
            raise _Usage("launch.unknown_script", name=script_name) from None
        return load_script(path)

    try:
        launched = await use(
            chat_id=chat_id,
            actor=actor,
            is_admin=is_admin,
            load=load,
            start=start,
            capacity=capacity,
            admission=admission,
        )
    except Refused as refused:
        text = refusal_text(services, locale, refused, _LAUNCH)
    except _Usage as usage:
        text = _usage_text(services, locale, usage, extra)
    except ScriptError as exc:
        text = await _unusable_script(services, locale, actor, script_name, exc)
    else:
        services.chats.forget(chat_id)
        text = _launched_text(services, locale, launched)
    await services.say(chat_id, text, reply_to=message.message_id)


def _usage_text(services: Services, locale: str, usage: _Usage, extra: Path | None) -> str:
    params = dict(usage.params)
    if usage.key in ("launch.unknown_script", "launch.bad_script_name"):
        params["names"] = ", ".join(available_scripts(extra))
    text = services.text(locale, usage.key, **params)
    if usage.key == "launch.bad_option":
        text += "\n" + services.text(locale, "launch.usage")
    return text


async def _unusable_script(
    services: Services, locale: str, leader: Actor, name: str, error: ScriptError
) -> str:
    """A library script with errors: the details go to the log for ops, the leader is
    told privately whom to ask, and the group only hears that nothing was started (a
    validation report is no reading for 500 members)."""
    errors = error.errors or error.problems
    source = errors[0].source if errors else name
    log.warning(
        "/launch of script %s refused: %s has %d error(s): %s",
        name,
        source,
        len(errors),
        " | ".join(str(p) for p in errors[:10]),
    )
    note = services.text(locale, "launch.script_unusable_leader", name=name)
    await services.say(leader.telegram_id, note)  # fails (logged) if they never pressed Start
    return services.text(locale, "launch.script_unusable", name=name)


def _launched_text(services: Services, locale: str, launched: Launched) -> str:
    cohort = launched.cohort
    lines = [
        services.text(
            locale,
            "launch.timeline_line",
            day=step.day,
            when=services.catalog.when(locale, step.due_at, cohort.timezone),
            what=step.key,
        )
        for step in launched.steps
        if step.stage == "warmup"
        and step.kind in ("post", "talk_part", "red_envelope", "pitch")
        and (step.part or 0) == 0
    ]
    started = services.text(
        locale,
        "launch.started",
        code=cohort.code,
        script=f"{cohort.script_id} v{cohort.script_version}",
        start=services.catalog.day(locale, cohort.start_date),
        timezone=cohort.timezone,
        capacity=cohort.capacity,
        timeline="\n".join(lines[:60]),
        link=launched.invite_link or "-",
    )
    return started + "\n" + admission_line(services, locale, cohort)


async def taskgroup(
    message: Message,
    command: CommandObject,
    services: Services,
    actor: Actor,
    locale: str,
    is_admin: bool,
) -> None:
    use = BindTaskGroup(services.deps)
    try:
        await use.authorize(actor=actor, is_admin=is_admin)  # before reading the code
    except Refused as refused:
        await services.say(message.chat.id, refusal_text(services, locale, refused, _TASKGROUP))
        return
    code = (command.args or "").strip()
    if not code or " " in code:
        await services.say(message.chat.id, services.text(locale, "taskgroup.usage"))
        return
    try:
        bound = await use(chat_id=message.chat.id, actor=actor, is_admin=is_admin, code=code)
    except Refused as refused:
        text = refusal_text(services, locale, refused, _TASKGROUP)
    else:
        services.chats.forget(message.chat.id)
        text = services.text(locale, "taskgroup.bound", code=bound)
    await services.say(message.chat.id, text, reply_to=message.message_id)


async def grant_leader(
    message: Message, command: CommandObject, services: Services, locale: str, is_admin: bool
) -> None:
    try:
        GrantLeader.authorize(is_admin=is_admin)
    except Refused as refused:  # "admins only", whatever the arguments were
        await services.say(message.chat.id, refusal_text(services, locale, refused, {}))
        return
    args = (command.args or "").split()
    replied = message.reply_to_message
    target: Actor | None = None
    region = ""
    if replied is not None and replied.from_user is not None and len(args) == 1:
        target, region = services.actor(replied.from_user), args[0]
    elif len(args) == 2:
        telegram_id = telegram_user_id(args[0])
        if telegram_id is None:
            await services.say(message.chat.id, services.text(locale, "grant.bad_id"))
            return
        target, region = Actor(telegram_id, args[0]), args[1]
    if target is None:
        await services.say(message.chat.id, services.text(locale, "grant.usage"))
        return
    try:
        granted = await GrantLeader(services.deps)(
            target=target, region_code=region, is_admin=is_admin
        )
    except Refused as refused:
        text = refusal_text(services, locale, refused, {})
    else:
        text = services.text(locale, "grant.done", name=target.name, region=granted.name)
    await services.say(message.chat.id, text)


async def group_only(message: Message, services: Services, locale: str) -> None:
    """The group commands sent in a private chat."""
    key = "launch.group_only" if (message.text or "").startswith("/launch") else "error.group_only"
    await services.say(message.chat.id, services.text(locale, key))


def make_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="leader")
    router.message.middleware(WhoAsks())
    router.message.register(launch, Command("launch"), InGroup())
    router.message.register(taskgroup, Command("taskgroup"), InGroup())
    router.message.register(status, Command("status"), InGroup())
    router.message.register(pause_or_resume, Command("pause", "resume"), InGroup())
    router.message.register(grant_leader, Command("grant_leader"))
    router.message.register(group_only, Command("launch", "taskgroup", "status", "pause", "resume"))
    router.message.register(decide_step, Command("retry", "skip"), InGroup())
    router.message.register(group_only, Command("retry", "skip"))
    return router
