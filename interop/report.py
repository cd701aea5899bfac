"""Collects interop outcomes and rewrites the generated part of docs/compatibility.md.

interop/conftest.py feeds `Collector` from pytest hooks: every test with a
`compat` marker records (client, scenario, outcome, detail). At the end of the
session `write_report` merges this run's results with those embedded in the
existing document (so running one module only updates that module's cells)
and rewrites the text between the GENERATED markers. Everything outside the
markers is hand-written and kept as is.

Run `python -m interop.report` to re-render the document from its embedded
data (for instance after editing the scenario titles).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "compatibility.md"
BEGIN = "<!-- BEGIN GENERATED: interop/report.py rewrites this section; edit the notes below instead -->"
END = "<!-- END GENERATED -->"
DATA_RE = re.compile(r"<!-- compat-data\n(.*?)\n-->", re.S)

CLIENTS: tuple[tuple[str, str], ...] = (
    ("confluent", "confluent-kafka (librdkafka)"),
    ("kafka-python", "kafka-python"),
    ("aiokafka", "aiokafka"),
    ("kcat", "kcat (librdkafka)"),
    ("kafkajs", "kafkajs"),
    ("java", "Java (Apache Kafka clients)"),
    ("java44", "Java (Apache Kafka 4.4.0 clients)"),
    ("java-ref", "Java vs Apache Kafka (reference)"),
)
# Columns for runs against Apache Kafka itself, not kafkapy (no cross-client cells).
REFERENCE_CLIENTS = frozenset({"java-ref"})
SCENARIOS: tuple[tuple[str, str], ...] = (
    ("metadata", "Metadata, topic creation, list topics"),
    ("codec-none", "Produce/consume, no compression"),
    ("codec-gzip", "Produce/consume, gzip"),
    ("codec-snappy", "Produce/consume, snappy"),
    ("codec-lz4", "Produce/consume, lz4"),
    ("codec-zstd", "Produce/consume, zstd"),
    ("keys-headers-tombstones", "Keys, headers, null values (tombstones)"),
    ("key-ordering", "Per-key ordering, 6 partitions"),
    ("large-1mib", "1 MiB messages"),
    ("roundtrip-10k", "10k messages, contiguous offsets"),
    ("offsets", "Watermarks, offsets for times"),
    ("configs", "Describe/alter topic configs"),
    ("producer-defaults", "Producer with the client's default settings"),
    ("consumer-group", "Consumer group: subscribe, commit, resume"),
)
# Rows only some clients have a test for yet: cells without a result read "-".
EXTRA_SCENARIOS: tuple[tuple[str, str], ...] = (
    ("acks", "acks=0, 1, all"),
    ("idempotent-codecs", "Idempotent producer, every codec"),
    ("admin-topics", "Admin: create (and its errors)/describe/delete topics, partitions, cluster"),
    ("list-offsets", "Admin: ListOffsets earliest/latest/max-timestamp/for-timestamp"),
    ("groups-admin", "Admin: list/describe consumer groups, group offsets"),
    (
        "admin-featureless",
        "Admin: quotas and reassignments as without the feature, no SCRAM user yet, tokens refused on PLAINTEXT; unserved calls fail with UnsupportedVersionException",
    ),
    ("group-auto-commit", "Consumer group: automatic commits"),
    ("seek-by-timestamp", "Consumer: seek by timestamp (offsetsForTimes)"),
    ("group-protocol-consumer", "Consumer group: group.protocol=consumer (KIP-848)"),
    ("transactions", "Transactions: commit, abort, read_committed, fencing"),
    ("txn-send-offsets", "Transactions: sendOffsetsToTransaction commits the group's offsets only on commit"),
    ("eos-producer-kill", "Exactly-once consume-transform-produce, producer SIGKILLed mid-transaction"),
    ("txn-broker-kill", "Transactions across a broker SIGKILL mid-transaction"),
    ("share-groups", "Share groups (KIP-932): share consumer, acknowledgement modes, shared with Java"),
)
# A not-applicable reason with this prefix is kafkapy's gap, not the client's.
NOT_YET = "kafkapy: "


@dataclass(slots=True)
class Result:
    client: str
    scenario: str
    outcome: str  # "passed" or "failed"
    detail: str = ""
    module: str = ""


@dataclass(slots=True)
class Report:
    results: dict[str, Result] = field(default_factory=dict)  # by pytest node id
    not_applicable: dict[str, str] = field(default_factory=dict)  # "client|scenario" -> reason
    versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        data = {
            "versions": dict(sorted(self.versions.items())),
            "not_applicable": dict(sorted(self.not_applicable.items())),
            "results": {k: asdict(v) for k, v in sorted(self.results.items())},
        }
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Report:
        data = json.loads(text)
        return cls(
            results={k: Result(**v) for k, v in data.get("results", {}).items()},
            not_applicable=dict(data.get("not_applicable", {})),
            versions=dict(data.get("versions", {})),
        )


class Collector:
    """This session's outcomes, fed by the pytest hooks in interop/conftest.py."""

    def __init__(self) -> None:
        self.report = Report()
        self.modules_collected: set[str] = set()
        self.deselected: set[str] = set()

    def record(self, nodeid: str, client: str, scenario: str, passed: bool, detail: str = "") -> None:
        module = nodeid.split("::", 1)[0]
        previous = self.report.results.get(nodeid)
        if previous is not None and previous.outcome == "failed":
            return  # a failure in setup/call/teardown sticks
        self.report.results[nodeid] = Result(client, scenario, "passed" if passed else "failed", detail, module)

    def not_applicable(self, client: str, scenario: str, reason: str) -> None:
        self.report.not_applicable[f"{client}|{scenario}"] = reason

    def merged_with(self, old: Report) -> Report:
        """This run's results over the old ones: old results survive only for
        modules this session did not collect, or tests it deselected."""
        merged = Report(versions={**old.versions, **self.report.versions})
        for nodeid, res in old.results.items():
            if res.module not in self.modules_collected or nodeid in self.deselected:
                merged.results[nodeid] = res
        merged.results.update(self.report.results)
        merged.not_applicable = {**old.not_applicable, **self.report.not_applicable}
        for key in list(merged.not_applicable):
            client, scenario = key.split("|", 1)
            if any(r.client == client and r.scenario == scenario for r in merged.results.values()):
                del merged.not_applicable[key]
        return merged


