"""Unit tests for bot.telegram.i18n: the packaged catalogues, their checks, and formatting."""

from __future__ import annotations

import string
from datetime import UTC, date, datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import get_args

import pytest
import yaml
from babel import Locale

from bot.telegram.app import GROUP_ADMIN_COMMANDS, PRIVATE_COMMANDS
from bot.telegram.catalog_checks import CatalogError
from bot.telegram.i18n import DEFAULT, SUPPORTED, Catalog, negotiate
from funnels.kernel.records import StepStatus

CALLBACK_KEYS = (
    "envelope.grabbed",
    "envelope.grabbed_last",
    "envelope.already",
    "envelope.empty",
    "envelope.closed",
    "envelope.not_member",
    "envelope.busy",
)

# Self-cycling lines and members' own groups: key -> the placeholders the code fills in.
LINES_AND_GROUPS: dict[str, set[str]] = {
    "status.line_own": {"generation"},
    "status.line_from": {"generation", "parent"},
    "group_task.welcome": {"count", "needed"},
    "group_task.ready": {"count"},
    "group_task.not_in_task": set(),
    "group_task.not_open": set(),
    "group_task.done": set(),
    "group_task.has_group": set(),
    "group_task.goodbye": set(),
    "group_task.ended": set(),
    "group_talk.not_a_group": set(),
    "group_talk.owner_only": set(),
    "group_talk.too_small": {"count", "needed"},
    "group_talk.under_way": set(),
    "group_talk.given": set(),
    "group_talk.no_talk": set(),
    "group_talk.started": set(),
    "reminder.ahead": {"when"},
    "reminder.on_track": {"title"},
    "reminder.behind": {"count", "title"},
    "reminder.inactive": {"title"},
}

# Every key the bot's code relies on, as agreed for the catalogue.
REQUIRED_KEYS = {
    *LINES_AND_GROUPS,
    *CALLBACK_KEYS,
    "envelope.offer",
    "envelope.button",
    "envelope.summary",
    "envelope.summary_nobody",
    "admissions.open",
    "admissions.button",
    "tasks_day.header",
    "tasks_day.line",
    "reward.notice",
    "reward.promoted",
    "role.shopkeeper",
    "role.supervisor",
    "role.leader",
    "role.member",
    "talk.by",
    "launch.group_only",
    "launch.not_leader",
    "launch.missing_rights",
    "right.admin",
    "right.can_invite_users",
    "right.can_pin_messages",
    "right.can_delete_messages",
    "right.can_restrict_members",
    "right.see_messages",
    "launch.already_bound",
    "launch.usage",
    "launch.bad_option",
    "launch.bad_date",
    "launch.past_date",
    "launch.bad_capacity",
    "launch.unknown_script",
    "launch.bad_script_name",
    "launch.script_unusable",
    "launch.script_unusable_leader",
    "launch.far_date",
    "launch.over_budget",
    "launch.bad_timezone",
    "launch.started",
    "launch.timeline_line",
    "taskgroup.usage",
    "taskgroup.unknown",
    "taskgroup.not_yours",
    "taskgroup.is_warmup",
    "taskgroup.taken",
    "taskgroup.has_one",
    "taskgroup.bound",
    "status.none",
    "status.body",
    "status.reason",
    "status.attention",
    "status.nothing_next",
    "status.name.running",
    "status.name.paused",
    "status.name.finished",
    "status.name.cancelled",
    "pause.done",
    "pause.already",
    "pause.not_running",
    "resume.done",
    "resume.not_paused",
    "resume.still_missing",
    "leader.only",
    "cohort.paused_notice",
    "reason.removed",
    "reason.demoted",
    "reason.cannot_post",
    "reason.paused_by_leader",
    "reason.paused_by_ops",
    "reason.lost_rights",
    "grant.usage",
    "grant.not_admin",
    "grant.unknown_region",
    "grant.done",
    "grant.bad_id",
    "start.welcome",
    "help.member",
    "help.leader",
    "admission.approved",
    "admission.refused",
    "admission.closed",
    "admission.ask_start",
    "admission.not_yours",
    "admission.passed_on",
    "admission.mode.requests",
    "admission.mode.personal",
    "cohort.admission",
    "launch.bad_admission",
    "personal.link",
    "personal.no_cohort",
    "personal.by_request",
    "personal.ended",
    "personal.no_task_group",
    "personal.busy",
    "personal.failed",
    "lang.choose",
    "lang.set",
    "balance.body",
    "balance.empty",
    "tasks.none",
    "tasks.header",
    "tasks.line_done",
    "tasks.line_open",
    "tasks.line_locked",
    "tasks.progress",
    "goal.fan_locked",
    "goal.link_clicked",
    "goal.link_clicked.unique",
    "goal.post_published",
    "goal.group_created",
    "goal.talk_given",
    "goal.order_paid",
    "goal.order_paid.unique",
    "goal.order_paid.sum",
    "mylink.body",
    "mylink.none",
    "links.header",
    "links.line",
    "links.none_open",
    "links.later",
    "links.not_found_title",
    "links.not_found",
    "error.generic",
    "error.private_only",
    "error.group_only",
    # Every command the menus register has its description.
    *(f"cmd.{name}" for name in (*PRIVATE_COMMANDS, *GROUP_ADMIN_COMMANDS)),
    "status.held",
    "status.decide",
    "step.usage",
    "step.no_step",
    "step.cannot_retry",
    "step.cannot_skip",
    "step.waiting",
    "step.retried",
    "step.skipped",
    "step.talk_goes_on",
    *(f"step.state.{state}" for state in get_args(StepStatus)),
    # the ladder in Telegram: the day's tasks, how-tos, proofs
    "tasks_day.reward",
    "tasks_day.later",
    "tasks_day.footer",
    "tasks_day.rewarded",
    "tasks_day.rewarded_line",
    "tasks_day.rewarded_more",
    "tasks_day.rewarded_footer",
    "tasks.how_button",
    "tasks.how",
    "tasks.how_link",
    "tasks.how_proof",
    "tasks.button_stale",
    "tasks.task_done",
    "goal.proof_approved",
    "proof.which",
    "proof.sent",
    "proof.no_task",
    "proof.pending",
    "proof.resend",
    "proof.review",
    "proof.approve",
    "proof.reject",
    "proof.back",
    "proof.reason.unreadable",
    "proof.reason.wrong_post",
    "proof.reason.not_public",
    "proof.reason.other",
    "proof.approved",
    "proof.rejected",
    "proof.done_approved",
    "proof.done_rejected",
    "proof.unknown",
    "proof.not_yours",
    "proof.decided_approved",
    "proof.decided_rejected",
    "reward.owed",
    "budget.used_up",
}

