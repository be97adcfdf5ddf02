"""These tests need no database and no Django: they run with ``-p no:django``.

Without pytest-django, its ini key in pyproject.toml is unknown and ``filterwarnings = error``
turns that warning into a failure; declaring the key here keeps both ways of running working.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("DJANGO_SETTINGS_MODULE", "Django settings module (owned by pytest-django)")
