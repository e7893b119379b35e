"""Loading a funnel script from YAML, with every problem reported at its file line.

Authors edit scripts by hand, so a bad script must say where and what: the YAML is
composed into a node tree (which keeps the line of every key and list item), the data is
validated by the pydantic model of :mod:`funnels.script`, and, only if the model is
valid, by the cross-field checks of :mod:`funnels.script_checks`. Each pydantic error
and each check becomes a :class:`Problem` with the line of the offending key and a
plain message; all of them are reported at once, sorted by line.
"""

from __future__ import annotations

import difflib
import hashlib
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from yaml.constructor import SafeConstructor

from funnels.script import Script
from funnels.script_checks import Check, Loc, check

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a script, located as precisely as the YAML allows."""

    source: str
    """The file path, or "<string>" for text loaded without one."""
    line: int | None
    """1-based line in the source; ``None`` when no line applies (an unreadable file)."""
    field: str
    """Dotted path, with step and task ids for list items: "warmup.steps[d1_noon].at.day"."""
    message: str
    severity: Severity

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        what = f"{self.field}: {self.message}" if self.field else self.message
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{prefix}{where}: {what}"


class ScriptError(Exception):
    """A script that cannot be used; ``problems`` holds every error and warning found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


@dataclass(frozen=True)
class LoadedScript:
    """A valid script with where it came from and what to be careful about."""

    script: Script
    source: str
    content_hash: str
    """SHA-256 hex digest of the raw bytes, so a cohort records exactly what it ran."""
    warnings: list[Problem] = field(default_factory=list)
    text: str = ""
    """The script as written; a cohort stores it and runs from it, whatever happens to
    the file later."""


