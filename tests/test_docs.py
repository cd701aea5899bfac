"""The README's list of supported APIs is the handler table, nothing more or less."""

from __future__ import annotations

import re
from pathlib import Path

from kafkapy.protocol.api import api_spec
from kafkapy.server.handlers import HANDLERS

README = Path(__file__).resolve().parents[1] / "README.md"


def api_lines() -> list[str]:
    return [
        f"| {h.api_key} | {api_spec(h.api_key).name} | {h.min_version}-{h.max_version} |"
        for h in sorted(HANDLERS, key=lambda h: h.api_key)
    ]


def test_readme_lists_exactly_the_served_apis() -> None:
    text = README.read_text()
    block = re.search(r"<!-- apis:start -->\n(.*?)<!-- apis:end -->", text, re.S)
    assert block, "README lacks the <!-- apis:start --> block"
    rows = [line for line in block.group(1).splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert rows == api_lines(), "regenerate with: python -m tests.test_docs"


if __name__ == "__main__":
    table = "| key | API | versions |\n| --- | --- | --- |\n" + "\n".join(api_lines()) + "\n"
    text = README.read_text()
    text = re.sub(
        r"<!-- apis:start -->\n.*?<!-- apis:end -->",
        lambda _: f"<!-- apis:start -->\n{table}<!-- apis:end -->",
        text,
        flags=re.S,
    )
    README.write_text(text)
