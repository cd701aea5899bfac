"""Feature levels, UpdateFeatures (57) and DescribeQuorum (55): raw requests recorded against Apache
Kafka 4.3.1 (interop/golden_kafka/features.json) and compared with kafkapy by tests/server/test_features.py.

Sections, each a function of one PLAINTEXT connection returning plain data:

- api_versions: the features ApiVersions v3 and v4 advertise.
- update_features: UpdateFeatures v0-v2 for group.version and metadata.version (whose ranges kafkapy
  shares with Kafka), an unknown feature, levels out of range, each upgrade type, validate-only, a
  duplicate, and a real downgrade and upgrade of group.version with the epoch it moves.
- describe_quorum: DescribeQuorum v0-v2 for the metadata partition and for another topic.

`record_auth` runs alice (no ACL) and the admin against a SASL_PLAINTEXT listener with the
StandardAuthorizer: section "authorization".

Node ids, ports, offsets and times are normalised away; error messages are kept.

    python -m interop.diff_features record   # against Apache Kafka 4.3.1 (golden file)
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interop._common import load_golden, save_golden
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.consumer_group_heartbeat_request import ConsumerGroupHeartbeatRequest
from kafkapy.protocol.messages.describe_quorum_request import DescribeQuorumRequest, PartitionData, TopicData
from kafkapy.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkapy.protocol.messages.update_features_request import FeatureUpdateKey, UpdateFeaturesRequest
from tests.server.rawclient import RawClient

GOLDEN = Path(__file__).resolve().parent / "golden_kafka" / "features.json"
METADATA_TOPIC = "__cluster_metadata"
UPGRADE, SAFE, UNSAFE = 1, 2, 3

# (name, [(feature, level, upgrade type)], validate only); v0 sends AllowDowngrade = type != UPGRADE
Case = tuple[str, list[tuple[str, int, int]], bool]
CASES: list[Case] = [
    ("empty", [], False),
    ("group_same_level", [("group.version", 1, UPGRADE)], True),
    ("group_above_supported", [("group.version", 2, UPGRADE)], True),
    ("group_down_as_upgrade", [("group.version", 0, UPGRADE)], True),
    ("group_down_safe", [("group.version", 0, SAFE)], True),
    ("group_down_unsafe", [("group.version", 0, UNSAFE)], True),
    ("group_delete_safe", [("group.version", -1, SAFE)], True),
    ("group_upgrade_type_0", [("group.version", 1, 0)], True),
    ("group_upgrade_type_4", [("group.version", 1, 4)], True),
    ("unknown_feature", [("no.such.version", 1, UPGRADE)], True),
    ("unknown_feature_zero", [("no.such.version", 0, SAFE)], True),
    ("empty_name", [("", 1, UPGRADE)], True),
    ("metadata_same", [("metadata.version", 30, UPGRADE)], True),
    ("metadata_above", [("metadata.version", 31, UPGRADE)], True),
    ("metadata_down_safe", [("metadata.version", 29, SAFE)], True),
    ("metadata_down_unsafe", [("metadata.version", 29, UNSAFE)], True),
    ("metadata_zero", [("metadata.version", 0, SAFE)], True),
    ("metadata_below_min", [("metadata.version", 6, SAFE)], True),
    ("kraft_up", [("kraft.version", 1, UPGRADE)], True),
    ("kraft_same", [("kraft.version", 0, UPGRADE)], True),
    ("duplicate", [("group.version", 1, UPGRADE), ("group.version", 1, UPGRADE)], True),
    ("one_bad_one_good", [("group.version", 1, UPGRADE), ("no.such.version", 1, UPGRADE)], True),
]


def update(c: RawClient, version: int, items: list[tuple[str, int, int]], validate_only: bool) -> dict[str, Any]:
    keys = [
        FeatureUpdateKey(feature=f, max_version_level=level, upgrade_type=t, allow_downgrade=t != UPGRADE)
        for f, level, t in items
    ]
    resp = c.request(
        UpdateFeaturesRequest(feature_updates=keys, validate_only=validate_only, timeout_ms=10_000), version
    )
    out: dict[str, Any] = {"error": resp.error_code, "message": resp.error_message}
    if version < 2:
        out["results"] = [[r.feature, r.error_code, r.error_message] for r in resp.results]
    return out


def features(c: RawClient, version: int = 4) -> dict[str, Any]:
    resp = c.request(ApiVersionsRequest(client_software_name="kafkapy-features", client_software_version="1"), version)
    return {
        "supported": {f.name: [f.min_version, f.max_version] for f in resp.supported_features},
        "finalized": {f.name: [f.min_version_level, f.max_version_level] for f in resp.finalized_features},
        "epoch": resp.finalized_features_epoch,
    }


def api_versions(c: RawClient) -> dict[str, Any]:
    out = {}
    for version in (3, 4):
        got = features(c, version)
        got["epoch"] = "set" if got["epoch"] >= 0 else got["epoch"]
        out[f"v{version}"] = got
    return out


def _wait_level(c: RawClient, name: str, level: int, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        got = features(c)
        if got["finalized"].get(name, [0, 0])[1] == level or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def update_features(c: RawClient) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for version in (1, 2, 0):
        for name, items, validate_only in CASES:
            if version == 0 and name.startswith(("group_upgrade_type", "group_down", "group_delete", "kraft_up")):
                continue  # v0 has no upgrade type, nor validate-only: it would apply the change
            out[f"v{version}.{name}"] = update(c, version, items, validate_only and version > 0)
    # v0's AllowDowngrade (applied if honoured)
    out["v0.group_down_allowed"] = update(c, 0, [("group.version", 0, SAFE)], False)
    # a real change: group.version down to 0 (safe), then back to 1; the epoch grows each time
    before = features(c)
    out["apply.down"] = update(c, 2, [("group.version", 0, SAFE)], False)
    down = _wait_level(c, "group.version", 0)
    out["apply.down_again"] = update(c, 1, [("group.version", 0, SAFE)], False)
    out["apply.down_heartbeat"] = heartbeat(c)
    out["apply.down_api_68"] = api_range(c, 68)
    out["apply.up_with_safe_type"] = update(c, 1, [("group.version", 1, SAFE)], True)
    out["apply.up_with_unsafe_type"] = update(c, 2, [("group.version", 1, UNSAFE)], True)
    out["apply.up"] = update(c, 1, [("group.version", 1, UPGRADE)], False)
    up = _wait_level(c, "group.version", 1)
    out["apply.group_finalized"] = ["group.version" in down["finalized"], "group.version" in up["finalized"]]
    out["apply.up_heartbeat"] = heartbeat(c)
    out["apply.up_api_68"] = api_range(c, 68)
    out["apply.epochs_grow"] = before["epoch"] < down["epoch"] < up["epoch"]
    return out


def heartbeat(c: RawClient) -> list[Any]:
    """A new member's ConsumerGroupHeartbeat v0: (error, message) after the group coordinator loaded."""
    hb = ConsumerGroupHeartbeatRequest(
        group_id="features-group",
        member_id=str(uuid.UUID(int=848)),
        member_epoch=0,
        rebalance_timeout_ms=30_000,
        subscribed_topic_names=["features-topic"],
        topic_partitions=[],
    )
    deadline = time.monotonic() + 20
    while True:
        c.request(FindCoordinatorRequest(key_type=0, coordinator_keys=["features-group"]), 4)  # the offsets topic
        resp = c.request(hb, 0)
        if resp.error_code not in (14, 15, 16) or time.monotonic() > deadline:  # coordinator loading
            return [resp.error_code, resp.error_message]
        time.sleep(0.2)


