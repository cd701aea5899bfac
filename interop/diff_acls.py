"""The ACL matrix: what each API answers a principal with and without each permission.

One scenario, run against Apache Kafka 4.3.1 (StandardAuthorizer, PLAIN users on a SASL_SSL
listener with a PEM keystore, User:ANONYMOUS and User:admin super users) and against kafkapy; the
answers are reduced to their error codes, names and authorized-operations fields (`summary`) and
compared step by step.

The scenario is a list of phases: the ACLs granted to User:alice (added by the admin before the
phase), then the requests alice sends. Kafka's answers are recorded in
interop/golden_kafka/acl_matrix.json:

    python -m interop.diff_acls record                    # against Apache Kafka over SASL_SSL, write the file
    python -m interop.diff_acls record SASL_PLAINTEXT OUT # the same over SASL_PLAINTEXT, written to OUT

interop/test_acls_matrix.py runs the scenario against a kafkapy broker over SASL_SSL and compares.
"""

from __future__ import annotations

import json
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interop import differential as d
from interop._common import load_golden, save_golden
from kafkapy.protocol.messages.add_offsets_to_txn_request import AddOffsetsToTxnRequest
from kafkapy.protocol.messages.alter_partition_reassignments_request import AlterPartitionReassignmentsRequest
from kafkapy.protocol.messages.alter_user_scram_credentials_request import (
    AlterUserScramCredentialsRequest,
    ScramCredentialDeletion,
    ScramCredentialUpsertion,
)
from kafkapy.protocol.messages.create_acls_request import AclCreation, CreateAclsRequest
from kafkapy.protocol.messages.delete_acls_request import DeleteAclsFilter, DeleteAclsRequest
from kafkapy.protocol.messages.delete_groups_request import DeleteGroupsRequest
from kafkapy.protocol.messages.describe_acls_request import DescribeAclsRequest
from kafkapy.protocol.messages.describe_client_quotas_request import DescribeClientQuotasRequest
from kafkapy.protocol.messages.describe_cluster_request import DescribeClusterRequest
from kafkapy.protocol.messages.describe_groups_request import DescribeGroupsRequest
from kafkapy.protocol.messages.describe_log_dirs_request import DescribeLogDirsRequest
from kafkapy.protocol.messages.describe_producers_request import DescribeProducersRequest
from kafkapy.protocol.messages.describe_producers_request import TopicRequest as DpTopic
from kafkapy.protocol.messages.describe_transactions_request import DescribeTransactionsRequest
from kafkapy.protocol.messages.describe_user_scram_credentials_request import (
    DescribeUserScramCredentialsRequest,
    UserName,
)
from kafkapy.protocol.messages.elect_leaders_request import ElectLeadersRequest
from kafkapy.protocol.messages.elect_leaders_request import TopicPartitions as ElectTopicPartitions
from kafkapy.protocol.messages.end_txn_request import EndTxnRequest
from kafkapy.protocol.messages.list_client_metrics_resources_request import ListClientMetricsResourcesRequest
from kafkapy.protocol.messages.list_groups_request import ListGroupsRequest
from kafkapy.protocol.messages.list_partition_reassignments_request import ListPartitionReassignmentsRequest
from kafkapy.protocol.messages.list_transactions_request import ListTransactionsRequest
from kafkapy.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkapy.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from kafkapy.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from kafkapy.protocol.primitives import Message

GOLDEN = Path(__file__).resolve().parent / "golden_kafka" / "acl_matrix.json"
KNOWN = d.KNOWN  # "diff-known": the builders of interop.differential use it
MISSING = "diff-missing"
GROUP = "acl-group"
TXN = "acl-txn"
USERS = {"admin": "admin-secret", "alice": "alice-secret"}
JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    + " ".join(f'user_{u}="{p}"' for u, p in USERS.items())
    + ";"
)
# wire codes
TOPIC, GROUP_R, CLUSTER, TXN_ID = 2, 3, 4, 5
LITERAL, PREFIXED = 3, 4
ALLOW, DENY = 3, 2
READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE = 3, 4, 5, 6, 7, 8
CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE = 9, 10, 11, 12

Acl = tuple[int, str, int, int, int]  # resource type, name, pattern type, operation, permission (alice, any host)


@dataclass(slots=True)
class Call:
    name: str
    build: Callable[[], Message]
    version: int


