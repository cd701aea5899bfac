"""The load suite (`-m load` selects it; the normal test run includes its short form)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "load: load tests (short form in the normal run; long form in scripts/bench)")
