"""Finding scripts: the shipped 7+21 library plus ``FUNNELBOT_SCRIPTS_DIR``.

A script is chosen by a plain name (``seven-plus-twentyone``), never by a path: a name
is looked up in these two folders only, so a leader's ``/launch`` can open nothing else
the server can read.
"""

from __future__ import annotations

import re
from pathlib import Path

LIBRARY = Path(__file__).parent
DEFAULT_SCRIPT = "seven-plus-twentyone"
LOCALES = ("zh-CN", "es", "en")

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_script_name(name: str) -> bool:
    """A plain name: ASCII letters, digits, ``-`` and ``_``, 64 characters at most (no
    dots, slashes or anything else a path is made of)."""
    return _NAME.fullmatch(name) is not None


def _folders(extra_dir: Path | None) -> list[Path]:
    folders = []
    for folder in (extra_dir, LIBRARY):
        try:
            if folder is not None and folder.is_dir():
                folders.append(folder)
        except OSError:  # a folder ops cannot read counts as absent
            continue
    return folders


def script_path(name: str, locale: str = "zh-CN", extra_dir: Path | None = None) -> Path:
    """The file of the library script ``name`` in ``locale`` (or its only version).
    ``FileNotFoundError`` for a name that is not a plain name or not in the library."""
    if is_script_name(name):
        for folder in _folders(extra_dir):
            for file_name in (f"{name}.{locale}.yaml", f"{name}.yaml", f"{name}.yml"):
                path = folder / file_name
                if path.is_file():
                    return path
    raise FileNotFoundError(
        f"no script named {name[:80]!r} (looked in {LIBRARY}"
        + (f" and {extra_dir}" if extra_dir else "")
        + ")"
    )


def available_scripts(extra_dir: Path | None = None) -> list[str]:
    """Script names a leader can pass to /launch (the locale suffix dropped)."""
    names: set[str] = set()
    for folder in _folders(extra_dir):
        for path in [*folder.glob("*.yaml"), *folder.glob("*.yml")]:
            stem = path.stem
            for locale in LOCALES:
                stem = stem.removesuffix(f".{locale}")
            if is_script_name(stem) and path.is_file():
                names.add(stem)
    return sorted(names)
