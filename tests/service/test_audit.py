"""The dependency audit's verdict from pip-audit's report: clean only when every package
was checked, and said plainly when the advisory database could not be reached."""

from __future__ import annotations

from scripts.audit import CLEAN, NOT_CHECKED, VULNERABLE, verdict


def _dep(name: str, *vulns: dict[str, object], skip: str | None = None) -> dict[str, object]:
    dep: dict[str, object] = {"name": name, "version": "1.0", "vulns": list(vulns)}
    if skip is not None:
        dep = {"name": name, "skip_reason": skip}
    return dep


def test_clean_only_when_every_package_was_checked() -> None:
    code, words = verdict({"dependencies": [_dep("a"), _dep("b")]})
    assert (code, words) == (CLEAN, "no known vulnerabilities in the 2 locked packages")


def test_an_unreachable_database_is_never_a_clean_result() -> None:
    skipped = verdict({"dependencies": [_dep("a"), _dep("b", skip="not found on PyPI: b")]})
    assert skipped[0] == NOT_CHECKED
    assert "NOT CHECKED: 1 of 2 packages" in skipped[1] and "not a clean result" in skipped[1]
    nothing = verdict(None, "ConnectionError: Failed to resolve 'pypi.org'\n")
    assert nothing == (
        NOT_CHECKED,
        "NOT CHECKED: the advisory database could not be reached (ConnectionError: Failed "
        "to resolve 'pypi.org'); this is not a clean result",
    )
    assert verdict({"dependencies": []})[0] == NOT_CHECKED


def test_vulnerabilities_are_named_with_their_fix_even_beside_unchecked_ones() -> None:
    vuln = {"id": "PYSEC-2026-1", "fix_versions": ["1.1", "2.0"]}
    code, words = verdict({"dependencies": [_dep("a", vuln), _dep("b", skip="not found: b")]})
    assert code == VULNERABLE
    assert "a 1.0: PYSEC-2026-1 (fixed in 1.1, 2.0)" in words
    assert "NOT CHECKED: 1 of 2" in words