# Placeholders the code fills in, for the keys that have any.
PLACEHOLDERS = {
    "envelope.offer": {"total", "shares", "expires"},
    "envelope.grabbed": {"amount"},
    "envelope.grabbed_last": {"amount"},
    "envelope.already": {"amount"},
    "envelope.summary": {"claimed", "shares", "claimed_total", "total", "name", "luckiest"},
    "admissions.open": {"count", "total"},
    "tasks_day.line": {"title", "how"},
    "proof.rejected": {"title", "reason"},
    "reward.notice": {"title", "amount"},
    "reward.promoted": {"role"},
    "talk.by": {"speaker"},
    "launch.missing_rights": {"missing"},
    "launch.already_bound": {"code"},
    "launch.bad_option": {"option"},
    "launch.bad_date": {"value"},
    "launch.past_date": {"value"},
    "launch.bad_capacity": {"max"},
    "launch.unknown_script": {"name", "names"},
    "launch.bad_script_name": {"names"},
    "launch.script_unusable": {"name"},
    "launch.script_unusable_leader": {"name"},
    "launch.far_date": {"value", "days"},
    "launch.over_budget": {"budget", "capacity", "needed"},
    "launch.bad_timezone": {"timezone"},
    "launch.started": {"code", "script", "start", "timezone", "capacity", "timeline", "link"},
    "launch.timeline_line": {"day", "when", "what"},
    "taskgroup.unknown": {"code"},
    "taskgroup.not_yours": {"code"},
    "taskgroup.has_one": {"code"},
    "taskgroup.bound": {"code"},
    "status.body": {
        "code",
        "status",
        "day",
        "days",
        "joined",
        "engaged",
        "replied",
        "admitted",
        "next",
    },
    "status.reason": {"reason"},
    "status.attention": {"count", "steps"},
    "pause.done": {"code"},
    "pause.already": {"code"},
    "pause.not_running": {"code", "status"},
    "resume.done": {"code"},
    "resume.not_paused": {"code"},
    "resume.still_missing": {"missing"},
    "cohort.paused_notice": {"code", "reason"},
    "reason.demoted": {"missing"},
    "grant.unknown_region": {"code", "codes"},
    "grant.done": {"name", "region"},
    "start.welcome": {"name"},
    "admission.approved": {"code"},
    "admission.not_yours": {"code"},
    "admission.passed_on": {"code"},
    "cohort.admission": {"mode"},
    "launch.bad_admission": {"value"},
    "personal.link": {"code", "link", "until"},
    "personal.by_request": {"code"},
    "personal.ended": {"code"},
    "personal.no_task_group": {"code"},
    "balance.body": {"amounts"},
    "tasks.header": {"code"},
    "tasks.line_done": {"title"},
    "tasks.line_open": {"title", "progress"},
    "tasks.line_locked": {"title", "when"},
    "tasks.progress": {"label", "done", "target"},
    "mylink.body": {"link"},
    "links.line": {"title", "link"},
    "status.held": {"steps"},
    "status.decide": {"step"},
    "step.usage": {"command"},
    "step.no_step": {"code", "step"},
    "step.cannot_retry": {"step", "status"},
    "step.cannot_skip": {"step", "status"},
    "step.waiting": {"step", "on"},
    "step.retried": {"step"},
    "step.skipped": {"step"},
    "step.talk_goes_on": {"steps"},
    "tasks_day.reward": {"reward"},
    "tasks_day.later": {"when"},
    "tasks_day.rewarded_line": {"name", "title"},
    "tasks_day.rewarded_more": {"count"},
    "tasks.how_button": {"title"},
    "tasks.how": {"how", "title"},
    "tasks.how_link": {"link"},
    "proof.sent": {"title"},
    "proof.pending": {"title"},
    "proof.review": {"code", "name", "title"},
    "proof.approved": {"title"},
    "proof.done_rejected": {"reason"},
    "reward.owed": {"title", "amount"},
    "budget.used_up": {"code", "owed", "amount"},
    **{key: names for key, names in LINES_AND_GROUPS.items() if names},
}

