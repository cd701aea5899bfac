"""The import contract in pyproject.toml ([tool.importlinter]): layers, shared modules, no cycles.

Runs `lint-imports` over the installed package; its report names every broken contract and the
imports that break it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# lint-imports' own entry point, run by this interpreter (no reliance on PATH)
_LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def test_import_contract_holds() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _LINT, "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"lint-imports found violations:\n{proc.stdout}\n{proc.stderr}"
