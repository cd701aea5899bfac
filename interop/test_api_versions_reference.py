"""kafkapy's ApiVersions against Apache Kafka 4.3.1's and 4.4.0's (golden files recorded on a broker
listener by interop/diff_api_versions.py; no JVM at test time).

The test asks a live kafkapy broker for ApiVersions and fails on:
- an API version either Kafka release serves that kafkapy does not, unless GAPS lists it ("missing");
- an API version kafkapy serves that either release does not, unless GAPS lists it ("extra");
- a GAPS row that is no longer true (kafkapy serves a listed missing version now, say): the list
  and the table rendered from it into docs/compatibility.md stay exact;
- that table in docs/compatibility.md differing from GAPS and the goldens (rewrite it with
  `python -m interop.test_api_versions_reference`).

GAPS is the one list of differences and their reasons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interop._common import BrokerProcess
from interop.diff_api_versions import RELEASES, api_name, load, run, served
from kafkapy.cluster.features import FEATURES
from kafkapy.server.handlers import HANDLERS

DOC = Path(__file__).resolve().parents[1] / "docs" / "compatibility.md"
BEGIN = "<!-- BEGIN api-versions: python -m interop.test_api_versions_reference rewrites this table -->"
END = "<!-- END api-versions -->"

MISSING, EXTRA = "missing", "extra"


@dataclass(frozen=True, slots=True)
class Gap:
    """Versions `first`..`last` of API `api_key`: served by Kafka and not by kafkapy (MISSING), or
    served by kafkapy and not by Kafka (EXTRA), and why."""

    api_key: int
    first: int
    last: int
    kind: str
    reason: str


_KIP896 = "removed in Kafka 4.0 (KIP-896); kafkapy still serves them for older clients"

GAPS: tuple[Gap, ...] = (
    Gap(1, 0, 3, EXTRA, _KIP896 + " (down-conversion for clients from before 0.11, see below)"),
    Gap(2, 0, 0, EXTRA, _KIP896 + " (the old offsets-before-time rule, see below)"),
    Gap(8, 0, 1, EXTRA, _KIP896),
    Gap(9, 0, 0, EXTRA, _KIP896),
    Gap(18, 5, 5, EXTRA, "new in Kafka 4.4.0 (KIP-1242: cluster and node id check); 4.3.1 stops at v4"),
    Gap(19, 0, 1, EXTRA, _KIP896),
    Gap(20, 0, 0, EXTRA, _KIP896),
    Gap(23, 0, 1, EXTRA, _KIP896),
    Gap(27, 0, 0, EXTRA, _KIP896),
    Gap(29, 0, 0, EXTRA, _KIP896 + " (no pattern type: LITERAL bindings only, KIP-290)"),
    Gap(30, 0, 0, EXTRA, _KIP896 + " (no pattern type: LITERAL bindings only, KIP-290)"),
    Gap(31, 0, 0, EXTRA, _KIP896 + " (no pattern type: LITERAL bindings only, KIP-290)"),
    Gap(28, 6, 6, EXTRA, "new in Kafka 4.4.0 (KIP-1319: topic ids, member epochs); 4.3.1 stops at v5"),
    Gap(32, 0, 0, EXTRA, _KIP896),
    Gap(34, 0, 0, EXTRA, _KIP896),
    Gap(35, 0, 0, EXTRA, _KIP896),
    Gap(38, 0, 0, EXTRA, _KIP896),
    Gap(39, 0, 0, EXTRA, _KIP896),
    Gap(40, 0, 0, EXTRA, _KIP896),
    Gap(41, 0, 0, EXTRA, _KIP896),
    Gap(42, 3, 3, EXTRA, "new in Kafka 4.4.0 (an error message per group); 4.3.1 stops at v2"),
    Gap(71, 0, 0, EXTRA, "Kafka advertises it only with a client telemetry receiver configured (KIP-714)"),
    Gap(72, 0, 0, EXTRA, "Kafka advertises it only with a client telemetry receiver configured (KIP-714)"),
    Gap(88, 1, 1, EXTRA, "new in Kafka 4.4.0 (KIP-1331: TopologyDescriptionRequired); 4.3.1 stops at v0"),
    Gap(89, 1, 1, EXTRA, "new in Kafka 4.4.0 (KIP-1331 topology description, AssignorName); 4.3.1 stops at v0"),
    Gap(93, 0, 0, EXTRA, "new in Kafka 4.4.0 (KIP-1331 topology descriptions); 4.3.1 has no API 93"),
    Gap(94, 0, 0, EXTRA, "new in Kafka 4.4.0 (controller registrations); 4.3.1 has no UnregisterController"),
)

# Features (KIP-584) whose supported range or finalized level in kafkapy's ApiVersions differs from
# a release's, and why: one row per feature (kafkapy/cluster/features.py has kafkapy's table)
FEATURE_GAPS: dict[str, str] = {
    "metadata.version": "no KRaft metadata log: kafkapy claims only the level of the protocol it follows "
    "(Kafka 4.3's, 30); UpdateFeatures to any other level is refused",
    "kraft.version": "no Raft quorum: 0, a static one (1 is KIP-853's dynamic voters)",
    "share.version": "level 1 (Kafka 4.3.1's share groups, KIP-932); Kafka 4.4.0's level 2 not yet",
    "eligible.leader.replicas.version": "kafkapy has no eligible leader replicas (KIP-966)",
}

Ranges = dict[int, tuple[int, int]]
Found = set[tuple[int, int]]


def _versions(served_range: tuple[int, int] | None) -> set[int]:
    return set(range(served_range[0], served_range[1] + 1)) if served_range else set()


def differences(kafka: Ranges, ours: Ranges) -> tuple[Found, Found]:
    """(api key, version) pairs Kafka serves and kafkapy not, and kafkapy serves and Kafka not."""
    missing = {(k, v) for k, r in kafka.items() for v in _versions(r) - _versions(ours.get(k))}
    extra = {(k, v) for k, r in ours.items() for v in _versions(r) - _versions(kafka.get(k))}
    return missing, extra


def listed(kind: str, gaps: tuple[Gap, ...] = GAPS) -> Found:
    return {(g.api_key, v) for g in gaps if g.kind == kind for v in range(g.first, g.last + 1)}


def _spans(pairs: Found) -> list[str]:
    """`Produce (0) v12-13`-style names of (key, version) pairs."""
    out = []
    for key in sorted({k for k, _ in pairs}):
        vs = sorted(v for k, v in pairs if k == key)
        runs: list[list[int]] = []
        for v in vs:
            if runs and runs[-1][1] == v - 1:
                runs[-1][1] = v
            else:
                runs.append([v, v])
        out += [f"{api_name(key)} ({key}) v{a}" + (f"-{b}" if b != a else "") for a, b in runs]
    return out


def check(references: dict[str, Ranges], ours: Ranges, gaps: tuple[Gap, ...] = GAPS) -> list[str]:
    """What is wrong: unlisted differences with any reference, and listed ones that are not true."""
    problems = []
    every: dict[str, Found] = {MISSING: set(), EXTRA: set()}
    for release, kafka in references.items():
        missing, extra = differences(kafka, ours)
        every[MISSING] |= missing
        every[EXTRA] |= extra
        for kind, found, what in (
            (MISSING, missing, f"served by Kafka {release}, not by kafkapy"),
            (EXTRA, extra, f"served by kafkapy, not by Kafka {release}"),
        ):
            problems += [f"{span}: {what}, not listed in GAPS" for span in _spans(found - listed(kind, gaps))]
    for kind in (MISSING, EXTRA):
        stale = listed(kind, gaps) - every[kind]
        problems += [f"{span}: listed in GAPS as {kind}, but it is not (update GAPS)" for span in _spans(stale)]
    seen: set[tuple[int, int, str]] = set()
    for g in gaps:
        for v in range(g.first, g.last + 1):
            if (g.api_key, v, g.kind) in seen:
                problems.append(f"{api_name(g.api_key)} ({g.api_key}) v{v}: listed twice as {g.kind}")
            seen.add((g.api_key, v, g.kind))
    return problems


def _feature(answer: dict[str, Any], name: str) -> tuple[Any, Any]:
    """(supported [min, max], finalized [min, max]) of one ApiVersions answer; None where absent."""
    return answer["supported_features"].get(name), answer["finalized_features"].get(name)


def check_features(
    goldens: dict[str, dict[str, Any]], ours: dict[str, Any], gaps: dict[str, str] = FEATURE_GAPS
) -> list[str]:
    """What is wrong: a feature advertised otherwise than a release does, unlisted; a listed one that is not."""
    problems, every = [], set()
    for release, golden in goldens.items():
        names = {*golden["supported_features"], *golden["finalized_features"]}
        names |= {*ours["supported_features"], *ours["finalized_features"]}
        differ = {n for n in names if _feature(golden, n) != _feature(ours, n)}
        every |= differ
        problems += [
            f"feature {n}: kafkapy {_feature(ours, n)}, Kafka {release} {_feature(golden, n)}, not listed in FEATURE_GAPS"
            for n in sorted(differ - gaps.keys())
        ]
    problems += [
        f"feature {n}: listed in FEATURE_GAPS, but it is not (update FEATURE_GAPS)" for n in sorted(gaps.keys() - every)
    ]
    return problems


def references() -> dict[str, Ranges]:
    return {release: served(load(release)) for release in RELEASES}


def handler_table() -> Ranges:
    return {h.api_key: (h.min_version, h.max_version) for h in HANDLERS}


def _range(r: tuple[int, int] | None) -> str:
    return "-" if r is None else f"{r[0]}-{r[1]}" if r[0] != r[1] else f"{r[0]}"


def render() -> str:
    """The docs/compatibility.md table (between BEGIN and END): GAPS with the served ranges."""
    refs = references()
    ours = handler_table()
    lines = []
    for release, kafka in refs.items():
        both = kafka.keys() & ours.keys()
        newest = sum(1 for k in both if ours[k][1] >= kafka[k][1])
        lines.append(
            f"- Kafka {release} advertises {len(kafka)} APIs on a broker listener; kafkapy advertises {len(both)} "
            f"of them, {newest} at Kafka's newest version."
        )
    for release in refs:
        golden = load(release)
        finalized = ", ".join(f"`{n}`={v[1]}" for n, v in sorted(golden["finalized_features"].items()))
        supported = ", ".join(f"`{n}` {v[0]}-{v[1]}" for n, v in sorted(golden["supported_features"].items()))
        lines.append(f"- Kafka {release} finalizes {finalized}; supports {supported}.")
    lines += [
        "",
        "Features (KIP-584), supported range / finalized level (- not finalized):",
        "",
        "| feature | " + " | ".join(f"Kafka {r}" for r in refs) + " | kafkapy | reason |",
        "| --- | --- | --- | --- | --- |",
    ]
    goldens = {release: load(release) for release in refs}
    for f in sorted(FEATURES, key=lambda f: f.name):
        cells = []
        for golden in goldens.values():
            sup, fin = _feature(golden, f.name)
            cells.append(f"{_range(tuple(sup)) if sup else '-'} / {fin[1] if fin else '-'}")
        ours_cell = f"{_range((f.min_version, f.max_version))} / {f.default if f.default else '-'}"
        lines.append(f"| `{f.name}` | {' | '.join(cells)} | {ours_cell} | {FEATURE_GAPS.get(f.name, 'as Kafka')} |")
    names = list(refs)
    lines += [
        "",
        f"| API (key) | versions | gap | Kafka {names[0]} | Kafka {names[1]} | kafkapy | reason |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for g in sorted(GAPS, key=lambda g: (g.api_key, g.kind != MISSING, g.first)):
        versions = f"{g.first}" if g.first == g.last else f"{g.first}-{g.last}"
        lines.append(
            f"| {api_name(g.api_key)} ({g.api_key}) | {versions} | {g.kind} | "
            + " | ".join(_range(refs[n].get(g.api_key)) for n in names)
            + f" | {_range(ours.get(g.api_key))} | {g.reason} |"
        )
    return "\n".join(lines) + "\n"


def _doc_section(text: str) -> str | None:
    m = re.search(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), text, re.S)
    return m.group(1) if m else None


def test_api_versions_against_kafka_references(broker: BrokerProcess) -> None:
    answer = run(broker.bootstrap)
    ours = served(answer)
    assert ours == handler_table(), "the live broker advertises other versions than kafkapy/server/handlers"
    problems = check(references(), ours)
    problems += check_features({release: load(release) for release in RELEASES}, answer)
    assert not problems, "ApiVersions differs from Apache Kafka:\n" + "\n".join(problems)


def test_check_features_finds_unlisted_and_stale_rows() -> None:
    kafka = {"supported_features": {"a": [0, 2], "b": [0, 1]}, "finalized_features": {"a": [2, 2], "b": [1, 1]}}
    ours = {"supported_features": {"a": [0, 1], "b": [0, 1]}, "finalized_features": {"a": [1, 1], "b": [1, 1]}}
    assert check_features({"k": kafka}, ours, {"a": "r"}) == []
    assert check_features({"k": kafka}, ours, {}) == [
        "feature a: kafkapy ([0, 1], [1, 1]), Kafka k ([0, 2], [2, 2]), not listed in FEATURE_GAPS"
    ]
    assert check_features({"k": kafka}, ours, {"a": "r", "b": "r"}) == [
        "feature b: listed in FEATURE_GAPS, but it is not (update FEATURE_GAPS)"
    ]


def test_check_finds_unlisted_and_stale_rows() -> None:
    refs = {"a": {0: (0, 13), 1: (4, 18), 78: (1, 2)}, "b": {0: (3, 13), 1: (4, 18), 78: (1, 1)}}
    ours = {0: (0, 11), 1: (0, 18), 72: (0, 0)}
    gaps = (
        Gap(0, 12, 13, MISSING, "r"),
        Gap(0, 0, 2, EXTRA, "r"),
        Gap(1, 0, 3, EXTRA, "r"),
        Gap(72, 0, 0, EXTRA, "r"),
        Gap(78, 1, 2, MISSING, "r"),
    )
    assert check(refs, ours, gaps) == []
    assert check(refs, ours, gaps[1:]) == [
        "Produce (0) v12-13: served by Kafka a, not by kafkapy, not listed in GAPS",
        "Produce (0) v12-13: served by Kafka b, not by kafkapy, not listed in GAPS",
    ]
    assert check(refs, ours, gaps[:1] + gaps[2:]) == [
        "Produce (0) v0-2: served by kafkapy, not by Kafka b, not listed in GAPS"
    ]
    assert check(refs, {**ours, 0: (0, 12)}, gaps) == [
        "Produce (0) v12: listed in GAPS as missing, but it is not (update GAPS)"
    ]
    assert check(refs, ours, (*gaps, Gap(78, 2, 2, MISSING, "r"))) == ["ShareFetch (78) v2: listed twice as missing"]


def test_doc_table_is_rendered_from_gaps() -> None:
    assert _doc_section(DOC.read_text()) == render(), "rewrite it: python -m interop.test_api_versions_reference"


if __name__ == "__main__":
    text = DOC.read_text()
    assert _doc_section(text) is not None, f"docs/compatibility.md lacks {BEGIN}"
    DOC.write_text(
        re.sub(re.escape(BEGIN) + r"\n.*?" + re.escape(END), lambda _: f"{BEGIN}\n{render()}{END}", text, flags=re.S)
    )
