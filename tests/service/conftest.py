"""Fixtures of the service's tests."""

from __future__ import annotations

import pytest

from bot.telegram.i18n import Catalog


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    """The packaged catalogues, loaded (and checked) once per module."""
    return Catalog.load()
