"""Where things are in a script's YAML node tree: lines and field paths for problems.

pydantic and :mod:`funnels.scripts.checks` name a place with a location tuple such as
``("warmup", "steps", 3, "at", "day")``; :class:`Tree` finds the line of that place in
the composed YAML and how to show it ("warmup.steps[d2_talk].at.day"). A mapping or a
list can hold thousands of entries, each with a problem, so each mapping's keys and each
list's item ids are indexed once, not searched per problem. The walks visit every node
once, however many aliases point at it.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import yaml

from funnels.kernel.text import brief, cut
from funnels.scripts.checks import Check, Loc
from funnels.scripts.yaml_reader import construct_each

_STR = "tag:yaml.org,2002:str"


@dataclass(frozen=True, slots=True)
class Located:
    line: int
    field: str
    found: int
    """How many leading loc items exist in the YAML tree."""
    parent: yaml.Node
    """The deepest node reached."""


@dataclass(slots=True)
class _Keys:
    """The keys of one mapping, each name mapped to its last position (YAML keeps the last)."""

    by_text: dict[str, int]
    by_value: dict[Any, int]
    """Keys YAML did not read as text, by their value (pydantic names True as 1)."""
    by_value_text: dict[str, int]
    """The same keys by ``str(value)`` and ``repr(value)`` (pydantic names None as
    "None", a date by its repr)."""


class Tree:
    """A composed script, with the indexes that make locating a problem cheap."""

    def __init__(self, root: yaml.Node) -> None:
        self.root = root
        self._keys: dict[int, _Keys] = {}
        self._ids: dict[int, Counter[str | None]] = {}

    def locate(self, loc: Loc) -> Located:
        """The line and the display path of a pydantic-style location.

        The line is that of the deepest key or list item found; for a location that does
        not exist in the file (a missing field) that is the parent mapping's line.
        """
        node: yaml.Node | None = self.root
        line = self.root.start_mark.line + 1
        parent = self.root
        found = 0
        names: list[str] = []
        for item in loc:
            child: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode):
                at = self._key_position(node, item)
                if at is not None:
                    key, child = node.value[at]
                    line = key.start_mark.line + 1
                    item = str(key.value)
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(item, int)
                and 0 <= item < len(node.value)
            ):
                child = node.value[item]
                line = child.start_mark.line + 1
            names.append(self._name(item, node, child))
            if child is None:
                node = None
            else:
                node, parent, found = child, child, found + 1
        field_path = "".join(names).lstrip(".")
        return Located(line, field_path, found, parent)

    def path_to(self, target: yaml.Node) -> Loc | None:
        """The location of ``target`` in the tree (the first way to reach it)."""
        visited: set[int] = set()

        def walk(node: yaml.Node, loc: Loc) -> Loc | None:
            if node is target:
                return loc
            if id(node) in visited:
                return None
            visited.add(id(node))
            pairs: list[tuple[str | int, yaml.Node]] = []
            if isinstance(node, yaml.MappingNode):
                pairs = [(str(k.value), v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
            elif isinstance(node, yaml.SequenceNode):
                pairs = list(enumerate(node.value))
            for item, child in pairs:
                found = walk(child, (*loc, item))
                if found is not None:
                    return found
            return None

        return walk(self.root, ())

    def _key_position(self, node: yaml.MappingNode, item: str | int) -> int | None:
        """The position in ``node.value`` of the last key pydantic names ``item``."""
        keys = self._keys.get(id(node))
        if keys is None:
            keys = self._keys[id(node)] = _index_keys(node)
        hits = [keys.by_text.get(str(item)), keys.by_value_text.get(str(item))]
        with contextlib.suppress(TypeError):
            hits.append(keys.by_value.get(item))
        positions = [h for h in hits if h is not None]
        return max(positions) if positions else None

    def _name(self, item: str | int, container: yaml.Node | None, child: yaml.Node | None) -> str:
        """How one loc item reads in a field path: ".key", "[step_id]" or "[3]"."""
        if not isinstance(item, int) or isinstance(container, yaml.MappingNode):
            return f".{cut(str(item), 64)}"
        if isinstance(container, yaml.SequenceNode) and child is not None:
            item_id = _id_of(child)
            ids = self._ids.get(id(container))
            if ids is None:
                ids = self._ids[id(container)] = Counter(_id_of(s) for s in container.value)
            if item_id is not None and ids[item_id] == 1:
                return f"[{cut(item_id, 64)}]"
        return f"[{item}]"


def _index_keys(node: yaml.MappingNode) -> _Keys:
    keys = _Keys({}, {}, {})
    others: list[tuple[int, yaml.Node]] = []
    for position, (key, _value) in enumerate(node.value):
        if isinstance(key, yaml.ScalarNode):
            keys.by_text[str(key.value)] = position
            if key.tag != _STR:
                others.append((position, key))
    for position, value in construct_each(others):
        keys.by_value_text[str(value)] = position
        keys.by_value_text[repr(value)] = position  # a date key: "datetime.date(2001, 1, 1)"
        with contextlib.suppress(TypeError):  # unhashable: YAML refused the key already
            keys.by_value[value] = position
    return keys


def _id_of(node: yaml.Node) -> str | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in reversed(node.value):
            if (
                isinstance(key, yaml.ScalarNode)
                and key.value == "id"
                and isinstance(value, yaml.ScalarNode)
                and value.value
            ):
                return str(value.value)
    return None


def duplicate_keys(root: yaml.Node) -> list[Check]:
    """Keys written twice in one mapping: YAML silently keeps the last, authors rarely mean to."""
    out: list[Check] = []
    visited: set[int] = set()

    def walk(node: yaml.Node, loc: Loc) -> None:
        if id(node) in visited:  # an alias to a node already walked
            return
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, yaml.Node] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                    first = seen.get(key.value)
                    if first is not None and first is not key:
                        out.append(
                            Check(
                                (*loc, key.value),
                                f"key {brief(key.value)} is written twice in this mapping "
                                f"(first at line {first.start_mark.line + 1}); YAML keeps only "
                                "the last one",
                                "error",
                            )
                        )
                    seen[key.value] = key
                    walk(value, (*loc, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*loc, index))

    walk(root, ())
    return out
