"""The dashboard's words in zh-CN, es and en, and its numbers, money, times and
durations written the way each language writes them.

The texts live in ``bot/http/web/locales/<locale>.yaml`` and load through the bot's own
catalogue (:class:`bot.telegram.i18n.Catalog`): the same checks at start (every locale has
every key of ``en.yaml`` with the same placeholders), the same Babel formatting, and money
with the decimals of the one currency table. A page gets a :class:`Wording` bound to the
reader's locale: chosen in the language switch (a cookie), else the browser's
``Accept-Language``, else English.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.numbers import format_decimal, format_percent

from bot.telegram.i18n import SUPPORTED, Catalog

LANGUAGE_COOKIE = "fbd_lang"
DEFAULT = "en"
_LOCALES = Path(__file__).parent / "locales"


def load_catalog() -> Catalog:
    """The dashboard's texts, checked (a broken catalogue fails at start, not on a page)."""
    return Catalog.load(_LOCALES)


def _match(tag: str) -> str | None:
    """The supported locale for one language tag (``zh-TW`` -> ``zh-CN``), if any."""
    tag = tag.strip().replace("_", "-").lower()
    for locale in SUPPORTED:
        if tag == locale.lower():
            return locale
    primary = tag.split("-", 1)[0]
    return next((loc for loc in SUPPORTED if loc.split("-", 1)[0].lower() == primary), None)


def _weight(quality: str) -> float:
    try:
        value = float(quality)
    except ValueError:
        return 0.0
    return value if 0.0 <= value <= 1.0 else 0.0


def choose_locale(chosen: str | None, accept_language: str | None) -> str:
    """The page's locale: the one chosen in the switch, else the browser's first
    supported language by ``q`` weight, else English."""
    if chosen in SUPPORTED:
        return chosen
    offers: list[tuple[float, int, str]] = []
    for n, item in enumerate((accept_language or "")[:500].split(",")):
        tag, _, params = item.partition(";")
        quality = params.strip().removeprefix("q=") if params.strip().startswith("q=") else "1"
        offers.append((-_weight(quality), n, tag))
    for weight, _, tag in sorted(offers):
        locale = _match(tag) if weight < 0 else None
        if locale is not None:
            return locale
    return DEFAULT


@lru_cache(maxsize=8)
def _babel(locale: str) -> Locale:
    return Locale.parse(locale, sep="-")


class Wording:
    """The texts and formats of one locale, as templates use them."""

    def __init__(self, catalog: Catalog, locale: str) -> None:
        self.catalog = catalog
        self.locale = locale

    def __call__(self, key: str, /, **params: object) -> str:
        return self.catalog.text(self.locale, key, **params)

    def has(self, key: str) -> bool:
        return self.catalog.has(key)

    def either(self, key: str, fallback: str) -> str:
        """The text of ``key`` if the catalogue has it, else ``fallback`` as it is: for
        values that come from the data (a step kind, an action) and may be new."""
        return self(key) if self.has(key) else fallback

    def number(self, value: int | float) -> str:
        return format_decimal(value, locale=_babel(self.locale))

    def percent(self, rate: float | None) -> str:
        """A rate from 0 to 1 as a percentage with at most one decimal; a dash for none."""
        if rate is None:
            return "–"
        return format_percent(rate, "#,##0.#%", locale=_babel(self.locale))

    def money(self, amount_minor: int | None, currency: str) -> str:
        if amount_minor is None:
            return "–"
        return self.catalog.money(self.locale, amount_minor, currency)

    def when(self, at: datetime | None, timezone: str) -> str:
        """A moment in the cohort's own time zone (no year: a cohort lasts four weeks)."""
        return self.catalog.when(self.locale, at, timezone) if at is not None else "–"

    def day(self, value: date | None) -> str:
        return self.catalog.day(self.locale, value) if value is not None else "–"

    def last_day(self, ends_at: datetime | None, timezone: str) -> str:
        """The last local day before ``ends_at`` (a cohort ends at a midnight, which as a
        time would read as the day after, at 12:00 AM)."""
        if ends_at is None:
            return "–"
        return self.day((ends_at.astimezone(ZoneInfo(timezone)) - timedelta(microseconds=1)).date())

    def duration(self, seconds: int | None) -> str:
        """``41 s``, ``2 min 5 s``, ``3 h 20 min``; a dash for none."""
        if seconds is None:
            return "–"
        if seconds < 60:
            return self("time.seconds", s=seconds)
        minutes, rest = divmod(seconds, 60)
        if minutes < 60:
            return self("time.minutes", m=minutes, s=rest)
        hours, minutes = divmod(minutes, 60)
        return self("time.hours", h=self.number(hours), m=minutes)

    def languages(self) -> Mapping[str, str]:
        """Each locale by the name its speakers call it, for the switch."""
        return {loc: self.catalog.language_name(loc) for loc in self.catalog.locales}
