"""Finding scripts: the shipped 7+21 library plus ``FUNNELBOT_SCRIPTS_DIR``."""

from __future__ import annotations

from pathlib import Path

import funnels

LIBRARY = Path(funnels.__file__).parent / "library"
DEFAULT_SCRIPT = "seven-plus-twentyone"


def script_path(name: str, locale: str = "zh-CN", extra_dir: Path | None = None) -> Path:
    """Resolve a script name (``seven-plus-twentyone``, ``…​.es``) or a path to a file."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    for folder in [d for d in (extra_dir, LIBRARY) if d is not None]:
        for file_name in (f"{name}.{locale}.yaml", f"{name}.yaml", f"{name}.yml"):
            path = folder / file_name
            if path.exists():
                return path
    raise FileNotFoundError(
        f"no script named {name!r} (looked in {LIBRARY}"
        + (f" and {extra_dir}" if extra_dir else "")
        + ")"
    )


def available_scripts(extra_dir: Path | None = None) -> list[str]:
    """Script names a leader can pass to /launch (the locale suffix dropped)."""
    names: set[str] = set()
    for folder in [d for d in (extra_dir, LIBRARY) if d is not None and d.is_dir()]:
        for path in [*folder.glob("*.yaml"), *folder.glob("*.yml")]:
            stem = path.stem
            for locale in ("zh-CN", "es", "en"):
                stem = stem.removesuffix(f".{locale}")
            names.add(stem)
    return sorted(names)
