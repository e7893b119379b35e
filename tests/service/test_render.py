"""Unit tests for bot.telegram.render: task progress and pause reasons in the reader's language."""

from __future__ import annotations

from typing import Any

import pytest

from bot.telegram.i18n import Catalog
from bot.telegram.render import Renderer
from funnels.cohorts.pauses import PauseReason
from funnels.kernel.messaging import CohortPaused
from funnels.ladder.goals import describe_progress
from funnels.scripts.model import Goal

SALES = {"event": "order.paid", "sum": "amount", "at_least": "500.00"}


@pytest.fixture(scope="module")
def render() -> Renderer:
    return Renderer(Catalog.load())


def progress(render: Renderer, locale: str, spec: dict[str, Any], values: dict[int, int]) -> str:
    leaves = describe_progress(Goal.model_validate(spec), values, "CNY")
    return render.task_progress(locale, leaves)


# --- /tasks progress -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en", "sales CN¥120.00 of CN¥500.00"),
        ("es", "ventas 120,00\xa0CNY de 500,00\xa0CNY"),  # Babel puts a no-break space
        ("zh-CN", "累计成交 ¥120.00/¥500.00"),
    ],
)
def test_a_sum_goal_is_money_in_the_cohorts_currency(
    render: Renderer, locale: str, expected: str
) -> None:
    assert progress(render, locale, SALES, {0: 12_000}) == expected


def test_counts_are_plain_numbers_under_a_word_for_the_event(render: Renderer) -> None:
    spec = {
        "all": [
            {"event": "fan.locked", "count": 10},
            {"event": "link.clicked", "unique": "visitor", "count": 100},
            {"event": "order.paid", "count": 1},
        ]
    }
    values = {0: 3, 1: 40}
    assert progress(render, "en", spec, values) == (
        "fans 3 of 10, distinct visitors 40 of 100, paid orders 0 of 1"
    )
    assert progress(render, "es", spec, values) == (
        "seguidores 3 de 10, visitantes distintos 40 de 100, pedidos pagados 0 de 1"
    )
    assert progress(render, "zh-CN", spec, values) == "粉丝 3/10, 不同访客 40/100, 付款订单 0/1"


def test_an_event_without_a_word_shows_its_script_label(render: Renderer) -> None:
    spec = {"event": "coupon.redeemed", "where": {"kind": "gift"}, "count": 2}
    assert progress(render, "es", spec, {0: 1}) == "coupon.redeemed [kind=gift] 1 de 2"


def test_leaves_that_would_read_alike_keep_their_filters(render: Renderer) -> None:
    spec = {
        "all": [
            {"event": "post.published", "where": {"template": "day3_post"}},
            {"event": "post.published", "where": {"template": "day5_post"}},
            {"event": "talk.given", "where": {"room": "main"}},
        ]
    }
    assert progress(render, "en", spec, {0: 1}) == (
        "posts published [template=day3_post] 1 of 1, "
        "posts published [template=day5_post] 0 of 1, talks given 0 of 1"
    )


# --- pause reasons ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "en", "es", "zh"),
    [
        (
            "paused_by_leader",
            "the leader sent /pause",
            "el líder envió /pause",
            "团长发送了 /pause",
        ),
        ("paused_by_ops", "ops paused it", "operaciones lo pausó", "运营暂停了本期"),
        (
            "paused by the leader",
            "the leader sent /pause",
            "el líder envió /pause",
            "团长发送了 /pause",
        ),
        ("removed", "I was removed from the group", "me sacaron del grupo", "我被移出了群"),
        (
            "demoted: can_pin_messages",
            "I lost rights I need: pinning messages",
            "perdí permisos que necesito: fijar mensajes",
            "我缺少需要的权限：置顶消息",
        ),
        (
            "demoted",
            "I lost admin rights I need in the group",
            "perdí permisos de administrador que necesito en el grupo",
            "我失去了在群里需要的管理员权限",
        ),
        ("ops: moved to next week", *["ops: moved to next week"] * 3),
    ],
)
def test_a_stored_reason_reads_in_each_locale(
    render: Renderer, stored: str, en: str, es: str, zh: str
) -> None:
    reason = PauseReason.parse(stored)
    assert [render.pause_reason(loc, reason) for loc in ("en", "es", "zh-CN")] == [en, es, zh]


def test_the_leaders_notice_names_lost_rights_even_when_telegram_did_not(
    render: Renderer,
) -> None:
    # A post refused for rights: the tick knows the bot was demoted, not which rights.
    notice = render(CohortPaused("K7Q2PX", "demoted", (), "es"))
    assert notice.text == (
        "La cohorte K7Q2PX está en pausa: perdí permisos de administrador que necesito "
        "en el grupo. Cuando lo resuelvas, envía /resume en el grupo."
    )