def api_range(c: RawClient, key: int) -> list[int] | None:
    resp = c.request(ApiVersionsRequest(client_software_name="kafkapy-features", client_software_version="1"), 3)
    return next(([a.min_version, a.max_version] for a in resp.api_keys if a.api_key == key), None)


def _replica(r: Any, version: int) -> dict[str, Any]:
    out: dict[str, Any] = {"leo": "set" if r.log_end_offset >= 0 else r.log_end_offset}
    if version >= 1:
        out["last_fetch"] = "set" if r.last_fetch_timestamp >= 0 else r.last_fetch_timestamp
        out["last_caught_up"] = "set" if r.last_caught_up_timestamp >= 0 else r.last_caught_up_timestamp
    if version >= 2:
        out["directory"] = "zero" if r.replica_directory_id.int == 0 else "set"
    return out


def quorum(c: RawClient, version: int, topic: str, partition: int) -> dict[str, Any]:
    req = DescribeQuorumRequest(
        topics=[TopicData(topic_name=topic, partitions=[PartitionData(partition_index=partition)])]
    )
    resp = c.request(req, version)
    out: dict[str, Any] = {"error": resp.error_code, "message": resp.error_message if version >= 2 else None}
    out["topics"] = [
        [
            t.topic_name,
            [
                {
                    "partition": p.partition_index,
                    "error": p.error_code,
                    "message": p.error_message if version >= 2 else None,
                    "leader": "voter" if p.leader_id in [v.replica_id for v in p.current_voters] else p.leader_id,
                    "leader_epoch": "set" if p.leader_epoch > 0 else p.leader_epoch,
                    "high_watermark": "set" if p.high_watermark > 0 else p.high_watermark,
                    "voters": [_replica(v, version) for v in p.current_voters],
                    "observers": [_replica(o, version) for o in p.observers],
                }
                for p in t.partitions
            ],
        ]
        for t in resp.topics
    ]
    if version >= 2:
        leaders = {p.leader_id for t in resp.topics for p in t.partitions}
        out["nodes"] = [["leader" if n.node_id in leaders else "other", len(n.listeners)] for n in resp.nodes]
    return out


