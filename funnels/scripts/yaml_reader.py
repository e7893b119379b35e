"""Reading a script's YAML with limits, so hostile or broken text is refused cheaply.

Scripts come from authors' files and from Telegram (``/launch``), so the text may be
anything. PyYAML alone would let a few hundred bytes of nested aliases ("billion
laughs") expand into gigabytes, print a traceback on a control character, or spend
seconds in pure-Python scanning of a large file. Here the parser events come from
libyaml when PyYAML has it (about 15 times faster than its Python scanner), and the
node tree is composed the way PyYAML's Composer does it, but counting as it goes:
values, aliases (each costing the size of what it names, so a bomb is refused before
any of it is expanded) and nesting depth. Values are then built by PyYAML's safe
constructor, restricted to plain tags. Every failure is a :class:`YamlProblem` with a
line and a plain message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    Event,
    MappingStartEvent,
    ScalarEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.resolver import Resolver

from funnels.kernel.text import brief, cut

MAX_BYTES = 1_000_000
"""Largest script accepted, in UTF-8 bytes; a long real script is about 30 kB."""
MAX_DEPTH = 64
"""Deepest nesting of lists and mappings; a script needs about eight levels."""
MAX_VALUES = 25_000
"""Most keys, items and texts in a script, counting each alias as a full copy of what
it names (pydantic and the checks walk the copies). The shipped scripts have about 850.
Each value costs about 1 kB on the way (node, data, pydantic error), so this bound keeps
`funnelbot script validate` under 100 MB and well under a second on any input."""
MAX_ALIASES = 1_000
"""Most ``*name`` references in one script."""
MAX_NUMBER_CHARS = 100
"""Longest number read as a number: Python's int() is quadratic in the digits, and no
script field needs more than ten."""

T = TypeVar("T")

_YAML = "tag:yaml.org,2002:"
_TAG_KINDS = {
    "str": "text",
    "int": "a whole number",
    "float": "a number",
    "bool": "true/false",
    "null": "nothing",
    "timestamp": "a date",
    "seq": "a list",
    "map": "a mapping",
    "merge": "a merge key",
    "value": "text",
}
"""The only tags a script may use (written or implied), with how they read in messages.
Others (!!binary, !!set, !!python/..., custom !tags) build values no field takes."""

# Characters YAML forbids in a stream (the same set in PyYAML and libyaml); checked up
# front so the problem has a line and says which character, not a reader traceback.
_FORBIDDEN = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


class YamlProblem(Exception):
    """Why the text is not a usable YAML document, where (1-based line), and the node
    the problem is about when there is one (so the loader can name its field)."""

    def __init__(self, message: str, line: int | None, node: yaml.Node | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.node = node


def compose(text: str) -> yaml.Node | None:
    """The node tree of the single document in ``text`` (``None`` if empty), within the
    limits above. Raises :class:`YamlProblem`."""
    _check_characters(text)
    events: _Events | None = None
    try:
        events = _events(text)
        return _Composer(events).compose()
    except yaml.MarkedYAMLError as exc:
        raise _invalid(exc) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {_one_line(str(exc))}", None) from None
    finally:
        if events is not None:
            events.dispose()


def construct(node: yaml.Node) -> Any:
    """The plain Python data of a composed tree. Merge keys (``<<``) are resolved in the
    nodes, in place. Raises :class:`YamlProblem`."""
    try:
        return _Constructor().construct_document(node)
    except YamlProblem:
        raise
    except yaml.MarkedYAMLError as exc:
        raise _invalid(exc) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {_one_line(str(exc))}", None) from None


def construct_each(nodes: Iterable[tuple[T, yaml.Node]]) -> Iterator[tuple[T, Any]]:
    """(label, value) for each (label, node) whose value can be built; the others are
    skipped (their problem was reported when the whole tree was built)."""
    constructor = _Constructor()
    for label, node in nodes:
        try:
            yield label, constructor.construct_object(node, deep=True)
        except (YamlProblem, yaml.YAMLError):
            continue


def _invalid(exc: yaml.MarkedYAMLError) -> YamlProblem:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    parts = [_one_line(p) for p in (exc.context, exc.problem) if p]
    return YamlProblem("invalid YAML: " + ", ".join(parts), line)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _check_characters(text: str) -> None:
    found = _FORBIDDEN.search(text)
    if found is None:
        return
    before = text[: found.start()]
    breaks = list(_LINE_BREAK.finditer(before))
    column = found.start() - (breaks[-1].end() if breaks else 0) + 1
    code = ord(found.group())
    what = "control character" if code < 0x20 or 0x7F <= code <= 0x9F else "character"
    raise YamlProblem(
        f"the {what} U+{code:04X} (column {column}) is not allowed in a script; delete it",
        len(breaks) + 1,
    )


# ---------------------------------------------------------------- composing


class _Events(Protocol):
    """The event half of a YAML loader: libyaml's CParser or PyYAML's own parser."""

    def get_event(self) -> Event | None: ...
    def dispose(self) -> None: ...


def _events(text: str) -> _Events:
    if yaml.__with_libyaml__:
        from yaml._yaml import CParser

        return CParser(text)
    return yaml.SafeLoader(text)  # the same events, from the pure-Python scanner


@dataclass(slots=True)
class _Open:
    """A list or mapping whose end event has not come yet."""

    node: yaml.SequenceNode | yaml.MappingNode
    anchor: str | None
    before: int
    """Values counted before it began: its size, aliases expanded, is the difference."""
    key: yaml.Node | None = None
    """In a mapping, the key still waiting for its value."""


class _Composer:
    """Builds the node tree from parser events, as PyYAML's Composer does, counting
    values, aliases and depth as it goes. Iterative, one event at a time: nesting is
    bounded by MAX_DEPTH rather than by Python's stack, and nothing is built past a limit.
    """

    def __init__(self, events: _Events) -> None:
        self._events = events
        self._resolve: Callable[..., str] = Resolver().resolve
        self._anchors: dict[str, yaml.Node] = {}
        self._sizes: dict[str, int] = {}
        """Anchor -> values in the finished node it names, its own aliases expanded."""
        self._values = 0
        self._aliases = 0

    def compose(self) -> yaml.Node | None:
        get = self._events.get_event
        get()  # the stream start
        if isinstance(get(), StreamEndEvent):  # else a document start
            return None
        root = self._document()
        get()  # the document end
        after = get()
        if not isinstance(after, StreamEndEvent):
            raise YamlProblem(
                "invalid YAML: expected a single document in the stream, but found another "
                "document",
                _line(after),
            )
        return root

    def _document(self) -> yaml.Node:
        get = self._events.get_event
        stack: list[_Open] = []
        while True:
            event = get()
            node: yaml.Node
            if isinstance(event, CollectionEndEvent):
                done = stack.pop()
                node = done.node
                node.end_mark = event.end_mark
                if done.anchor is not None:
                    self._sizes[done.anchor] = self._values - done.before
            elif isinstance(event, AliasEvent):
                node = self._alias(str(event.anchor), _line(event))
            elif isinstance(event, ScalarEvent):
                self._spend(1, _line(event))
                tag = event.tag
                if tag is None or tag == "!":
                    tag = self._resolve(yaml.ScalarNode, event.value, event.implicit)
                marks: tuple[Any, Any] = (event.start_mark, event.end_mark)  # libyaml's Mark
                node = yaml.ScalarNode(tag, event.value, *marks, style=event.style)
                self._name(event.anchor, node, _line(event), size=1)
            else:
                assert isinstance(event, (SequenceStartEvent, MappingStartEvent))
                stack.append(self._open(event, len(stack)))
                continue
            if not stack:
                return node
            self._attach(stack[-1], node)

    def _open(self, event: SequenceStartEvent | MappingStartEvent, depth: int) -> _Open:
        line = _line(event)
        if depth >= MAX_DEPTH:
            raise YamlProblem(
                f"lists and mappings are nested more than {MAX_DEPTH} levels deep here; "
                "a script needs far fewer",
                line,
            )
        before = self._values
        self._spend(1, line)
        kind = yaml.SequenceNode if isinstance(event, SequenceStartEvent) else yaml.MappingNode
        tag = event.tag
        if tag is None or tag == "!":
            tag = self._resolve(kind, None, event.implicit)
        start: Any = event.start_mark  # libyaml's Mark has the fields of PyYAML's
        node = kind(tag, [], start, None, flow_style=event.flow_style)
        self._name(event.anchor, node, line, size=None)  # its size is known at its end
        return _Open(node, event.anchor, before)

    @staticmethod
    def _attach(parent: _Open, node: yaml.Node) -> None:
        if isinstance(parent.node, yaml.SequenceNode):
            parent.node.value.append(node)
        elif parent.key is None:
            parent.key = node
        else:
            parent.node.value.append((parent.key, node))
            parent.key = None

    def _name(
        self, anchor: str | None, node: yaml.Node, line: int | None, size: int | None
    ) -> None:
        if anchor is None:
            return
        if anchor in self._anchors:
            first = self._anchors[anchor].start_mark.line + 1
            raise YamlProblem(
                f"invalid YAML: the anchor &{cut(anchor)} is defined twice (first at line {first})",
                line,
            )
        self._anchors[anchor] = node
        if size is not None:
            self._sizes[anchor] = size

    def _alias(self, anchor: str, line: int | None) -> yaml.Node:
        if anchor not in self._anchors:
            raise YamlProblem(f"invalid YAML: found undefined alias {brief(anchor)}", line)
        size = self._sizes.get(anchor)
        if size is None:  # named, not finished: the alias is inside what it names
            raise YamlProblem(
                f"the alias *{cut(anchor)} is used inside the value it names, which "
                "would repeat forever; point it at something outside",
                line,
            )
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            raise YamlProblem(
                f"the script uses more than {MAX_ALIASES:,} aliases (*name); "
                "write some of the values out",
                line,
            )
        self._spend(size, line, alias=True)
        return self._anchors[anchor]

    def _spend(self, values: int, line: int | None, alias: bool = False) -> None:
        self._values += values
        if self._values <= MAX_VALUES:
            return
        if alias or self._aliases:
            raise YamlProblem(
                f"aliases expand the script to more than {MAX_VALUES:,} values here (each "
                "*name counts as a full copy of what it names); use fewer aliases",
                line,
            )
        raise YamlProblem(
            f"the script has more than {MAX_VALUES:,} values (keys, items and texts); "
            "a script needs far fewer",
            line,
        )


def _line(event: Event | None) -> int | None:
    mark = event.start_mark if event is not None else None
    return mark.line + 1 if mark is not None else None


# ---------------------------------------------------------------- constructing


class _Constructor(SafeConstructor):
    """PyYAML's safe constructor, for plain tags only, that never raises anything but
    YAML errors and :class:`YamlProblem`."""

    # A lone ``=`` resolves to the YAML 1.1 "value" tag and a ``<<`` that is not a key to
    # the merge tag; SafeConstructor cannot build either, and in a script both are text.
    yaml_constructors: ClassVar[dict[Any, Any]] = {
        **SafeConstructor.yaml_constructors,
        _YAML + "value": SafeConstructor.construct_yaml_str,
        _YAML + "merge": SafeConstructor.construct_yaml_str,
    }

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node in self.constructed_objects:
            return self.constructed_objects[node]
        tag = str(node.tag)
        kind = _TAG_KINDS.get(tag.removeprefix(_YAML)) if tag.startswith(_YAML) else None
        line = node.start_mark.line + 1
        if kind is None:
            shown = "!!" + tag.removeprefix(_YAML) if tag.startswith(_YAML) else tag
            raise YamlProblem(
                f"invalid YAML: the tag {cut(shown)} is not allowed in a script; "
                "write plain text, numbers, lists and mappings",
                line,
                node,
            )
        if (
            kind in ("a whole number", "a number")
            and isinstance(node, yaml.ScalarNode)
            and len(node.value) > MAX_NUMBER_CHARS
        ):
            raise YamlProblem(
                f"the number {cut(node.value)} is too large ({len(node.value):,} characters; "
                f"a number in a script has at most {MAX_NUMBER_CHARS})",
                line,
                node,
            )
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, LookupError, AttributeError, ArithmeticError):
            # PyYAML's scalar constructors raise these for text their regexes let
            # through: !!int abc, an empty !!float, 31 February, an offset of +99:99.
            what = brief(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
            raise YamlProblem(
                f"invalid YAML: {what} cannot be read as {kind}", line, node
            ) from None