@dataclass(slots=True)
class Phase:
    grants: list[Acl]
    calls: list[Call] = field(default_factory=list)


def acl_creation(rt: int, name: str, pt: int, op: int, perm: int, principal: str = "User:alice") -> AclCreation:
    return AclCreation(
        resource_type=rt,
        resource_name=name,
        resource_pattern_type=pt,
        principal=principal,
        host="*",
        operation=op,
        permission_type=perm,
    )


def describe_acls(rt: int = 1, name: str | None = None, pt: int = 1) -> DescribeAclsRequest:
    return DescribeAclsRequest(
        resource_type_filter=rt,
        resource_name_filter=name,
        pattern_type_filter=pt,
        principal_filter=None,
        host_filter=None,
        operation=1,
        permission_type=1,
    )


def delete_filter(rt: int = 1, name: str | None = None, pt: int = 1, principal: str | None = None) -> DeleteAclsFilter:
    return DeleteAclsFilter(
        resource_type_filter=rt,
        resource_name_filter=name,
        pattern_type_filter=pt,
        principal_filter=principal,
        host_filter=None,
        operation=1,
        permission_type=1,
    )


def meta(*names: str, auto: bool = False, ops: bool = False) -> MetadataRequest:
    return MetadataRequest(
        topics=[MetadataRequestTopic(name=n) for n in names],
        allow_auto_topic_creation=auto,
        include_topic_authorized_operations=ops,
    )


def meta_all(ops: bool = False) -> MetadataRequest:
    return MetadataRequest(topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=ops)