def describe_quorum(c: RawClient) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for version in (0, 1, 2):
        out[f"v{version}.metadata"] = quorum(c, version, METADATA_TOPIC, 0)
        out[f"v{version}.metadata_p1"] = quorum(c, version, METADATA_TOPIC, 1)
        out[f"v{version}.other"] = quorum(c, version, "some-topic", 0)
    out["v2.no_topics"] = _raw_quorum(c, DescribeQuorumRequest(topics=[]))
    two = [PartitionData(partition_index=0), PartitionData(partition_index=0)]
    out["v2.twice"] = _raw_quorum(
        c, DescribeQuorumRequest(topics=[TopicData(topic_name=METADATA_TOPIC, partitions=two)])
    )
    return out


def _raw_quorum(c: RawClient, req: DescribeQuorumRequest) -> dict[str, Any]:
    resp = c.request(req, 2)
    return {
        "error": resp.error_code,
        "message": resp.error_message,
        "topics": [
            [t.topic_name, [[p.partition_index, p.error_code, p.error_message] for p in t.partitions]]
            for t in resp.topics
        ],
        "nodes": len(resp.nodes),
    }


SECTIONS: dict[str, Callable[[RawClient], dict[str, Any]]] = {
    "api_versions": api_versions,
    "update_features": update_features,
    "describe_quorum": describe_quorum,
}


def run(bootstrap: str, sections: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with RawClient(bootstrap, timeout=30.0) as c:
        for name, fn in SECTIONS.items():
            if sections is None or name in sections:
                out[name] = fn(c)
    return out


def authorization(login: Callable[[str], RawClient]) -> dict[str, Any]:
    """UpdateFeatures and DescribeQuorum as alice (no ACL) and the admin (a super user)."""
    out: dict[str, Any] = {}
    for user in ("alice", "admin"):
        with login(user) as c:
            for version in (1, 2):
                out[f"{user}.update.v{version}"] = update(c, version, [("group.version", 1, UPGRADE)], True)
            out[f"{user}.quorum.v2"] = _raw_quorum(
                c, DescribeQuorumRequest(topics=[TopicData(topic_name=METADATA_TOPIC, partitions=[PartitionData()])])
            )
    return out


def record(out: Path = GOLDEN) -> Path:
    """Both runs against Apache Kafka 4.3.1: the sections on a plain broker, then `authorization` on a
    SASL_PLAINTEXT listener with the StandardAuthorizer."""
    from interop import apache_kafka, diff_acls

    answers: dict[str, Any] = {}
    kafka = apache_kafka.start_kafka(Path(tempfile.mkdtemp(prefix="kafka-features-")))
    try:
        answers.update(run(kafka.bootstrap))
    finally:
        kafka.stop()
    ports = [apache_kafka.free_port() for _ in range(3)]
    picks = iter(ports[:2])
    original = apache_kafka.free_port
    apache_kafka.free_port = lambda host="127.0.0.1": next(picks)  # type: ignore[assignment]
    try:
        secure = apache_kafka.start_kafka(
            Path(tempfile.mkdtemp(prefix="kafka-features-auth-")),
            {
                "listeners": f"PLAINTEXT://127.0.0.1:{ports[0]},CONTROLLER://127.0.0.1:{ports[1]},"
                f"SASL_PLAINTEXT://127.0.0.1:{ports[2]}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{ports[0]},SASL_PLAINTEXT://127.0.0.1:{ports[2]}",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
                "sasl.enabled.mechanisms": "PLAIN",
                "listener.name.sasl_plaintext.plain.sasl.jaas.config": diff_acls.JAAS,
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users": "User:ANONYMOUS;User:admin",
            },
        )
    finally:
        apache_kafka.free_port = original
    try:
        answers["authorization"] = authorization(lambda user: sasl_login(f"127.0.0.1:{ports[2]}", user))
    finally:
        secure.stop()
    answers["_meta"] = {"kafka": kafka.version}
    return save_golden(out, answers)


def sasl_login(bootstrap: str, user: str) -> RawClient:
    """A SASL PLAIN login as one of interop.diff_acls' users."""
    from interop import diff_acls
    from kafkapy.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
    from kafkapy.protocol.messages.sasl_handshake_request import SaslHandshakeRequest

    c = RawClient(bootstrap, timeout=30.0)
    if c.request(SaslHandshakeRequest(mechanism="PLAIN"), 1).error_code:
        raise RuntimeError("SaslHandshake failed")
    auth = c.request(SaslAuthenticateRequest(auth_bytes=f"\0{user}\0{diff_acls.USERS[user]}".encode()), 2)
    if auth.error_code:
        raise RuntimeError(f"SaslAuthenticate failed: {auth.error_code} {auth.error_message}")
    return c


def load() -> dict[str, Any]:
    return load_golden(GOLDEN, meta=False)


def main(argv: list[str]) -> int:
    if argv[1:] == ["record"]:
        print(record())
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
