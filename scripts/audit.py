#!/usr/bin/env python3
"""Known-vulnerable dependencies: pip-audit over the runtime lock file (what the service
runs on), against PyPI's advisory data.

It says one of three things, plainly, and exits with its code:

- 0: every locked package was checked and none has a known vulnerability;
- 1: some have (each named with its advisory and the versions that fix it);
- 3: NOT CHECKED: the advisory database could not be reached, or some packages could
  not be looked up there. Never a clean result: nothing is said of what was not checked.

    .venv/bin/python scripts/audit.py [--lock requirements.lock]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLEAN, VULNERABLE, NOT_CHECKED = 0, 1, 3


def verdict(report: dict[str, Any] | None, error: str = "") -> tuple[int, str]:
    """The exit code and the words for pip-audit's JSON report (None: it gave none)."""
    if report is None:
        reason = error.strip().splitlines()[-1] if error.strip() else "no report"
        return NOT_CHECKED, (
            f"NOT CHECKED: the advisory database could not be reached ({reason[:200]}); "
            "this is not a clean result"
        )
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    found = [(d, v) for d in deps for v in d.get("vulns", [])]
    lines = []
    if found:
        lines.append(f"{len(found)} known vulnerabilities:")
        for dep, vuln in found:
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed version yet"
            lines.append(
                f"  {dep['name']} {dep.get('version', '?')}: {vuln['id']} (fixed in {fixed})"
            )
    if skipped:
        lines.append(
            f"NOT CHECKED: {len(skipped)} of {len(deps)} packages could not be looked up in "
            f"the advisory database (e.g. {skipped[0]['skip_reason']}); "
            "this is not a clean result"
        )
    if found:
        return VULNERABLE, "\n".join(lines)
    if skipped or not deps:
        return NOT_CHECKED, "\n".join(lines) or "NOT CHECKED: pip-audit listed no packages"
    return CLEAN, f"no known vulnerabilities in the {len(deps)} locked packages"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", default=str(ROOT / "requirements.lock"))
    args = parser.parse_args()
    audit = Path(sys.executable).with_name("pip-audit")
    command = [
        str(audit), "-r", args.lock, "--require-hashes", "--disable-pip",
        "--progress-spinner", "off", "--format", "json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    try:
        report = json.loads(done.stdout) if done.stdout.strip() else None
    except ValueError:
        report = None
    code, words = verdict(report, done.stderr)
    print(words)
    return code


if __name__ == "__main__":
    sys.exit(main())