def _every_api(tag: str) -> list[Call]:
    """The requests alice sends in each phase (names get the phase tag)."""
    calls = [
        Call("metadata_known_missing", lambda: meta(KNOWN, MISSING, ops=True), 12),
        Call("metadata_auto_create", lambda: meta("acl-auto", auto=True), 12),
        Call("metadata_all", lambda: meta_all(ops=True), 12),
        Call("produce", lambda: d.produce(KNOWN, 0, d._batch(1)), 9),
        Call("produce_missing", lambda: d.produce(MISSING, 0, d._batch(1)), 9),
        Call("fetch", lambda: d.fetch(KNOWN, 0, 0), 12),
        Call("list_offsets", lambda: d.list_offsets(KNOWN, [0], -1), 7),
        Call("find_coordinator_group", lambda: d.find_coordinator(GROUP, 0, 4), 4),
        Call("find_coordinator_txn", lambda: d.find_coordinator(TXN, 1, 4), 4),
        Call("join_group", lambda: d.join(GROUP, "m-static"), 5),
        Call("heartbeat", lambda: d.heartbeat(GROUP, 1, "m-x"), 4),
        Call("offset_commit", lambda: d.commit(GROUP, -1, ""), 8),
        Call("offset_fetch_v7", lambda: d.offset_fetch(GROUP, 7), 7),
        Call("offset_fetch_v8", lambda: d.offset_fetch(GROUP, 8), 8),
        Call("describe_groups", lambda: DescribeGroupsRequest(groups=[GROUP], include_authorized_operations=True), 5),
        Call("list_groups", lambda: ListGroupsRequest(), 4),
        Call("create_topics", lambda: d.create(d.topic(f"acl-new-{tag}", 1)), 7),
        Call("create_partitions", lambda: d.create_partitions(KNOWN, 1), 3),
        Call("describe_configs_topic", lambda: d.describe_configs(2, KNOWN, ["cleanup.policy"]), 4),
        Call("describe_configs_broker", lambda: d.describe_configs(4, "1", ["num.partitions"]), 4),
        Call("alter_configs_topic", lambda: d.alter_configs(KNOWN, True, retention_ms="100000"), 2),
        Call(
            "incremental_alter_topic",
            lambda: d.incremental(KNOWN, ("retention.ms", 0, "100000"), validate_only=True),
            1,
        ),
        Call("init_producer_id_txn", lambda: d.init_pid(TXN), 4),
        Call("init_producer_id_idempotent", lambda: d.init_pid(None), 4),
        Call(
            "add_offsets_to_txn",
            lambda: AddOffsetsToTxnRequest(transactional_id=TXN, producer_id=0, producer_epoch=0, group_id=GROUP),
            3,
        ),
        Call(
            "end_txn",
            lambda: EndTxnRequest(transactional_id=TXN, producer_id=0, producer_epoch=0, committed=False),
            3,
        ),
        Call("delete_records", lambda: d.delete_records(KNOWN, 0, 0), 2),
        Call("describe_cluster", lambda: DescribeClusterRequest(include_cluster_authorized_operations=True), 1),
        Call("describe_log_dirs", lambda: DescribeLogDirsRequest(topics=None), 4),
        Call(
            "elect_leaders",
            lambda: ElectLeadersRequest(
                election_type=0,
                topic_partitions=[ElectTopicPartitions(topic=KNOWN, partitions=[0])],
                timeout_ms=5000,
            ),
            2,
        ),
        Call(
            "describe_producers",
            lambda: DescribeProducersRequest(topics=[DpTopic(name=KNOWN, partition_indexes=[0])]),
            0,
        ),
        Call("describe_transactions", lambda: DescribeTransactionsRequest(transactional_ids=[TXN]), 0),
        Call("list_transactions", lambda: ListTransactionsRequest(state_filters=[], producer_id_filters=[]), 0),
        Call("describe_acls", lambda: describe_acls(), 3),
        Call("create_acls", lambda: CreateAclsRequest(creations=[acl_creation(TOPIC, "x", LITERAL, READ, ALLOW)]), 3),
        Call(
            "describe_user_scram_credentials",
            lambda: DescribeUserScramCredentialsRequest(users=[UserName(name="acl-u1"), UserName(name="acl-u2")]),
            0,
        ),
        Call(
            "alter_user_scram_credentials",
            lambda: AlterUserScramCredentialsRequest(
                deletions=[ScramCredentialDeletion(name="acl-u2", mechanism=1)],
                upsertions=[
                    ScramCredentialUpsertion(
                        name="acl-u1", mechanism=1, iterations=4096, salt=b"s" * 16, salted_password=b"p" * 32
                    )
                ],
            ),
            0,
        ),
        Call("describe_client_quotas", lambda: DescribeClientQuotasRequest(components=[], strict=False), 1),
        Call("list_client_metrics_resources", lambda: ListClientMetricsResourcesRequest(), 0),
        Call(
            "list_partition_reassignments", lambda: ListPartitionReassignmentsRequest(timeout_ms=5000, topics=None), 0
        ),
        Call(
            "alter_partition_reassignments",
            lambda: AlterPartitionReassignmentsRequest(timeout_ms=5000, topics=[]),
            0,
        ),
        Call("delete_groups", lambda: DeleteGroupsRequest(groups_names=[GROUP]), 2),
        Call("delete_topics", lambda: d.delete_topics(f"acl-new-{tag}", 6), 6),
    ]
    for c in calls:
        c.name = f"{tag}.{c.name}"
    return calls


PHASES: list[tuple[str, list[Acl]]] = [
    ("none", []),
    ("describe_topic", [(TOPIC, KNOWN, LITERAL, DESCRIBE, ALLOW)]),
    (
        "user",  # what a producer-consumer application gets: write/read its topic, read its group, its txn id
        [
            (TOPIC, "diff-", PREFIXED, WRITE, ALLOW),
            (TOPIC, KNOWN, LITERAL, READ, ALLOW),
            (GROUP_R, "acl-", PREFIXED, READ, ALLOW),
            (TXN_ID, TXN, LITERAL, WRITE, ALLOW),
            (TOPIC, "acl-auto", LITERAL, CREATE, ALLOW),
        ],
    ),
    (
        "admin_ops",  # topic lifecycle and configs, cluster describe
        [
            (TOPIC, "acl-new-", PREFIXED, CREATE, ALLOW),
            (TOPIC, "acl-new-", PREFIXED, DELETE, ALLOW),
            (TOPIC, KNOWN, LITERAL, ALTER, ALLOW),
            (TOPIC, KNOWN, LITERAL, ALTER_CONFIGS, ALLOW),
            (TOPIC, KNOWN, LITERAL, DELETE, ALLOW),
            (GROUP_R, GROUP, LITERAL, DELETE, ALLOW),
            (CLUSTER, "kafka-cluster", LITERAL, DESCRIBE, ALLOW),
            (CLUSTER, "kafka-cluster", LITERAL, DESCRIBE_CONFIGS, ALLOW),
        ],
    ),
    (
        "deny_wins",  # DENY on everything of the topic and the group beats the ALLOWs above
        [
            (TOPIC, KNOWN, LITERAL, 2, DENY),
            (GROUP_R, "*", LITERAL, 2, DENY),
        ],
    ),
]


