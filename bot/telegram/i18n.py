"""The bot's own words: the zh-CN, es and en message catalogues and how to read them.

Every text funnelbot writes itself (envelope callbacks, command replies, admissions, the
task ladder, menus) lives in ``bot/telegram/locales/<locale>.yaml``: flat dotted keys mapping to
plain text with ``str.format`` placeholders, or, for a plural entry, to a mapping of CLDR
plural categories (``one``, ``many``, ``other``...) chosen by the ``count`` parameter.
Funnel scripts carry their own texts; this module only covers the bot's.

:meth:`Catalog.load` reads and checks all catalogues once at startup: every locale has
exactly the keys of ``en.yaml``, the same placeholders in every variant, and the plural
categories its language needs. After that every lookup is a couple of dict lookups.
Numbers, money and dates are formatted with Babel for the chosen locale; money shows
the decimals of the ISO 4217 table in :mod:`funnels.kernel.money`, not Babel's own.

:func:`negotiate` maps a Telegram ``language_code`` to one of :data:`SUPPORTED`.
"""

from __future__ import annotations

from collections.abc import Mapping
from copy import copy
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import NumberPattern, format_currency
from babel.plural import PluralRule

from bot.telegram.catalog_checks import (
    DEFAULT,
    SUFFIX,
    CatalogError,
    Checker,
    Text,
    reference_names,
    show_names,
)
from funnels.kernel.money import exponent

SUPPORTED: tuple[str, ...] = ("zh-CN", "es", "en")


# How each language calls itself, for the /lang menu.
_LANGUAGE_NAMES: Final[Mapping[str, str]] = {
    "zh-CN": "简体中文",
    "es": "Español",
    "en": "English",
}


# Primary language subtag of a Telegram language_code -> supported locale. Every Chinese
# variant (zh, zh-hans, zh-hant, zh-TW...) gets the Simplified Chinese catalogue.
_BY_LANGUAGE: Final[Mapping[str, str]] = {"zh": "zh-CN", "es": "es", "en": "en"}


def negotiate(language_code: str | None) -> str:
    """The supported locale for a Telegram ``User.language_code``; unknown -> ``en``."""
    if not language_code:
        return DEFAULT
    code = language_code.strip().replace("_", "-").lower()
    for locale in SUPPORTED:
        if code == locale.lower():
            return locale
    return _BY_LANGUAGE.get(code.split("-", 1)[0], DEFAULT)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _babel_locale(locale: str) -> Locale:
    return Locale.parse(locale, sep="-")


def _datetime_pattern(locale: Locale) -> str | None:
    """A compact date and time pattern such as ``MMM d, h:mm a`` (no year), if known."""
    try:
        day = locale.datetime_skeletons["MMMd"].pattern
        time = locale.time_formats["short"].pattern
        glue = str(locale.datetime_formats["short"])
    except (KeyError, AttributeError):
        return None
    return glue.replace("{1}", day).replace("{0}", time)