PLURAL_KEYS = {
    "admissions.open",
    "status.attention",
    "group_task.welcome",
    "group_talk.too_small",
    "reminder.behind",
}


def packaged_sources() -> dict[str, str]:
    folder = resources.files("bot.telegram") / "locales"
    return {name: (folder / f"{name}.yaml").read_text(encoding="utf-8") for name in SUPPORTED}


def raw(locale: str) -> dict[str, object]:
    data = yaml.safe_load(packaged_sources()[locale])
    assert isinstance(data, dict)
    return data


def names_in(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def variants(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    assert isinstance(value, dict)
    return [str(v) for v in value.values()]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The packaged catalogues copied into tmp_path, to be broken by a test."""
    for name, source in packaged_sources().items():
        (tmp_path / f"{name}.yaml").write_text(source, encoding="utf-8")
    return tmp_path


def edit(folder: Path, file: str, old: str, new: str) -> None:
    path = folder / file
    source = path.read_text(encoding="utf-8")
    assert old in source, f"{old!r} not in {file}"
    path.write_text(source.replace(old, new, 1), encoding="utf-8")


def problems_of(folder: Path) -> tuple[str, ...]:
    with pytest.raises(CatalogError) as caught:
        Catalog.load(folder)
    for problem in caught.value.problems:
        assert problem in str(caught.value)
    return caught.value.problems


# --- The packaged catalogues ---------------------------------------------------------


def test_packaged_catalogues_load_with_every_supported_locale(catalog: Catalog) -> None:
    assert catalog.locales == SUPPORTED
    assert catalog.keys == REQUIRED_KEYS


def test_packaged_catalogues_agree_on_keys_placeholders_and_plurals() -> None:
    reference = raw("en")
    for locale in SUPPORTED:
        data = raw(locale)
        assert data.keys() == reference.keys(), locale
        needed = set(Locale.parse(locale, sep="-").plural_form.tags) | {"other"}
        for key, value in data.items():
            expected = PLACEHOLDERS.get(key, set())
            for text in variants(value):
                assert names_in(text) == expected, (locale, key, text)
            if key in PLURAL_KEYS:
                assert isinstance(value, dict)
                assert set(value) == needed, (locale, key)
            else:
                assert isinstance(value, str), (locale, key)


def test_texts_are_plain_and_translated() -> None:
    english = raw("en")
    for locale in SUPPORTED:
        for key, value in raw(locale).items():
            for text in variants(value):
                assert text.strip() == text and text, (locale, key)
                assert "<" not in text and "**" not in text and "__" not in text, (locale, key)
        if locale != "en":
            same = {k for k, v in raw(locale).items() if v == english[k]}
            # Only texts made of placeholders and symbols, or words shared by both
            # languages, may stay identical.
            allowed = {
                "tasks.line_done",
                "tasks.line_open",
                "talk.by",
                "role.supervisor",
                "tasks_day.line",
                "tasks_day.rewarded_line",
                "tasks.how",
                "links.line",
            }
            assert same <= allowed, (locale, same)


def test_command_descriptions_fit_telegram(catalog: Catalog) -> None:
    for locale in SUPPORTED:
        for key in catalog.keys:
            if key.startswith("cmd."):
                assert 1 <= len(catalog.text(locale, key)) <= 256, (locale, key)


def test_callback_answers_stay_under_200_characters(catalog: Catalog) -> None:
    for locale in SUPPORTED:
        amount = catalog.money(locale, 123_456_789, "MXN")
        for key in CALLBACK_KEYS:
            text = catalog.text(locale, key, amount=amount)
            assert len(text) < 200, (locale, key, len(text))


def test_every_message_renders_in_every_locale(catalog: Catalog) -> None:
    params: dict[str, object] = {
        name: "X" * 20 for names in PLACEHOLDERS.values() for name in names if name != "count"
    }
    for locale in SUPPORTED:
        for key in catalog.keys:
            for count in (1, 2, 1_000_000):
                text = catalog.text(locale, key, **params, count=count)
                assert "{" not in text and "}" not in text, (locale, key)


def test_language_names_and_lang_set(catalog: Catalog) -> None:
    assert [catalog.language_name(loc) for loc in SUPPORTED] == ["简体中文", "Español", "English"]
    assert catalog.language_name("fr") == "English"
    assert len({catalog.text(loc, "lang.set") for loc in SUPPORTED}) == len(SUPPORTED)
    assert "English" in catalog.text("en", "lang.set")
    assert "español" in catalog.text("es", "lang.set")
    assert "简体中文" in catalog.text("zh-CN", "lang.set")


# --- Broken catalogues ---------------------------------------------------------------


def test_missing_key_is_reported_with_file_and_key(copy: Path) -> None:
    edit(copy, "es.yaml", "envelope.closed:", "# envelope.closed:")
    assert problems_of(copy) == ("es.yaml: envelope.closed: missing (en.yaml has it)",)


def test_key_not_in_english_is_reported(copy: Path) -> None:
    edit(copy, "zh-CN.yaml", "envelope.closed:", 'envelope.gone: "没了"\nenvelope.closed:')
    assert problems_of(copy) == ("zh-CN.yaml: envelope.gone: not in en.yaml",)


def test_extra_placeholder_is_reported(copy: Path) -> None:
    edit(copy, "zh-CN.yaml", "抢到{amount}！", "{name}抢到{amount}！")
    (problem,) = problems_of(copy)
    assert problem.startswith("zh-CN.yaml: envelope.grabbed: ")
    assert "unexpected {name}" in problem


def test_missing_placeholder_in_a_plural_variant_is_reported(copy: Path) -> None:
    edit(copy, "es.yaml", "{count} de pasos", "Un millón de pasos")
    (problem,) = problems_of(copy)
    assert problem.startswith("es.yaml: status.attention: plural variant 'many': ")
    assert "missing {count}" in problem


def test_missing_plural_category_is_reported(copy: Path) -> None:
    edit(copy, "es.yaml", '  many: "{count} de personas', '  # many: "{count} de personas')
    assert problems_of(copy) == (
        "es.yaml: admissions.open: plural categories missing for es: many",
    )


def test_plural_category_the_language_never_uses_is_reported(copy: Path) -> None:
    edit(
        copy,
        "zh-CN.yaml",
        "admissions.open:\n",
        'admissions.open:\n  one: "又有{count}位，共{total}人"\n',
    )
    (problem,) = problems_of(copy)
    assert problem.startswith("zh-CN.yaml: admissions.open: plural categories never used")
    assert problem.endswith(": one")


def test_plain_text_where_english_has_plurals_is_reported(copy: Path) -> None:
    edit(
        copy,
        "zh-CN.yaml",
        'status.attention:\n  other: "有',
        'status.attention: "有',
    )
    assert problems_of(copy) == (
        "zh-CN.yaml: status.attention: must be a plural mapping, as in en.yaml",
    )


def test_bad_yaml_is_reported_with_file_and_line(copy: Path) -> None:
    edit(copy, "es.yaml", 'envelope.closed: "Este sobre ya cerró."', 'envelope.closed: "Este')
    (problem,) = problems_of(copy)
    assert problem.startswith("es.yaml: line ")
    assert "not valid YAML" in problem


def test_every_problem_is_listed_at_once(copy: Path) -> None:
    edit(copy, "es.yaml", "envelope.closed:", "# envelope.closed:")
    edit(copy, "zh-CN.yaml", "抢到{amount}！", "{name}抢到{amount}！")
    edit(copy, "en.yaml", "envelope.button: ", "envelope.button: yes\n# ")
    problems = problems_of(copy)
    assert len(problems) == 3
    assert "es.yaml: envelope.closed: missing (en.yaml has it)" in problems
    assert any(p.startswith("zh-CN.yaml: envelope.grabbed: ") for p in problems)
    assert any(p.startswith("en.yaml: envelope.button: must be text (quote it)") for p in problems)


def test_bad_placeholder_syntax_and_positional_fields_are_reported(copy: Path) -> None:
    edit(copy, "es.yaml", "Ya agarraste {amount}", "Ya agarraste {amount")
    edit(copy, "zh-CN.yaml", "抢到{amount}，最后", "抢到{0}，最后")
    problems = problems_of(copy)
    assert len(problems) == 2
    assert any(p.startswith("es.yaml: envelope.already: ") for p in problems)
    assert "zh-CN.yaml: envelope.grabbed_last: placeholder {0} must be a plain name" in "".join(
        problems
    )


def test_duplicate_key_is_reported(copy: Path) -> None:
    edit(copy, "en.yaml", "envelope.closed:", 'envelope.empty: "Gone."\nenvelope.closed:')
    (problem,) = problems_of(copy)
    assert problem.startswith("en.yaml: line ")
    assert "'envelope.empty' appears twice" in problem


def test_missing_and_unsupported_locale_files_are_reported(copy: Path) -> None:
    (copy / "es.yaml").rename(copy / "pt-BR.yaml")
    assert set(problems_of(copy)) == {
        "es.yaml: missing: every supported locale needs one",
        "pt-BR.yaml: not a supported locale (zh-CN, es, en)",
    }


def test_missing_folder_is_reported(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path / "nowhere")
    assert "no such folder" in problem


def test_catalog_error_is_a_value_error() -> None:
    assert issubclass(CatalogError, ValueError)


# --- negotiate() ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "locale"),
    [
        ("zh-hans", "zh-CN"),
        ("zh-hant", "zh-CN"),
        ("zh", "zh-CN"),
        ("zh-CN", "zh-CN"),
        ("zh_cn", "zh-CN"),
        ("es", "es"),
        ("es-419", "es"),
        ("es-MX", "es"),
        ("ES", "es"),
        ("en", "en"),
        ("en-US", "en"),
        ("en-gb", "en"),
        ("pt-br", "en"),
        ("ru", "en"),
        ("", "en"),
        ("   ", "en"),
        (None, "en"),
    ],
)
def test_negotiate(code: str | None, locale: str) -> None:
    assert negotiate(code) == locale
    assert negotiate(code) in SUPPORTED
    assert DEFAULT == "en"


# --- text() ----------------------------------------------------------------------------


def test_plural_selection_follows_each_language(catalog: Catalog) -> None:
    one = catalog.text("en", "admissions.open", count=1, total=7)
    two = catalog.text("en", "admissions.open", count=2, total=7)
    assert one.startswith("1 more person answered")
    assert two.startswith("2 more people answered")
    assert "7" in one and "7" in two

    assert raw("zh-CN")["admissions.open"].keys() == {"other"}  # type: ignore[attr-defined]
    zh_one = catalog.text("zh-CN", "admissions.open", count=1, total=7)
    zh_two = catalog.text("zh-CN", "admissions.open", count=2, total=7)
    assert zh_one.replace("1位", "2位", 1) == zh_two

    assert catalog.text("es", "status.attention", count=1, steps="d1").startswith("1 paso ")
    assert catalog.text("es", "status.attention", count=3, steps="d1").startswith("3 pasos ")
    assert catalog.text("es", "status.attention", count=1_000_000, steps="d1").startswith(
        "1000000 de pasos "
    )


def test_unknown_locale_falls_back_to_english(catalog: Catalog) -> None:
    english = catalog.text("en", "envelope.closed")
    assert catalog.text("fr", "envelope.closed") == english
    assert catalog.text("", "envelope.closed") == english
    assert catalog.text("es-MX", "envelope.closed") == catalog.text("es", "envelope.closed")


def test_unknown_key_raises_key_error_naming_it(catalog: Catalog) -> None:
    with pytest.raises(KeyError, match=r"envelope\.nope"):
        catalog.text("en", "envelope.nope")


def test_missing_param_raises_key_error_naming_it(catalog: Catalog) -> None:
    with pytest.raises(KeyError, match="amount"):
        catalog.text("es", "envelope.grabbed")
    with pytest.raises(KeyError, match="total"):
        catalog.text("en", "admissions.open", count=2)
    with pytest.raises(KeyError, match="count"):
        catalog.text("zh-CN", "admissions.open", total=2)


def test_count_must_be_a_number(catalog: Catalog) -> None:
    with pytest.raises(TypeError):
        catalog.text("en", "admissions.open", count="2", total=2)


def test_params_fill_in_and_extras_are_ignored(catalog: Catalog) -> None:
    text = catalog.text("en", "tasks_day.line", title="Invite", how="Share", reward="$2.00")
    assert text == "• Invite: Share"
    assert catalog.text("en", "launch.bad_option", option="{x}") == "I didn't understand “{x}”."


# --- money(), when(), day() ----------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "amount", "currency", "expected"),
    [
        ("en", 1234, "USD", "$12.34"),
        ("en", 1234, "EUR", "€12.34"),
        ("en", 1234, "CNY", "CN¥12.34"),
        ("en", 1234, "JPY", "¥1,234"),
        ("es", 1234, "USD", "12,34\xa0US$"),
        ("es", 1234, "EUR", "12,34\xa0€"),
        ("es", 1234, "CNY", "12,34\xa0CNY"),
        ("es", 1234, "JPY", "1.234\xa0JPY"),
        ("zh-CN", 1234, "USD", "US$12.34"),
        ("zh-CN", 1234, "EUR", "€12.34"),
        ("zh-CN", 1234, "CNY", "¥12.34"),
        ("zh-CN", 1234, "JPY", "JP¥1,234"),
        ("en", 5, "USD", "$0.05"),
        ("en", 123_456_789, "usd", "$1,234,567.89"),
        ("en", -250, "EUR", "-€2.50"),
        ("fr", 1234, "USD", "$12.34"),
    ],
)
def test_money(catalog: Catalog, locale: str, amount: int, currency: str, expected: str) -> None:
    assert catalog.money(locale, amount, currency) == expected


def test_when_converts_to_the_given_zone(catalog: Catalog) -> None:
    at = datetime(2026, 3, 23, 23, 30, tzinfo=UTC)
    assert catalog.when("es", at, "UTC") == "23 mar, 23:30"
    assert catalog.when("es", at, "Asia/Tokyo") == "24 mar, 8:30"
    assert catalog.when("es", at, "America/Mexico_City") == "23 mar, 17:30"
    assert catalog.when("zh-CN", at, "Asia/Shanghai") == "3月24日 07:30"
    assert catalog.when("en", at, "Europe/Madrid").replace("\u202f", " ") == "Mar 24, 12:30 AM"
    # The same instant written in another offset gives the same local text.
    shifted = at.astimezone(timezone(timedelta(hours=-5)))
    assert catalog.when("en", shifted, "Asia/Tokyo") == catalog.when("en", at, "Asia/Tokyo")


def test_when_rejects_naive_datetimes(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match="aware"):
        catalog.when("en", datetime(2026, 3, 23, 12, 0), "UTC")  # noqa: DTZ001


def test_day_is_a_medium_date(catalog: Catalog) -> None:
    value = date(2026, 3, 23)
    assert catalog.day("en", value) == "Mar 23, 2026"
    assert catalog.day("es", value) == "23 mar 2026"
    assert catalog.day("zh-CN", value) == "2026年3月23日"
