"""What a test does when a service it needs is missing: skip locally, fail under CI.

A skipped test in CI would hide a gap (a database never exercised, an emulator never
run), so with ``CI=true`` the same condition is a failure that names what is missing.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(what: str) -> NoReturn:
    """Skip the test, or fail it in CI (``what`` says what is missing and how to get it)."""
    if in_ci():
        pytest.fail(f"{what} (CI=true: this test must run, not skip)", pytrace=False)
    pytest.skip(what)