class Catalog:
    """All locales' messages, checked; build it once with :meth:`load`."""

    def __init__(self, messages: Mapping[str, Mapping[str, Text]]) -> None:
        self._messages: dict[str, dict[str, Text]] = {
            locale: dict(entries) for locale, entries in messages.items()
        }
        reference = self._messages[DEFAULT]
        self._names: dict[str, frozenset[str]] = {
            key: reference_names(entry) for key, entry in reference.items()
        }
        self._babel: dict[str, Locale] = {loc: _babel_locale(loc) for loc in self._messages}
        self._plural: dict[str, PluralRule] = {
            loc: babel.plural_form for loc, babel in self._babel.items()
        }
        self._when: dict[str, str | None] = {
            loc: _datetime_pattern(babel) for loc, babel in self._babel.items()
        }

    @classmethod
    def load(cls, directory: Path | None = None) -> Catalog:
        """Read and check every ``<locale>.yaml`` (the packaged ones unless ``directory``).

        Raises :class:`CatalogError` listing every problem found, not just the first.
        """
        root: Traversable = (
            directory if directory is not None else resources.files("bot.telegram") / "locales"
        )
        checker = Checker()
        if not root.is_dir():
            checker.add(str(root), None, "no such folder of locale catalogues")
            raise CatalogError(checker.problems)
        files = {
            item.name[: -len(SUFFIX)]: item
            for item in root.iterdir()
            if item.name.endswith(SUFFIX) and item.is_file()
        }
        parsed: dict[str, dict[str, Text]] = {}
        for name in sorted(files):
            file = files[name].name
            if name not in SUPPORTED:
                checker.add(file, None, f"not a supported locale ({', '.join(SUPPORTED)})")
                continue
            try:
                source = files[name].read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                checker.add(file, None, f"cannot be read: {error}")
                continue
            entries = checker.parse(file, source)
            if entries is not None:
                parsed[name] = entries
        for name in SUPPORTED:
            if name not in files:
                checker.add(name + SUFFIX, None, "missing: every supported locale needs one")
        reference = parsed.get(DEFAULT)
        if reference is not None:
            for name, entries in parsed.items():
                checker.compare(name + SUFFIX, _babel_locale(name), entries, reference)
        if checker.problems:
            raise CatalogError(checker.problems)
        return cls(parsed)

    @property
    def locales(self) -> tuple[str, ...]:
        """The loaded locales, in :data:`SUPPORTED` order."""
        return tuple(loc for loc in SUPPORTED if loc in self._messages)

    @property
    def keys(self) -> frozenset[str]:
        """Every message key (the same in every locale)."""
        return frozenset(self._names)

    def has(self, key: str) -> bool:
        """Whether ``key`` is a message (in every locale, as the catalogues agree)."""
        return key in self._names

    def _locale(self, locale: str) -> str:
        return locale if locale in self._messages else negotiate(locale)

    def text(self, locale: str, key: str, /, **params: object) -> str:
        """The message ``key`` in ``locale`` with ``params`` filled in.

        A plural entry picks its variant from ``count`` by the locale's CLDR rules.
        Unknown locales fall back to English; an unknown key or a missing parameter
        raises KeyError naming it. Extra parameters are ignored.
        """
        loc = self._locale(locale)
        try:
            entry = self._messages[loc][key]
        except KeyError:
            raise KeyError(f"no message {key!r} in the locale catalogue") from None
        missing = self._names[key] - params.keys()
        if isinstance(entry, str):
            template = entry
        else:
            if "count" not in params:
                missing = missing | {"count"}
            else:
                count = params["count"]
                if isinstance(count, bool) or not isinstance(count, int | float | Decimal):
                    raise TypeError(f"message {key!r}: count must be a number, not {count!r}")
                template = entry.get(self._plural[loc](count)) or entry["other"]
        if missing:
            raise KeyError(f"message {key!r} needs the parameter(s) {show_names(missing)}")
        return template.format_map(params)

    def money(self, locale: str, amount_minor: int, currency: str) -> str:
        """An amount in minor units (cents) as local currency text, e.g. ``12,34 €``."""
        return _money(self._babel[self._locale(locale)], amount_minor, currency.upper())

    def when(self, locale: str, at: datetime, timezone: str) -> str:
        """An aware datetime as short local date and time in ``timezone`` (IANA name).

        No year: ``Mar 24, 8:30 AM``, ``24 mar, 8:30``, ``3月24日 08:30``. A naive datetime
        raises ValueError, an unknown zone ``zoneinfo.ZoneInfoNotFoundError``.
        """
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"when() needs an aware datetime, got {at!r}")
        loc = self._locale(locale)
        zone = _zone(timezone)
        pattern = self._when[loc]
        return format_datetime(at, pattern or "short", tzinfo=zone, locale=self._babel[loc])

    def day(self, locale: str, value: date) -> str:
        """A date in the locale's medium form, e.g. ``Mar 23, 2026``."""
        return format_date(value, "medium", locale=self._babel[self._locale(locale)])

    def language_name(self, locale: str) -> str:
        """How the locale's language calls itself: ``English``, ``Español``, ``简体中文``."""
        return _LANGUAGE_NAMES[self._locale(locale)]


@lru_cache(maxsize=8192)
def _money(babel: Locale, amount_minor: int, code: str) -> str:
    # Babel takes about 40 us per amount; a crowd grabbing an envelope's shares hears
    # the same few hundred amounts over and over, so they are remembered.
    places = exponent(code)
    amount = Decimal(amount_minor).scaleb(-places)  # exact: no rounding can happen
    pattern = _currency_pattern(babel, places)
    return format_currency(amount, code, format=pattern, locale=babel, currency_digits=False)


@lru_cache(maxsize=64)
def _currency_pattern(babel: Locale, places: int) -> NumberPattern:
    """The locale's currency pattern (symbol, grouping, separators) with ``places`` decimals.

    Babel's own decimals for a currency come from CLDR, which differs from ISO 4217 for
    a dozen currencies (it shows IQD, RSD or LBP without decimals); amounts are counted
    in ISO minor units, so the ISO table decides and Babel only dresses the number.
    """
    pattern: NumberPattern = copy(babel.currency_formats["standard"])
    pattern.frac_prec = (places, places)
    return pattern
