"""Loading a funnel script from YAML, with every problem reported at its file line.

Authors edit scripts by hand, so a bad script must say where and what: the YAML is
composed into a node tree (which keeps the line of every key and list item), the data is
validated by the pydantic model of :mod:`funnels.scripts.model`, and, only if the model is
valid, by the cross-field checks of :mod:`funnels.scripts.checks`. Each pydantic error
and each check becomes a :class:`Problem` with the line of the offending key and a
plain message; all of them are reported at once, sorted by line.

Any text at all gives either a script or a :class:`ScriptError`: the limits on size,
nesting and aliases are enforced by :mod:`funnels.scripts.yaml_reader` while the tree is built.
"""

from __future__ import annotations

import difflib
import gc
import hashlib
import os
import types
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from funnels.kernel.text import brief
from funnels.scripts.checks import Check, Loc, check
from funnels.scripts.model import Script
from funnels.scripts.tree import Tree, duplicate_keys
from funnels.scripts.yaml_reader import MAX_BYTES, YamlProblem, compose, construct

Severity = Literal["error", "warning"]

MAX_LISTED = 100
"""Most problems of each kind located and listed for one script. Thousands can come
from a few thousand lines written wrong the same way; the author fixes the first ones
and checks again, and locating the rest would only cost time."""


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
        with path.open("rb") as file:
            # One byte past the limit is enough to refuse: a huge file is never read whole.
            raw = file.read(MAX_BYTES + 1)
            size = os.fstat(file.fileno()).st_size
    except FileNotFoundError:
        raise _single(source, None, "no such file") from None
    except IsADirectoryError:
        raise _single(source, None, "is a directory, not a script file") from None
    except PermissionError:
        raise _single(source, None, "cannot read the file: permission denied") from None
    except OSError as exc:
        raise _single(source, None, f"cannot read the file: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise _too_big(source, size if size > MAX_BYTES else None)
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
    if len(text) > MAX_BYTES:  # at least as many bytes as characters: no need to encode
        raise _too_big(source, None)
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_BYTES:
        raise _too_big(source, len(raw))
    return _load(text, raw, source)


def _too_big(source: str, size: int | None) -> ScriptError:
    """``size`` in bytes, ``None`` when only known to be past the limit (a pipe)."""
    what = f"{size:,} bytes" if size is not None else f"more than {MAX_BYTES:,} bytes"
    return _single(
        source, None, f"the script is {what}; a script may be at most {MAX_BYTES:,} bytes (1 MB)"
    )


def _single(source: str, line: int | None, message: str) -> ScriptError:
    return ScriptError([Problem(source, line, "", message, "error")])


def _load(text: str, raw: bytes, source: str) -> LoadedScript:
    content_hash = hashlib.sha256(raw).hexdigest()
    with _collections_paused():
        tree, data, duplicates = _parse_yaml(text, source)
        problems = [_problem(source, tree, c) for c in duplicates[:MAX_LISTED]]
        left_out: Severity | None = "error" if len(duplicates) > MAX_LISTED else None

        try:
            script = Script.model_validate(data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            problems += _model_problems(source, tree, errors[:MAX_LISTED])
            if len(errors) > MAX_LISTED:
                left_out = "error"
            raise ScriptError(_listed(problems, left_out)) from None
        except RecursionError:
            problems.append(Problem(source, 1, "", "the script is nested too deeply", "error"))
            raise ScriptError(_listed(problems, left_out)) from None

        # Errors first, so that a long list of warnings never hides why a script fails.
        found = sorted(check(script), key=lambda c: c.severity != "error")
        problems += [_problem(source, tree, c) for c in found[:MAX_LISTED]]
        if left_out is None and len(found) > MAX_LISTED:
            left_out = found[MAX_LISTED].severity  # an error if any left out is one
        problems = _listed(problems, left_out)
    if any(p.severity == "error" for p in problems):
        raise ScriptError(problems)
    return LoadedScript(script, source, content_hash, problems, text)


@contextmanager
def _collections_paused() -> Iterator[None]:
    """No cyclic garbage collection while a script loads. The up to MAX_VALUES nodes,
    values and models built are all alive until the end, so each collection would only
    walk them again: pausing halves the time of a large script. A load is synchronous and
    bounded (well under a second), so nothing else runs meanwhile."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _listed(problems: Iterable[Problem], left_out: Severity | None) -> list[Problem]:
    """Problems sorted by line, and last, if some were left out, one saying so (an error
    if any of them is)."""
    out = sorted(problems, key=lambda p: p.line if p.line is not None else 0)
    if left_out is not None:
        source = out[0].source if out else ""
        message = f"there are more problems than the {MAX_LISTED} listed; fix these and check again"
        out.append(Problem(source, None, "", message, left_out))
    return out


# ---------------------------------------------------------------- YAML


def _parse_yaml(text: str, source: str) -> tuple[Tree, Any, list[Check]]:
    """The root mapping node (for lines), the plain data built from it, duplicate keys."""
    node: yaml.Node | None = None
    try:
        node = compose(text)
        duplicates = duplicate_keys(node) if node is not None else []
        # Building the data also resolves merge keys (<<) in the nodes, in place, so the
        # tree used for lines holds the same keys as the data.
        data = construct(node) if node is not None else None
    except YamlProblem as exc:
        raise ScriptError([_yaml_problem(source, node, exc)]) from None

    allowed = ", ".join(Script.model_fields)
    if node is None:
        raise _single(source, 1, f"the script is empty; write a mapping with {allowed}")
    if not isinstance(node, yaml.MappingNode):
        what = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
        line = node.start_mark.line + 1
        raise _single(source, line, f"the script must be a mapping with {allowed}, not {what}")
    return Tree(node), data, duplicates


def _yaml_problem(source: str, root: yaml.Node | None, exc: YamlProblem) -> Problem:
    """The problem, with the field it is in when it is about one value of the tree."""
    if root is not None and exc.node is not None:
        tree = Tree(root)
        loc = tree.path_to(exc.node)
        if loc:
            return _problem(source, tree, Check(loc, exc.message, "error"))
    return Problem(source, exc.line, "", exc.message, "error")


def _problem(source: str, tree: Tree, found: Check) -> Problem:
    at = tree.locate(found.loc)
    message = found.message
    if found.related is not None:
        message += f" (see line {tree.locate(found.related).line})"
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


def _model_problems(source: str, tree: Tree, errors: Iterable[_Error]) -> list[Problem]:
    """One problem per pydantic error; union alternatives at one place become one problem."""
    out: list[Problem] = []
    unions: dict[Loc, list[_Error]] = {}
    for error in errors:
        loc: Loc = tuple(error["loc"])
        at = tree.locate(loc)
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
        at = tree.locate(loc)
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
        message = f"unknown key {brief(name)}"
        close = difflib.get_close_matches(name, allowed, n=1) if len(name) < 100 else []
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
    return brief(value)


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
