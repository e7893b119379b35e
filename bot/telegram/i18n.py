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

import re
import string
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

import yaml
from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import NumberPattern, format_currency
from babel.plural import PluralRule

from funnels.kernel.money import exponent

SUPPORTED: tuple[str, ...] = ("zh-CN", "es", "en")
DEFAULT = "en"

# How each language calls itself, for the /lang menu.
_LANGUAGE_NAMES: Final[Mapping[str, str]] = {
    "zh-CN": "简体中文",
    "es": "Español",
    "en": "English",
}

# Primary language subtag of a Telegram language_code -> supported locale. Every Chinese
# variant (zh, zh-hans, zh-hant, zh-TW...) gets the Simplified Chinese catalogue.
_BY_LANGUAGE: Final[Mapping[str, str]] = {"zh": "zh-CN", "es": "es", "en": "en"}

_KEY = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")
_FORMATTER = string.Formatter()
_SUFFIX = ".yaml"

Text = str | dict[str, str]  # a plain message, or CLDR category -> message


class CatalogError(ValueError):
    """The catalogues are broken; ``problems`` lists each as ``file: key: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'' if count == 1 else 's'} in the locale catalogues"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems))


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


def _placeholders(text: str) -> frozenset[str]:
    """The ``{names}`` in ``text``; ValueError for bad syntax or anything but plain names."""
    names: set[str] = set()
    for _literal, name, spec, conversion in _FORMATTER.parse(text):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise ValueError(f"placeholder {{{shown}}} must be a plain name like {{amount}}")
        names.add(name)
    return frozenset(names)


def _show(names: frozenset[str] | set[str]) -> str:
    return ", ".join(f"{{{n}}}" for n in sorted(names))


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that rejects a key written twice instead of keeping the last one."""


def _construct_unique_mapping(
    loader: yaml.SafeLoader, node: yaml.MappingNode
) -> dict[object, object]:
    seen: set[str] = set()
    for key_node, _value in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"the key {key_node.value!r} appears twice",
                    key_node.start_mark,
                )
            seen.add(key_node.value)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


class _Checker:
    """Collects every problem of a set of catalogue files before anything is raised."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        # Keys whose entry was dropped as malformed, by file; not compared further.
        self.broken: dict[str, set[str]] = {}

    def add(self, file: str, key: str | None, message: str) -> None:
        self.problems.append(f"{file}: {key}: {message}" if key else f"{file}: {message}")

    def parse(self, file: str, source: str) -> dict[str, Text] | None:
        """One file's entries with the right shapes; problems noted, bad entries dropped."""
        try:
            data = yaml.load(source, Loader=_UniqueKeyLoader)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error)
            self.add(file, None, f"{where}not valid YAML: {problem}")
            return None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.add(file, None, "must be a mapping of message keys to texts")
            return None
        entries: dict[str, Text] = {}
        for raw_key, value in data.items():
            key = str(raw_key)
            if not isinstance(raw_key, str) or not _KEY.fullmatch(key):
                self.add(file, key, "keys are lowercase dotted names like envelope.grabbed")
                continue
            entry = self._entry(file, key, value)
            if entry is None:
                self.broken.setdefault(file, set()).add(key)
            else:
                entries[key] = entry
        return entries

    def _entry(self, file: str, key: str, value: object) -> Text | None:
        if isinstance(value, str):
            return value if self._text(file, key, value) else None
        if isinstance(value, dict) and value:
            variants: dict[str, str] = {}
            for category, text in value.items():
                if not isinstance(text, str):
                    self.add(file, key, f"plural variant {category!r} must be text")
                elif self._text(file, key, text, category):
                    variants[str(category)] = text
            return variants if len(variants) == len(value) else None
        kind = "an empty mapping" if isinstance(value, dict) else type(value).__name__
        self.add(
            file, key, f"must be text (quote it) or a mapping of plural categories, not {kind}"
        )
        return None

    def _text(self, file: str, key: str, text: str, category: str | None = None) -> bool:
        where = f"plural variant {category!r}: " if category else ""
        if not text.strip():
            self.add(file, key, f"{where}empty text")
            return False
        try:
            _placeholders(text)
        except ValueError as error:
            self.add(file, key, f"{where}{error}")
            return False
        return True

    def compare(
        self, file: str, locale: Locale, entries: dict[str, Text], ref: dict[str, Text]
    ) -> None:
        """Keys, shapes, placeholders and plural categories against the ``en.yaml`` entries."""
        needed = set(locale.plural_form.tags) | {"other"}
        broken = self.broken.get(file, set()) | self.broken.get(DEFAULT + _SUFFIX, set())
        for key in sorted(ref.keys() - entries.keys() - broken):
            self.add(file, key, "missing (en.yaml has it)")
        for key in sorted(entries.keys() - ref.keys() - broken):
            self.add(file, key, "not in en.yaml")
        for key, entry in entries.items():
            if key not in ref:
                continue
            expected = ref[key]
            if isinstance(expected, str) != isinstance(entry, str):
                shape = "plain text" if isinstance(expected, str) else "a plural mapping"
                self.add(file, key, f"must be {shape}, as in en.yaml")
                continue
            names = _reference_names(expected)
            variants = {None: entry} if isinstance(entry, str) else dict(entry)
            for category, text in variants.items():
                found = _placeholders(text)
                if found != names:
                    where = f"plural variant {category!r}: " if category else ""
                    diff = [f"missing {_show(names - found)}"] if names - found else []
                    diff += [f"unexpected {_show(found - names)}"] if found - names else []
                    self.add(
                        file, key, f"{where}placeholders differ from en.yaml: {'; '.join(diff)}"
                    )
            if isinstance(entry, dict):
                if needed - entry.keys():
                    missing = ", ".join(sorted(needed - entry.keys()))
                    self.add(file, key, f"plural categories missing for {locale}: {missing}")
                if entry.keys() - needed:
                    unused = ", ".join(sorted(entry.keys() - needed))
                    self.add(file, key, f"plural categories never used in {locale}: {unused}")


def _reference_names(entry: Text) -> frozenset[str]:
    """The placeholders every variant must have: those of the plain text or of ``other``."""
    if isinstance(entry, str):
        return _placeholders(entry)
    return _placeholders(entry.get("other", next(iter(entry.values()))))


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
            key: _reference_names(entry) for key, entry in reference.items()
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
        checker = _Checker()
        if not root.is_dir():
            checker.add(str(root), None, "no such folder of locale catalogues")
            raise CatalogError(checker.problems)
        files = {
            item.name[: -len(_SUFFIX)]: item
            for item in root.iterdir()
            if item.name.endswith(_SUFFIX) and item.is_file()
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
                checker.add(name + _SUFFIX, None, "missing: every supported locale needs one")
        reference = parsed.get(DEFAULT)
        if reference is not None:
            for name, entries in parsed.items():
                checker.compare(name + _SUFFIX, _babel_locale(name), entries, reference)
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
            raise KeyError(f"message {key!r} needs the parameter(s) {_show(missing)}")
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