def _cell(results: list[Result], na: str | None, footnotes: list[str]) -> str:
    if not results:
        if na is not None and na.startswith(NOT_YET):
            return "not yet (kafkapy)"
        return "n/a (client)" if na is not None else "not run"
    failed = [r for r in results if r.outcome == "failed"]
    if not failed:
        return "pass"
    refs = []
    for r in failed:
        footnotes.append(f"{r.client} / {r.scenario}: {r.detail}".strip())
        refs.append(f"[{len(footnotes)}]")
    return "**FAIL** " + "".join(refs)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(report: Report) -> str:
    footnotes: list[str] = []
    lines = [
        BEGIN,
        "",
        "## Results",
        "",
        "Written by the interop suite (`pytest interop`): real clients against a real",
        "kafkapy broker process over TCP. `n/a (client)`: the client library cannot do it;",
        "`not yet (kafkapy)`: the broker does not serve it yet (see the list below).",
        "The last column runs the Java scenarios against a real Apache Kafka broker",
        "(interop/apache_kafka.py), proving the scenarios themselves.",
        "",
        "| Scenario | " + " | ".join(title for _, title in CLIENTS) + " |",
        "| --- |" + " --- |" * len(CLIENTS),
    ]
    for scenario, title in SCENARIOS:
        cells = []
        for client, _ in CLIENTS:
            results = [r for r in report.results.values() if r.client == client and r.scenario == scenario]
            cells.append(_cell(results, report.not_applicable.get(f"{client}|{scenario}"), footnotes))
        lines.append(f"| {title} | " + " | ".join(cells) + " |")

    lines += [
        "",
        "### Further scenarios (`-`: no test for that client yet)",
        "",
        "| Scenario | " + " | ".join(title for _, title in CLIENTS) + " |",
        "| --- |" + " --- |" * len(CLIENTS),
    ]
    for scenario, title in EXTRA_SCENARIOS:
        cells = []
        for client, _ in CLIENTS:
            results = [r for r in report.results.values() if r.client == client and r.scenario == scenario]
            cells.append(
                _cell(results, report.not_applicable.get(f"{client}|{scenario}"), footnotes).replace("not run", "-")
            )
        lines.append(f"| {title} | " + " | ".join(cells) + " |")

    cross = sorted(
        {(r.client, r.scenario) for r in report.results.values() if r.scenario.startswith("cross:")},
    )
    cross_clients = [c for c, _ in CLIENTS if c not in REFERENCE_CLIENTS]
    if cross:
        lines += [
            "",
            "### Cross-client (rows produce, columns consume; every codec both support)",
            "",
            "| Producer \\ Consumer | " + " | ".join(c for c in cross_clients) + " |",
            "| --- |" + " --- |" * len(cross_clients),
        ]
        for producer in cross_clients:
            cells = []
            for consumer in cross_clients:
                results = [
                    r for r in report.results.values() if r.client == producer and r.scenario == f"cross:{consumer}"
                ]
                cells.append("" if producer == consumer else _cell(results, None, footnotes).replace("not run", "-"))
            lines.append(f"| {producer} | " + " | ".join(cells) + " |")

    na_notes = sorted(report.not_applicable.items())
    if na_notes:
        lines += ["", "Not applicable (client) or not yet served (kafkapy):", ""]
        lines += [f"- {key.replace('|', ' / ')}: {reason}" for key, reason in na_notes]
    if footnotes:
        lines += ["", "Failures:", ""]
        lines += [f"{i}. {_escape(text)}" for i, text in enumerate(footnotes, 1)]
    if report.versions:
        lines += ["", "Client versions: " + ", ".join(f"{k} {v}" for k, v in sorted(report.versions.items())) + "."]
    lines += ["", "<!-- compat-data", report.to_json().replace("--", "- -"), "-->", "", END]
    return "\n".join(lines)