def scenario() -> list[Phase]:
    return [Phase(grants, _every_api(tag)) for tag, grants in PHASES]


ADMIN_CALLS: list[Call] = [
    Call("setup.create_known", lambda: d.create(d.topic(KNOWN, 2)), 7),
    # ACL API validation (as the admin, a super user)
    *[
        Call(f"acls.create_invalid_{label}", (lambda c=c: CreateAclsRequest(creations=[c])), 3)
        for label, c in (
            ("cluster_name", acl_creation(CLUSTER, "other", LITERAL, ALTER, ALLOW)),
            ("empty_name", acl_creation(TOPIC, "", LITERAL, READ, ALLOW)),
            ("pattern_any", acl_creation(TOPIC, "t", 1, READ, ALLOW)),
            ("pattern_match", acl_creation(TOPIC, "t", 2, READ, ALLOW)),
            ("pattern_unknown", acl_creation(TOPIC, "t", 0, READ, ALLOW)),
            ("resource_any", acl_creation(1, "t", LITERAL, READ, ALLOW)),
            ("resource_unknown", acl_creation(0, "t", LITERAL, READ, ALLOW)),
            ("operation_any", acl_creation(TOPIC, "t", LITERAL, 1, ALLOW)),
            ("permission_any", acl_creation(TOPIC, "t", LITERAL, READ, 1)),
            ("principal_no_colon", acl_creation(TOPIC, "t", LITERAL, READ, ALLOW, principal="alice")),
        )
    ],
    Call(
        "acls.create_valid",
        lambda: CreateAclsRequest(
            creations=[
                acl_creation(TOPIC, "t", LITERAL, READ, ALLOW, principal="User:*"),
                acl_creation(TOPIC, "t", PREFIXED, WRITE, DENY, principal="User:bob"),
                acl_creation(TOPIC, "*", LITERAL, DESCRIBE, ALLOW, principal="User:bob"),
                acl_creation(GROUP_R, "g", LITERAL, READ, ALLOW, principal="User:bob"),
            ]
        ),
        3,
    ),
    Call(
        "acls.create_mixed",
        lambda: CreateAclsRequest(
            creations=[
                acl_creation(TOPIC, "u", LITERAL, READ, ALLOW, principal="User:bob"),
                acl_creation(CLUSTER, "other", LITERAL, ALTER, ALLOW),
            ]
        ),
        3,
    ),
    Call("acls.describe_unknown_filter", lambda: describe_acls(0, None, 1), 3),
    Call("acls.describe_topic_any", lambda: describe_acls(TOPIC, None, 1), 3),
    Call("acls.delete_unknown_filter", lambda: DeleteAclsRequest(filters=[delete_filter(0)]), 3),
    Call("acls.describe_all", lambda: describe_acls(), 3),
    Call("acls.describe_match", lambda: describe_acls(TOPIC, "t", 2), 3),
    Call("acls.describe_literal_t", lambda: describe_acls(TOPIC, "t", LITERAL), 3),
    Call(
        "acls.delete_t",
        lambda: DeleteAclsRequest(
            filters=[delete_filter(TOPIC, "t", 2), delete_filter(GROUP_R, None, 1, "User:nobody")]
        ),
        3,
    ),
    Call("acls.delete_rest", lambda: DeleteAclsRequest(filters=[delete_filter()]), 3),
    Call("acls.describe_after_delete", lambda: describe_acls(), 3),
]


# ---------------------------------------------------------------- answers


KEEP = ("error_code", "authorized_operations")
NAMES = {
    "name",
    "topic",
    "group_id",
    "partition_index",
    "index",
    "partition",
    "transactional_id",
    "resource_name",
    "resource_type",
    "principal",
    "operation",
    "permission_type",
    "pattern_type",
    "key",
}


