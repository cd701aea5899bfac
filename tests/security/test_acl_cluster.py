"""ACLs in a 2-broker etcd cluster: created through broker 1, enforced by broker 2 (its etcd watch);
deleted through broker 2, gone on broker 1; kept across a broker's restart. And on a single broker,
kept in acls.json across a restart.

The inter-broker listener (INSIDE, PLAINTEXT) authenticates as User:ANONYMOUS, which is therefore a
super user here, as Kafka requires of the inter-broker principal when an authorizer is on."""

from __future__ import annotations

import time
from pathlib import Path

from interop import diff_acls
from interop.diff_acls import ALLOW, DESCRIBE, LITERAL, PREFIXED, TOPIC, acl_creation, delete_filter
from kafkapy.local_cluster import LocalCluster
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.create_acls_request import CreateAclsRequest
from kafkapy.protocol.messages.delete_acls_request import DeleteAclsRequest
from kafkapy.testing import BrokerProcess, free_port
from tests.security.test_sasl_server import PLAIN_JAAS

AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:admin;User:ANONYMOUS",
}
DENIED, ALLOWED = ErrorCode.TOPIC_AUTHORIZATION_FAILED, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def sasl_settings(inside: int, sasl: int) -> dict[str, str]:
    listeners = f"INSIDE://127.0.0.1:{inside},SASL_PLAINTEXT://127.0.0.1:{sasl}"
    return {
        "listeners": listeners,
        "advertised.listeners": listeners,
        "listener.security.protocol.map": "INSIDE:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "inter.broker.listener.name": "INSIDE",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        **AUTHORIZER,
    }


def alice_code(bootstrap: str, topic: str) -> int:
    """alice's Metadata error for a topic that does not exist: ALLOWED with Describe, DENIED without."""
    conn = diff_acls.login(bootstrap, "alice")
    try:
        return int(conn.call(diff_acls.meta(topic), 12).topics[0].error_code)
    finally:
        conn.close()


def admin_call(bootstrap: str, request: CreateAclsRequest | DeleteAclsRequest) -> None:
    conn = diff_acls.login(bootstrap, "admin")
    try:
        resp = conn.call(request, 3)
    finally:
        conn.close()
    results = resp.results if isinstance(request, CreateAclsRequest) else resp.filter_results
    assert all(r.error_code == 0 for r in results), resp


def poll(bootstrap: str, topic: str, expected: int, timeout: float = 15.0) -> float:
    """Seconds until alice gets `expected` for `topic` (asserting it does before `timeout`)."""
    start = time.monotonic()
    while True:
        got = alice_code(bootstrap, topic)
        elapsed = time.monotonic() - start
        if got == expected:
            return elapsed
        assert elapsed < timeout, f"{bootstrap}: {topic} still answers {got}, not {expected}, after {elapsed:.1f}s"
        time.sleep(0.02)


def test_acls_shared_through_etcd_and_kept_across_restart(tmp_path: Path) -> None:
    c = LocalCluster(tmp_path, 0, {"broker.session.timeout.ms": "3000"}).start()
    try:
        sasl: dict[int, str] = {}
        for node in (1, 2):
            inside, port = free_port(), free_port()
            b = c.add_broker(node, start=False, settings=sasl_settings(inside, port))
            b.port = inside
            b.start()
            sasl[node] = f"127.0.0.1:{port}"
        assert alice_code(sasl[2], "orders") == DENIED

        admin_call(sasl[1], CreateAclsRequest(creations=[acl_creation(TOPIC, "orders", LITERAL, DESCRIBE, ALLOW)]))
        assert alice_code(sasl[1], "orders") == ALLOWED  # the broker that stored it applies it at once
        seen = poll(sasl[2], "orders", ALLOWED)
        print(f"literal ACL applied by broker 2 after {seen * 1000:.0f} ms")

        admin_call(sasl[2], CreateAclsRequest(creations=[acl_creation(TOPIC, "app-", PREFIXED, DESCRIBE, ALLOW)]))
        poll(sasl[1], "app-x", ALLOWED)

        c.brokers[2].restart()  # loads the ACLs from etcd
        assert alice_code(sasl[2], "orders") == ALLOWED
        assert alice_code(sasl[2], "app-y") == ALLOWED

        admin_call(sasl[2], DeleteAclsRequest(filters=[delete_filter(TOPIC, "orders", LITERAL)]))
        poll(sasl[1], "orders", DENIED)
        assert alice_code(sasl[1], "app-z") == ALLOWED  # the other ACL stays

        # a change made while broker 1 is down is there when it comes back
        c.brokers[1].stop()
        admin_call(sasl[2], DeleteAclsRequest(filters=[delete_filter(TOPIC, "app-", PREFIXED)]))
        c.brokers[1].start()
        assert alice_code(sasl[1], "app-z") == DENIED
    finally:
        c.stop()


def test_single_broker_acls_kept_in_data_dir(tmp_path: Path) -> None:
    inside, port = free_port(), free_port()
    b = BrokerProcess(tmp_path / "data", tmp_path / "broker.log", port=inside, settings=sasl_settings(inside, port))
    b.start()
    bootstrap = f"127.0.0.1:{port}"
    try:
        admin_call(bootstrap, CreateAclsRequest(creations=[acl_creation(TOPIC, "kept", LITERAL, DESCRIBE, ALLOW)]))
        assert alice_code(bootstrap, "kept") == ALLOWED
        assert (tmp_path / "data" / "acls.json").exists()
        b.restart()
        assert alice_code(bootstrap, "kept") == ALLOWED
        b.restart(kill=True)  # each change is fsynced before it is answered
        assert alice_code(bootstrap, "kept") == ALLOWED
    finally:
        b.stop()
