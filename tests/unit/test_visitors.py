"""Visitor cookies (signed ids; anything else is no cookie) and link-preview fetchers."""

from __future__ import annotations

import pytest

from funnels.ladder.visitors import VisitorSeal, is_link_preview, new_visitor_id

KEY = b"k" * 32


def test_a_sealed_visitor_opens_to_the_same_id() -> None:
    seal = VisitorSeal(KEY)
    visitor = new_visitor_id()
    assert seal.open(seal.seal(visitor)) == visitor


def test_visitor_ids_are_random_and_cookie_safe() -> None:
    ids = {new_visitor_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(v) == 22 and v.replace("-", "").replace("_", "").isalnum() for v in ids)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),  # another mac
        lambda c: ("A" if c[0] != "A" else "B") + c[1:],  # another id, same mac
        lambda c: c.split(".")[0],  # no mac
        lambda c: c + ".x",
        lambda c: "",
        lambda c: "." + c.split(".")[1],
        lambda c: "x" * 200,
        lambda c: c.replace(".", ".é"),
    ],
)
def test_a_tampered_cookie_is_no_cookie(tamper: object) -> None:
    seal = VisitorSeal(KEY)
    cookie = seal.seal(new_visitor_id())
    assert callable(tamper)
    assert seal.open(tamper(cookie)) is None


def test_a_cookie_signed_with_another_key_is_no_cookie() -> None:
    visitor = new_visitor_id()
    assert VisitorSeal(b"o" * 32).open(VisitorSeal(KEY).seal(visitor)) is None
    assert VisitorSeal(KEY).open(None) is None


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        VisitorSeal(b"short")


@pytest.mark.parametrize(
    "agent",
    [
        "TelegramBot (like TwitterBot)",
        "WhatsApp/2.23.20.0 A",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Facebot",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Twitterbot/1.0",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 (compatible; YandexBot/3.0)",
        "",
        "   ",
        None,
    ],
)
def test_preview_fetchers_are_recognised(agent: str | None) -> None:
    assert is_link_preview(agent)


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/119.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0",
        # Telegram's and WeChat's in-app browsers are people, not previews.
        "Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/118.0 Mobile Safari/537.36 Telegram-Android/10.2.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 16_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.40(0x18002831) NetType/WIFI",
    ],
)
def test_browsers_are_people(agent: str) -> None:
    assert not is_link_preview(agent)
