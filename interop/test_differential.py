"""kafkapy's raw answers against Apache Kafka's (interop/golden_kafka/,
recorded by `python -m interop.differential regenerate`), field by field after
normalisation (interop/differential.py). No JVM needed: the golden file is
Kafka's; interop/test_apache_kafka_reference.py checks it is still what the
pinned Kafka answers.

Every difference must be listed in KNOWN_DIFFERENCES with its reason (the
same list is in docs/compatibility.md); a listed difference that no longer
occurs fails too, so the list stays true.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interop._common import BrokerProcess, start_broker
from interop.diff_api_versions import load as load_api_versions
from interop.diff_api_versions import served
from interop.differential import (
    CTX,
    SCRIPT,
    SHARED,
    Step,
    api_ranges,
    compare,
    compare_api_versions,
    load_golden,
    run_script,
)
from kafkapy.protocol.api import ApiKey
from kafkapy.server.handlers import HANDLERS

# "step: path" glob -> why kafkapy answers differently
KNOWN_DIFFERENCES: dict[str, str] = {
    "create_*: topics[*].error_message": "kafkapy answers a successful CreateTopics with an empty error message, Kafka with null",
    "create_*: topics[*].configs.message.downconversion.enable": "kafkapy still lists this config; Kafka 4 removed it (no message down-conversion)",
    "create_*: topics[*].configs.message.timestamp.difference.max.ms": "kafkapy still lists this config; Kafka 4 removed it (replaced by before/after.max.ms)",
    "create_*: topics[*].configs.flush.messages.config_source": "Kafka reports flush.messages as a static broker config (the test sets log.flush.interval.messages); kafkapy as a default",
    "create_*: topics[*].configs.min.insync.replicas.config_source": "the reference broker sets min.insync.replicas in server.properties (STATIC_BROKER_CONFIG); kafkapy's test broker does not",
    "create_validate_only: topics[0].topic_id": "Kafka returns a would-be topic id for validate_only; kafkapy a zero UUID",
    "produce_corrupt_crc: responses[0].partition_responses[0].error_message": "kafkapy explains CORRUPT_MESSAGE in the error message; Kafka sends null",
    "list_offsets_earliest: topics[0].partitions[1].leader_epoch": "EARLIEST on an empty partition: Kafka gives the leader epoch (0), kafkapy -1",
    "produce_v0: *": "Kafka 4 advertises Produce v0-2 (for old librdkafka) but closes the connection when they are used (KIP-896); kafkapy still serves them",
    "produce_v1: *": "Kafka 4 advertises Produce v0-2 (for old librdkafka) but closes the connection when they are used (KIP-896); kafkapy still serves them",
    "produce_v2: *": "Kafka 4 advertises Produce v0-2 (for old librdkafka) but closes the connection when they are used (KIP-896); kafkapy still serves them",
    "create_partitions_unknown_*: results[0].error_message": "CreatePartitions of an unknown topic: kafkapy explains it in the message, Kafka sends null",
    "describe_configs_unknown_topic_*: results[0].error_message": "DescribeConfigs of an unknown topic: Kafka sends an empty error message, kafkapy explains it",
    "apiversions_above_max_v6: api_keys[0].max_version": "kafkapy serves ApiVersions v5 (Kafka 4.4.0's, KIP-1242); Kafka 4.3.1 stops at v4",
    "consumer_group_heartbeat_join_v1: member_epoch": "a new consumer group's first member: Kafka 4.3.1 answers member epoch 2, kafkapy 1 (cause not yet understood; clients only echo it back)",
    "share_heartbeat_unknown_group_v1: *": "a heartbeat with MemberEpoch > 0 for a share group the coordinator does not know: Kafka GROUP_ID_NOT_FOUND (fatal to the Java KafkaShareConsumer), kafkapy UNKNOWN_MEMBER_ID so the member rejoins (share-group membership is not persisted; docs/compatibility.md, Share groups)",
    "read_share_group_state_summary_v1: results[0].partitions[0].delivery_complete_count": "ReadShareGroupStateSummary v1 after a WriteShareGroupState v1: Kafka 4.3.1 gives the DeliveryCompleteCount the write sent (-1 here), kafkapy counts the stored batches' finished records (it does not store the written count; docs/compatibility.md, Share groups)",
    "create_cfg_message_timestamp_difference_max_ms_5: topics[0].error_code": "kafkapy keeps message.timestamp.difference.max.ms (the issue asks for it); Kafka 4 removed it (INVALID_CONFIG)",
    "alter_cfg_removed_key: *": "kafkapy keeps message.timestamp.difference.max.ms (the issue asks for it); Kafka 4 removed it (INVALID_CONFIG)",
    "incremental_cfg_broker_valid: *": "a valid dynamic broker config change: Kafka applies it, kafkapy has no dynamic broker configs (INVALID_CONFIG)",
    "records_recompress_*_stored: responses[*].partitions[*].records.bytes": "batches recompressed to zstd by the broker: kafkapy's zstd frames are 3 bytes shorter than Kafka's (zstd-jni writes more frame header); both decode to the same records",
    "fetch_v3_below_served: *": "Fetch v0-3: Kafka 4 closes the connection (KIP-896 removed them); kafkapy serves them with down-conversion for clients from before Kafka 0.11",
    "describe_acls_v0_below_served: *": "DescribeAcls v0: Kafka 4 closes the connection (KIP-896 removed it); kafkapy serves it (LITERAL bindings only) for clients from before Kafka 2.0",
    "records_offset_deltas_*: *": "uncompressed records whose offset deltas are not 0, 1, 2...: Kafka stores them as sent (consumers see repeated or decreasing offsets); kafkapy refuses them with INVALID_RECORD (issue 14: never store what a consumer cannot read)",
}

# GetTelemetrySubscriptions and PushTelemetry (KIP-714): Kafka advertises them only with a client
# telemetry plugin configured (the reference broker has none); kafkapy serves them itself
TELEMETRY_APIS = {int(ApiKey.GET_TELEMETRY_SUBSCRIPTIONS), int(ApiKey.PUSH_TELEMETRY)}

# ApiVersions: what kafkapy does not serve yet, or serves in older versions only
API_NOTES = (
    "kafkapy advertises a subset of Kafka's APIs (transactions, ACLs, quotas, SCRAM, KIP-848 "
    "and share groups, KRaft-internal APIs missing); its minimum versions are often lower "
    "(Kafka 4 removed pre-2.1 versions), its maximum versions lower where its codec or handlers stop"
)


@pytest.fixture(scope="module")
def fresh_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    # as the reference broker the golden answers come from (interop/apache_kafka.py): no initial
    # rebalance delay, else each JoinGroup of the script waits 3 s for nothing
    broker = start_broker(tmp_path_factory.mktemp("differential") / "data", {"group.initial.rebalance.delay.ms": "0"})
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def answers(fresh_broker: BrokerProcess) -> dict[str, Any]:
    return run_script(fresh_broker.bootstrap, settle_s=0.0)


def _pinned_kafka_version() -> str:
    pom = (Path(__file__).parent / "java" / "pom.xml").read_text()
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert match
    return match.group(1)


def test_golden_fixtures_are_from_the_pinned_kafka() -> None:
    golden = load_golden()
    assert golden["kafka_version"] == _pinned_kafka_version(), "run `python -m interop.differential regenerate`"
    assert set(golden["responses"]) == {s.name for s in SCRIPT}, "script changed: regenerate the golden fixtures"


def _known(step: str, path: str) -> str | None:
    for pattern in KNOWN_DIFFERENCES:
        # "*" is the only wildcard ("[0]" is literal)
        if re.fullmatch(re.escape(pattern).replace(r"\*", ".*"), f"{step}: {path}"):
            return pattern
    return None


def test_kafkapy_answers_like_kafka(answers: dict[str, Any]) -> None:
    golden = load_golden()["responses"]
    unexplained: list[str] = []
    used: set[str] = set()
    for step, diffs in compare(golden, answers).items():
        for path, kafka, ours in diffs:
            pattern = _known(step, path)
            if pattern is None:
                unexplained.append(f"{step}: {path}: Kafka {kafka!r}, kafkapy {ours!r}")
            else:
                used.add(pattern)
    assert not unexplained, "differences from Apache Kafka not in KNOWN_DIFFERENCES:\n" + "\n".join(unexplained)
    stale = sorted(set(KNOWN_DIFFERENCES) - used)
    assert not stale, (
        f"listed differences that no longer occur (remove them here and in docs/compatibility.md): {stale}"
    )


@pytest.mark.parametrize(
    "step",
    [
        "api_versions_v0",
        "api_versions_v1",
        "api_versions_v2",
        "api_versions_v3",
        "api_versions_v4",
    ],
)
def test_api_versions_ranges(answers: dict[str, Any], step: str) -> None:
    """kafkapy's ApiVersions ranges against the recorded Kafka's, in every ApiVersions version."""
    golden = load_golden()["responses"]
    assert golden[step]["error_code"] == answers[step]["error_code"] == 0
    d = compare_api_versions(golden[step], answers[step])
    newer = served(load_api_versions("4.4.0"))  # APIs and versions new in Kafka 4.4.0 may be served too
    extra = [entry for entry in d["only_kafkapy"] if entry[0] not in TELEMETRY_APIS and entry[0] not in newer]
    assert not extra, f"kafkapy advertises APIs Kafka does not: {extra}"
    above = [(key, k, o) for key, k, o in d["different_range"] if o[1] > max(k[1], newer.get(key, k)[1])]
    assert not above, f"kafkapy advertises versions above Kafka's (4.3.1, 4.4.0) maximum: {above}"


def _api_of(step: Step) -> int:
    """The API a step sends (builds that need earlier answers get stand-ins)."""
    saved = dict(CTX)
    CTX.update(
        member0="m",
        gen0=1,
        member9="m",
        gen9=1,
        pid=1,
        epoch=0,
        topic_ids=defaultdict(uuid.uuid4),
    )
    try:
        return int(step.build().API_KEY)
    finally:
        CTX.clear()
        CTX.update(saved)


def test_script_covers_every_advertised_api_in_every_shared_version() -> None:
    """Every API in kafkapy's dispatch table is sent in every version both
    kafkapy and the recorded Kafka serve (Produce v0-2 included: the sweep
    starts at v3, produce_v0 covers v0, Kafka closes the connection there)."""
    kafka = api_ranges(load_golden()["responses"]["api_versions_v3"])
    sent: dict[int, set[int]] = defaultdict(set)
    for step in SCRIPT:
        if step.raw is None:
            sent[_api_of(step)].add(step.version)
    missing = []
    for h in HANDLERS:
        key = int(h.api_key)
        if key not in kafka:
            continue
        lo, hi = max(h.min_version, kafka[key][0]), min(h.max_version, kafka[key][1])
        if key in SHARED:  # the sweep's table of shared versions
            assert SHARED[key][1] == hi and SHARED[key][0] >= lo, (ApiKey(key).name, SHARED[key], (lo, hi))
        for v in sorted(set(range(lo, hi + 1)) - sent[key]):
            missing.append(f"{ApiKey(key).name} v{v}")
    assert not missing, f"not in the differential script: {missing}"


@pytest.mark.parametrize("step", [s.name for s in SCRIPT if not s.name.startswith("api_versions")])
def test_error_codes_match(answers: dict[str, Any], step: str) -> None:
    """The error codes alone, step by step: the part clients act on."""
    golden = load_golden()["responses"]

    def codes(data: Any, path: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        if isinstance(data, dict):
            for k, v in data.items():
                if k.endswith("error_code"):  # partition_error_code too
                    out[path or "."] = v
                else:
                    out.update(codes(v, f"{path}.{k}"))
        elif isinstance(data, list):
            for i, v in enumerate(data):
                out.update(codes(v, f"{path}[{i}]"))
        return out

    ours, kafka = codes(answers[step]), codes(golden[step])
    differing = {p for p in set(ours) | set(kafka) if ours.get(p) != kafka.get(p)}
    # only a difference listed for the whole step (a closed connection, "step: *") excuses an error code
    assert not {p for p in differing if _known(step, "closed") is None}, (kafka, ours)