def load_script(path: Path) -> LoadedScript:
    """Read, parse and validate a script file. Raises :class:`ScriptError`."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _single(source, None, "no such file") from None
    except IsADirectoryError:
        raise _single(source, None, "is a directory, not a script file") from None
    except PermissionError:
        raise _single(source, None, "cannot read the file: permission denied") from None
    except OSError as exc:
        raise _single(source, None, f"cannot read the file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = (
            f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be decoded); "
            "save it as UTF-8"
        )
        raise _single(source, line, message) from None
    return _load(text, raw, source)


def load_script_text(text: str, source: str = "<string>") -> LoadedScript:
    """Parse and validate a script held in a string. Raises :class:`ScriptError`."""
    return _load(text, text.encode("utf-8", "surrogatepass"), source)


def _single(source: str, line: int | None, message: str) -> ScriptError:
    return ScriptError([Problem(source, line, "", message, "error")])


def _load(text: str, raw: bytes, source: str) -> LoadedScript:
    content_hash = hashlib.sha256(raw).hexdigest()
    root, data, duplicates = _parse_yaml(text, source)
    problems = [_problem(source, root, c) for c in duplicates]

    try:
        script = Script.model_validate(data)
    except ValidationError as exc:
        problems += _model_problems(source, root, exc.errors(include_url=False))
        raise ScriptError(_sorted(problems)) from None
    except RecursionError:
        problems.append(Problem(source, 1, "", "the script is nested too deeply", "error"))
        raise ScriptError(_sorted(problems)) from None

    problems += [_problem(source, root, c) for c in check(script)]
    problems = _sorted(problems)
    if any(p.severity == "error" for p in problems):
        raise ScriptError(problems)
    return LoadedScript(script, source, content_hash, problems, text)


def _sorted(problems: Iterable[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: p.line if p.line is not None else 0)


# ---------------------------------------------------------------- YAML


def _parse_yaml(text: str, source: str) -> tuple[yaml.MappingNode, Any, list[Check]]:
    """The root mapping node (for lines), the plain data built from it, duplicate keys."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        duplicates = _duplicate_keys(node) if node is not None else []
        # Building the data also resolves merge keys (<<) in the nodes, in place, so the
        # tree used for lines holds the same keys as the data.
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        parts = [p for p in (exc.context, exc.problem) if p]
        raise _single(source, line, "invalid YAML: " + ", ".join(parts)) from None
    except yaml.YAMLError as exc:
        raise _single(source, None, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise _single(source, None, "invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()

    allowed = ", ".join(Script.model_fields)
    if node is None:
        raise _single(source, 1, f"the script is empty; write a mapping with {allowed}")
    if not isinstance(node, yaml.MappingNode):
        what = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
        line = node.start_mark.line + 1
        raise _single(source, line, f"the script must be a mapping with {allowed}, not {what}")
    return node, data, duplicates


def _duplicate_keys(root: yaml.Node) -> list[Check]:
    """Keys written twice in one mapping: YAML silently keeps the last, authors rarely mean to."""
    out: list[Check] = []
    visited: set[int] = set()

    def walk(node: yaml.Node, loc: Loc) -> None:
        if id(node) in visited:  # an alias to a node already walked, or a cycle
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
                                f"key {key.value!r} is written twice in this mapping (first at "
                                f"line {first.start_mark.line + 1}); YAML keeps only the last one",
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


@dataclass(frozen=True, slots=True)
class _Located:
    line: int
    field: str
    found: int
    """How many leading loc items exist in the YAML tree."""
    parent: yaml.Node
    """The deepest node reached."""


def _locate(root: yaml.Node, loc: Loc) -> _Located:
    """The line and the display path of a pydantic-style location in the node tree.

    The line is that of the deepest key or list item found; for a location that does not
    exist in the file (a missing field) that is the parent mapping's line.
    """
    node: yaml.Node | None = root
    line = root.start_mark.line + 1
    parent = root
    found = 0
    names: list[str] = []
    for item in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in reversed(node.value):
                if isinstance(key, yaml.ScalarNode) and _key_matches(key, item):
                    child, line = value, key.start_mark.line + 1
                    item = str(key.value)
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(item, int)
            and 0 <= item < len(node.value)
        ):
            child = node.value[item]
            line = child.start_mark.line + 1
        names.append(_name(item, node, child))
        if child is None:
            node = None
        else:
            node, parent, found = child, child, found + 1
    field_path = "".join(names).lstrip(".")
    return _Located(line, field_path, found, parent)


def _key_matches(key: yaml.ScalarNode, item: str | int) -> bool:
    """Whether a YAML key is the one pydantic names ``item`` (it names True as 1, None as
    "None": keys YAML did not read as text)."""
    if key.value == str(item):
        return True
    if key.tag == "tag:yaml.org,2002:str":
        return False
    try:
        value = SafeConstructor().construct_object(key)
    except yaml.YAMLError:
        return False
    return bool(value == item or str(value) == str(item))


def _name(item: str | int, container: yaml.Node | None, child: yaml.Node | None) -> str:
    """How one loc item reads in a field path: ".key", "[step_id]" or "[3]"."""
    if not isinstance(item, int) or isinstance(container, yaml.MappingNode):
        return f".{item}"
    if isinstance(container, yaml.SequenceNode) and child is not None:
        item_id = _id_of(child)
        ids = [_id_of(sibling) for sibling in container.value]
        if item_id is not None and ids.count(item_id) == 1:
            return f"[{item_id}]"
    return f"[{item}]"


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


def _problem(source: str, root: yaml.Node, found: Check) -> Problem:
    at = _locate(root, found.loc)
    message = found.message
    if found.related is not None:
        message += f" (see line {_locate(root, found.related).line})"
    return Problem(source, at.line, at.field, message, found.severity)


# ---------------------------------------------------------------- pydantic errors

_UNION_TAGS = frozenset({"str", "int", "bool", "float", "none", "list", "dict"})

_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true/false",
    "bool_parsing": "true/false",
    "float_type": "a number",
    "float_parsing": "a number",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


_Error = Mapping[str, Any]
"""One entry of ``ValidationError.errors()``."""


def _model_problems(source: str, root: yaml.Node, errors: Iterable[_Error]) -> list[Problem]:
    """One problem per pydantic error; union alternatives at one place become one problem."""
    out: list[Problem] = []
    unions: dict[Loc, list[_Error]] = {}
    for error in errors:
        loc: Loc = tuple(error["loc"])
        at = _locate(root, loc)
        tags = 0
        while (
            error["type"] != "missing"
            and len(loc) - tags > at.found
            and isinstance(loc[-1 - tags], str)
            and _is_union_tag(str(loc[-1 - tags]))
        ):
            tags += 1
        if tags:
            unions.setdefault(loc[: len(loc) - tags], []).append(error)
            continue
        out.append(Problem(source, at.line, at.field, _message(error, loc), "error"))
    for loc, alternatives in unions.items():
        at = _locate(root, loc)
        expected = list(
            dict.fromkeys(_EXPECTED.get(str(e["type"]), str(e["type"])) for e in alternatives)
        )
        choices = (
            ", ".join(expected[:-1]) + " or " + expected[-1] if len(expected) > 1 else expected[0]
        )
        message = f"expected {choices}, got {_show(alternatives[0].get('input'))}"
        out.append(Problem(source, at.line, at.field, message, "error"))
    return out


def _is_union_tag(item: str) -> bool:
    return item in _UNION_TAGS or "[" in item


def _message(error: _Error, loc: Loc) -> str:
    """A plain sentence for one pydantic error: what is wrong and what is allowed."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error.get("input")
    name = str(loc[-1]) if loc else "script"

    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = list(model.model_fields) if model is not None else []
        message = f"unknown key {name!r}"
        close = difflib.get_close_matches(name, allowed, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        return message + (f"; allowed here: {', '.join(allowed)}" if allowed else "")
    if kind == "invalid_key":
        return f"keys must be text, but this one reads as {_show(value)}; put it in quotes"
    if kind == "missing":
        return f"missing required field {name!r}"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "literal_error":
        return f"{_show(value)} is not allowed here; use {ctx.get('expected')}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("more than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx.get(key)}, not {_show(value)}"
    if kind == "string_too_short":
        least = ctx.get("min_length", 1)
        if least == 1:
            return "must not be empty"
        return f"must be at least {least} characters long"
    if kind == "string_too_long":
        length = len(value) if isinstance(value, str) else "too many"
        return f"is {length} characters long; at most {ctx.get('max_length')} are allowed"
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return f"needs at least {least} item{'s' if least != 1 else ''}"
    if kind == "too_long":
        return f"has {ctx.get('actual_length')} items; at most {ctx.get('max_length')} are allowed"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        model = _model_at(loc)
        fields = f" with {', '.join(model.model_fields)}" if model is not None else ""
        return f"expected a mapping{fields}, got {_show(value)}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_show(value)}"
    text = str(error["msg"])
    return text[:1].lower() + text[1:]


def _show(value: object) -> str:
    """A short description of a YAML value for messages."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``loc``, if there is one."""
    annotation: Any = Script
    for item in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = annotation.model_fields
            if not isinstance(item, str) or item not in fields:
                return None
            annotation = fields[item].annotation
        elif get_origin(annotation) is list and isinstance(item, int):
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` down to ``X``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
