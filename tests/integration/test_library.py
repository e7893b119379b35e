"""The script library on real folders: scripts are found by plain name in the shipped library
and ``FUNNELBOT_SCRIPTS_DIR`` only, never by a path."""

from __future__ import annotations

from pathlib import Path

import pytest

from funnels.scripts.library import DEFAULT_SCRIPT, LIBRARY, available_scripts, script_path


def test_names_resolve_in_the_library_and_the_extra_folder(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("id: mine\n", encoding="utf-8")
    (tmp_path / "theirs.es.yaml").write_text("id: theirs\n", encoding="utf-8")
    (tmp_path / "odd name.yaml").write_text("id: odd\n", encoding="utf-8")  # not launchable
    (tmp_path / "folder.yaml").mkdir()  # not a file
    assert script_path(DEFAULT_SCRIPT, "en") == LIBRARY / f"{DEFAULT_SCRIPT}.en.yaml"
    assert script_path("mine", "en", tmp_path) == tmp_path / "mine.yaml"
    assert script_path("theirs", "es", tmp_path) == tmp_path / "theirs.es.yaml"
    assert available_scripts(tmp_path) == sorted([DEFAULT_SCRIPT, "mine", "theirs"])
    with pytest.raises(FileNotFoundError):
        script_path("folder", "en", tmp_path)


@pytest.mark.parametrize("missing", [None, "nowhere", "a-file"])
def test_a_missing_extra_folder_leaves_the_library(tmp_path: Path, missing: str | None) -> None:
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    extra = None if missing is None else tmp_path / missing
    assert available_scripts(extra) == [DEFAULT_SCRIPT]


def test_paths_are_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("id: outside\n", encoding="utf-8")
    for name in (str(outside), "../library/seven-plus-twentyone.en", "x" * 4000, "a\x00b"):
        with pytest.raises(FileNotFoundError):
            script_path(name, "en", tmp_path / "scripts")
