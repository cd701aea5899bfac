"""The handler table: every entry loads, fits the codec, and feeds ApiVersions."""

from __future__ import annotations

import inspect
import subprocess
import sys

from kafkapy.protocol.api import api_spec
from kafkapy.server.dispatch import build_table
from kafkapy.server.handlers import HANDLERS
from kafkapy.server.handlers.api_versions import supported_versions


def test_every_handler_loads_and_fits_the_codec() -> None:
    build_table(HANDLERS)  # raises on duplicates or ranges the codec does not know
    for h in HANDLERS:
        fn = h.load()
        assert inspect.iscoroutinefunction(fn), h.target
        spec = api_spec(h.api_key)
        assert spec.min_version <= h.min_version <= h.max_version <= spec.max_version


def test_api_versions_lists_exactly_the_table() -> None:
    assert {(v.api_key, v.min_version, v.max_version) for v in supported_versions(HANDLERS)} == {
        (h.api_key, h.min_version, h.max_version) for h in HANDLERS
    }


def test_dispatcher_import_loads_no_handler_module() -> None:
    code = (
        "import sys, kafkapy.server.dispatch;"
        "print(sorted(m for m in sys.modules if m.startswith('kafkapy.server.handlers.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['kafkapy.server.handlers.api_versions']"