def summary(value: Any) -> Any:
    """Error codes, names and authorized operations of an answer (as plain data); lists sorted."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k.endswith(KEEP) or (k in NAMES and not isinstance(v, dict | list)):
                out[k] = v
            elif isinstance(v, list) and not any(isinstance(i, dict) for i in v):
                continue  # node lists, partition indexes: not about authorization
            elif isinstance(v, dict | list):
                s = summary(v)
                if s not in ({}, []):
                    out[k] = s
        if isinstance(out.get("name"), str) and out["name"].startswith("__"):
            return {}  # internal topics: one broker has them, the other not yet
        return out
    if isinstance(value, list):
        items = [summary(v) for v in value]
        items = [i for i in items if i not in ({}, [])]
        return sorted(items, key=lambda i: json.dumps(i, sort_keys=True))
    return value


def answer(resp: Message, messages: bool = False) -> Any:
    data = d.to_data(resp)
    out = summary(data)
    if messages:
        out["messages"] = sorted({m for m in _messages(data) if m})
    return out


def _messages(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [m for k, v in value.items() for m in ([v] if k == "error_message" else _messages(v))]
    if isinstance(value, list):
        return [m for v in value for m in _messages(v)]
    return []


# ---------------------------------------------------------------- running against a broker over the network


def connect(bootstrap: str, tls: ssl.SSLContext | None = None) -> d.Conn:
    """A connection, over TLS when `tls` is given (the broker's name checked against its certificate)."""
    conn = d.Conn(bootstrap)
    if tls is not None:
        conn.sock = tls.wrap_socket(conn.sock, server_hostname=bootstrap.rsplit(":", 1)[0])
    return conn


def tls_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def login(bootstrap: str, user: str, tls: ssl.SSLContext | None = None) -> d.Conn:
    """A SASL PLAIN login (SASL_SSL when `tls` is given, else SASL_PLAINTEXT)."""
    conn = connect(bootstrap, tls)
    hs = conn.call(SaslHandshakeRequest(mechanism="PLAIN"), 1)
    if hs.error_code:
        raise RuntimeError(f"SaslHandshake failed: {hs.error_code}")
    auth = conn.call(SaslAuthenticateRequest(auth_bytes=f"\0{user}\0{USERS[user]}".encode()), 2)
    if auth.error_code:
        raise RuntimeError(f"SaslAuthenticate failed: {auth.error_code} {auth.error_message}")
    return conn


def run(reconnect: Callable[[], d.Conn], alice: Callable[[], d.Conn], settle: float = 0.5) -> dict[str, Any]:
    """Every step's summarised answer, by name. `reconnect` opens a connection that may do anything,
    `alice` one of User:alice."""
    answers: dict[str, Any] = {}
    admin = reconnect()
    for c in ADMIN_CALLS:
        try:
            answers[c.name] = answer(admin.call(c.build(), c.version), messages=c.name.startswith("acls."))
        except (ConnectionError, OSError):
            answers[c.name] = {"closed": True}
            admin.close()
            admin = reconnect()
        time.sleep(0.05)
    for phase in scenario():
        if phase.grants:
            created = admin.call(
                CreateAclsRequest(creations=[acl_creation(*g) for g in phase.grants]),
                3,
            )
            assert all(r.error_code == 0 for r in created.results), d.to_data(created)
            time.sleep(settle)  # Kafka applies ACLs through its metadata log
        conn = alice()
        try:
            for c in phase.calls:
                for attempt in range(40):  # the settled answer, not a coordinator still loading
                    try:
                        answers[c.name] = answer(conn.call(c.build(), c.version))
                    except (ConnectionError, OSError):
                        answers[c.name] = {"closed": True}
                        conn.close()
                        conn = alice()
                        break
                    if not _codes(answers[c.name]) & LOADING or attempt == 39:
                        break
                    time.sleep(0.25)
                time.sleep(0.02)
        finally:
            conn.close()
    admin.close()
    return answers


def record(protocol: str = "SASL_SSL", out: Path = GOLDEN) -> Path:
    """Run the scenario against Apache Kafka 4.3.1 with the StandardAuthorizer (the admin and alice
    logging in with PLAIN on a `protocol` listener) and save its answers."""
    from interop import apache_kafka
    from interop.certs import broker_pem_settings, make_pki

    workdir = Path(tempfile.mkdtemp(prefix="acl-matrix-"))
    tls: ssl.SSLContext | None = None
    security: dict[str, str] = {}
    if protocol == "SASL_SSL":
        pki = make_pki(workdir / "pki", clients=())
        tls = tls_context(pki.ca)
        security = broker_pem_settings(pki, java=True)  # a PEM keystore Kafka can read
    elif protocol != "SASL_PLAINTEXT":
        raise ValueError(f"protocol {protocol}: SASL_SSL or SASL_PLAINTEXT")
    ports = [apache_kafka.free_port() for _ in range(3)]
    picks = iter(ports[:2])
    sasl_port = ports[2]
    original = apache_kafka.free_port
    apache_kafka.free_port = lambda host="127.0.0.1": next(picks)  # type: ignore[assignment]
    try:
        kafka = apache_kafka.start_kafka(
            workdir,
            {
                "listeners": f"PLAINTEXT://127.0.0.1:{ports[0]},CONTROLLER://127.0.0.1:{ports[1]},"
                f"{protocol}://127.0.0.1:{sasl_port}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{ports[0]},{protocol}://127.0.0.1:{sasl_port}",
                "listener.security.protocol.map": f"PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,{protocol}:{protocol}",
                "sasl.enabled.mechanisms": "PLAIN",
                f"listener.name.{protocol.lower()}.plain.sasl.jaas.config": JAAS,
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                # the controller and inter-broker listeners are PLAINTEXT: their ANONYMOUS is a super user
                "super.users": "User:ANONYMOUS;User:admin",
                **security,
            },
        )
    finally:
        apache_kafka.free_port = original
    bootstrap = f"127.0.0.1:{sasl_port}"
    try:
        answers = run(lambda: login(bootstrap, "admin", tls), lambda: login(bootstrap, "alice", tls))
    finally:
        kafka.stop()
    answers["_meta"] = {"kafka": kafka.version, "listener": protocol}
    return save_golden(out, answers)


def load() -> dict[str, Any]:
    return load_golden(GOLDEN)


LOADING = {14, 15, 16}  # COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR
# the authorization answers; any other code means "passed the checks" (and then depends on state)
AUTH_CODES = {29, 30, 31, 53}


def _codes(value: Any) -> set[int]:
    if isinstance(value, dict):
        return {c for k, v in value.items() for c in ([v] if k.endswith("error_code") else _codes(v))}
    if isinstance(value, list):
        return {c for v in value for c in _codes(v)}
    return set()


def auth_view(value: Any) -> Any:
    """An answer as the matrix compares it: authorization codes kept, any other code "passed"."""
    if isinstance(value, dict):
        return {
            k: (v if v in AUTH_CODES else "passed") if k.endswith("error_code") and isinstance(v, int) else auth_view(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [auth_view(v) for v in value]
    return value


def compare(kafka: dict[str, Any], ours: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Steps whose answers differ (setup steps excluded; ACL API steps exactly, the matrix in `auth_view`)."""
    out: dict[str, tuple[Any, Any]] = {}
    for k in sorted(set(kafka) | set(ours)):
        if k == "_meta" or k.startswith("setup."):
            continue
        a, b = kafka.get(k), ours.get(k)
        if not k.startswith("acls."):
            a, b = auth_view(a), auth_view(b)
        b = _without_newer_fields(a, b)
        if a != b:
            out[k] = (a, b)
    return out


# what a field the request's version does not carry decodes to ("passed": an error code of 0)
_DEFAULTS: tuple[Any, ...] = ("passed", None, -1, "", 0, False, [])


def _without_newer_fields(kafka: Any, ours: Any) -> Any:
    """`ours` without the keys the golden lacks whose value is a default: fields the codec learnt after
    the golden was recorded (Metadata v13's top-level error code decodes as 0 at v12 too)."""
    if isinstance(kafka, dict) and isinstance(ours, dict):
        return {k: _without_newer_fields(kafka.get(k), v) for k, v in ours.items() if k in kafka or v not in _DEFAULTS}
    if isinstance(kafka, list) and isinstance(ours, list) and len(kafka) == len(ours):
        return [_without_newer_fields(a, b) for a, b in zip(kafka, ours)]
    return ours


def main(argv: list[str]) -> int:
    if argv[:1] == ["record"]:
        protocol = argv[1] if len(argv) > 1 else "SASL_SSL"
        print(record(protocol, Path(argv[2]) if len(argv) > 2 else GOLDEN))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