DEFAULT_HEAD = """# Client compatibility

kafkapy is tested against unmodified Kafka clients. The table below is
regenerated on every run of the interop suite (`interop/`, see
`interop/report.py`); the notes after it are written by hand.
"""

DEFAULT_NOTES = """
## Notes

(Known differences from Apache Kafka, written by hand.)
"""


def load(path: Path = DOC_PATH) -> tuple[str, Report, str]:
    """(text before the generated section, embedded report, text after it)."""
    if not path.exists():
        return DEFAULT_HEAD, Report(), DEFAULT_NOTES
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        return text.rstrip() + "\n", Report(), "\n"
    head, rest = text.split(BEGIN, 1)
    generated, tail = rest.split(END, 1)
    match = DATA_RE.search(generated)
    report = Report.from_json(match.group(1).replace("- -", "--")) if match else Report()
    return head, report, tail


def write_report(collector: Collector, path: Path = DOC_PATH) -> Report:
    head, old, tail = load(path)
    merged = collector.merged_with(old)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(
        head.rstrip() + "\n\n" + render(merged) + "\n" + tail.lstrip("\n").join(["\n", ""]), encoding="utf-8"
    )
    tmp.replace(path)
    return merged


def main() -> int:
    head, report, tail = load()
    DOC_PATH.write_text(
        head.rstrip() + "\n\n" + render(report) + "\n" + tail.lstrip("\n").join(["\n", ""]), encoding="utf-8"
    )
    print(f"rewrote {DOC_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
