"""Checking the locale catalogues when they load: every locale has every key, with the
same placeholders and plural forms, and no key written twice."""

from __future__ import annotations

import re
import string

import yaml
from babel import Locale

DEFAULT = "en"
"""The locale every other is checked against, and falls back to."""
SUFFIX = ".yaml"
Text = str | dict[str, str]  # a plain message, or CLDR category -> message


_KEY = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")


_FORMATTER = string.Formatter()


class CatalogError(ValueError):
    """The catalogues are broken; ``problems`` lists each as ``file: key: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'' if count == 1 else 's'} in the locale catalogues"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems))


def placeholders(text: str) -> frozenset[str]:
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


def show_names(names: frozenset[str] | set[str]) -> str:
    return ", ".join(f"{{{n}}}" for n in sorted(names))


class UniqueKeyLoader(yaml.SafeLoader):
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


UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


class Checker:
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
            data = yaml.load(source, Loader=UniqueKeyLoader)
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
            placeholders(text)
        except ValueError as error:
            self.add(file, key, f"{where}{error}")
            return False
        return True

    def compare(
        self, file: str, locale: Locale, entries: dict[str, Text], ref: dict[str, Text]
    ) -> None:
        """Keys, shapes, placeholders and plural categories against the ``en.yaml`` entries."""
        needed = set(locale.plural_form.tags) | {"other"}
        broken = self.broken.get(file, set()) | self.broken.get(DEFAULT + SUFFIX, set())
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
            names = reference_names(expected)
            variants = {None: entry} if isinstance(entry, str) else dict(entry)
            for category, text in variants.items():
                found = placeholders(text)
                if found != names:
                    where = f"plural variant {category!r}: " if category else ""
                    diff = [f"missing {show_names(names - found)}"] if names - found else []
                    diff += [f"unexpected {show_names(found - names)}"] if found - names else []
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


def reference_names(entry: Text) -> frozenset[str]:
    """The placeholders every variant must have: those of the plain text or of ``other``."""
    if isinstance(entry, str):
        return placeholders(entry)
    return placeholders(entry.get("other", next(iter(entry.values()))))
