"""KRaft membership APIs on a broker listener with a static quorum (kraft.version 0): AddRaftVoter (80),
RemoveRaftVoter (81), UnregisterBroker (64) and UnregisterController (94, Kafka 4.4.0), raw requests
recorded against Apache Kafka 4.3.1 and 4.4.0 (interop/golden_kafka/raft.json, one section per release)
and compared with kafkapy by tests/server/test_raft.py.

The one-node reference broker (interop/apache_kafka.py) is formatted with controller.quorum.voters, a
static quorum, as kafkapy's quorum is (kafkapy/cluster/features.py: kraft.version 0). Its node id is 1;
the cluster id is normalised to "ours" when it is the broker's own. Error messages are kept.

    python -m interop.diff_raft record   # against Apache Kafka 4.3.1 and 4.4.0 (golden file)
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interop._common import load_golden, save_golden
from kafkapy.protocol.messages.add_raft_voter_request import AddRaftVoterRequest, Listener
from kafkapy.protocol.messages.metadata_request import MetadataRequest
from kafkapy.protocol.messages.remove_raft_voter_request import RemoveRaftVoterRequest
from kafkapy.protocol.messages.unregister_broker_request import UnregisterBrokerRequest
from kafkapy.protocol.messages.unregister_controller_request import UnregisterControllerRequest
from tests.server.rawclient import RawClient

GOLDEN = Path(__file__).resolve().parent / "golden_kafka" / "raft.json"
DIRECTORY = uuid.UUID("6f2c1d0e-8a4b-4c3d-9e7f-0a1b2c3d4e5f")


def _answer(resp: Any, cid: str = "") -> list[Any]:
    """(error code, message), the broker's own cluster id in the message as "<cluster id>"."""
    message = resp.error_message
    if cid and message:
        message = message.replace(cid, "<cluster id>")
    return [resp.error_code, message]


def cluster_id(c: RawClient) -> str:
    cid: str = c.request(MetadataRequest(topics=[]), 12).cluster_id
    return cid


def add_voter(
    c: RawClient,
    version: int,
    cid: str | None,
    voter: int,
    ack: bool = True,
    directory: uuid.UUID = DIRECTORY,
    listeners: bool = True,
    listener: str = "CONTROLLER",
) -> list[Any]:
    req = AddRaftVoterRequest(
        cluster_id=cid,
        timeout_ms=5000,
        voter_id=voter,
        voter_directory_id=directory,
        listeners=[Listener(name=listener, host="127.0.0.1", port=9999)] if listeners else [],
    )
    if version >= 1:
        req.ack_when_committed = ack
    return _answer(c.request(req, version), cluster_id(c))


def remove_voter(c: RawClient, cid: str | None, voter: int, directory: uuid.UUID) -> list[Any]:
    req = RemoveRaftVoterRequest(cluster_id=cid, voter_id=voter, voter_directory_id=directory)
    return _answer(c.request(req, 0), cluster_id(c))


def run(bootstrap: str, with_controller: bool, wait: float = 6.0) -> dict[str, Any]:
    """Every step on one connection; `wait` (0: leave out that step) before looking at the brokers again."""
    out: dict[str, Any] = {}
    with RawClient(bootstrap, timeout=30.0) as c:
        ours = cluster_id(c)
        for version in (0, 1):
            out[f"add.v{version}.new_voter"] = add_voter(c, version, ours, 2)
            out[f"add.v{version}.existing_voter"] = add_voter(c, version, ours, 1)
            out[f"add.v{version}.null_cluster"] = add_voter(c, version, None, 2)
            out[f"add.v{version}.wrong_cluster"] = add_voter(c, version, "no-such-cluster", 2)
        out["add.v1.no_ack"] = add_voter(c, 1, ours, 2, ack=False)
        out["add.v1.zero_directory"] = add_voter(c, 1, ours, 2, directory=uuid.UUID(int=0))
        out["add.v1.no_listeners"] = add_voter(c, 1, ours, 2, listeners=False)
        out["add.v1.other_listener"] = add_voter(c, 1, ours, 2, listener="PLAINTEXT")
        out["add.v1.negative_voter"] = add_voter(c, 1, ours, -1)
        out["add.v1.wrong_cluster_zero_directory"] = add_voter(c, 1, "x", 2, directory=uuid.UUID(int=0))
        out["remove.negative_voter"] = remove_voter(c, ours, -1, DIRECTORY)
        out["remove.wrong_cluster_zero_directory_negative"] = remove_voter(c, "x", -1, uuid.UUID(int=0))
        out["remove.voter_zero_directory"] = remove_voter(c, ours, 1, uuid.UUID(int=0))
        out["remove.voter_other_directory"] = remove_voter(c, ours, 1, DIRECTORY)
        out["remove.unknown"] = remove_voter(c, ours, 7, DIRECTORY)
        out["remove.null_cluster"] = remove_voter(c, None, 7, DIRECTORY)
        out["remove.wrong_cluster"] = remove_voter(c, "no-such-cluster", 1, uuid.UUID(int=0))
        out["unregister_broker.unknown"] = _answer(c.request(UnregisterBrokerRequest(broker_id=7), 0))
        out["unregister_broker.negative"] = _answer(c.request(UnregisterBrokerRequest(broker_id=-1), 0))
        if with_controller:
            for name, node in (("unknown", 7), ("self", 1), ("negative", -1)):
                req = UnregisterControllerRequest(controller_id=node)
                out[f"unregister_controller.{name}"] = _answer(c.request(req, 0))
        # last: the live broker itself (Kafka may drop its registration)
        out["unregister_broker.self"] = _answer(c.request(UnregisterBrokerRequest(broker_id=1), 0))
        brokers = c.request(MetadataRequest(topics=[]), 12).brokers
        out["unregister_broker.self_brokers_after"] = sorted(b.node_id for b in brokers)
        if not wait:
            return out
        time.sleep(wait)  # a heartbeat or two later: does the broker register again?
        brokers = c.request(MetadataRequest(topics=[]), 12).brokers
        out["unregister_broker.self_brokers_6s_later"] = sorted(b.node_id for b in brokers)
    return out


def authorization(login: Callable[[str], RawClient], with_controller: bool) -> dict[str, Any]:
    """Each API as alice (no ACL) and the admin (a super user), requests that change nothing."""
    out: dict[str, Any] = {}
    for user in ("alice", "admin"):
        with login(user) as c:
            out[f"{user}.add"] = add_voter(c, 1, None, 2)
            out[f"{user}.remove"] = remove_voter(c, None, 7, DIRECTORY)
            out[f"{user}.unregister_broker"] = _answer(c.request(UnregisterBrokerRequest(broker_id=7), 0))
            if with_controller:
                req = UnregisterControllerRequest(controller_id=7)
                out[f"{user}.unregister_controller"] = _answer(c.request(req, 0))
    return out


def record_secure(
    release: str | None, run_as: Callable[[Callable[[str], RawClient]], dict[str, Any]]
) -> dict[str, Any]:
    """`run_as(login)` against Apache Kafka `release` with a SASL_PLAINTEXT listener and the
    StandardAuthorizer (as interop/diff_features.py); `login(user)` opens a connection as user."""
    import tempfile

    from interop import apache_kafka, diff_acls, diff_features

    ports = [apache_kafka.free_port() for _ in range(3)]
    picks = iter(ports[:2])
    original = apache_kafka.free_port
    apache_kafka.free_port = lambda host="127.0.0.1": next(picks)  # type: ignore[assignment]
    try:
        secure = apache_kafka.start_kafka(
            Path(tempfile.mkdtemp(prefix="kafka-auth-")),
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
            release=release,
        )
    finally:
        apache_kafka.free_port = original
    try:
        return run_as(lambda user: diff_features.sasl_login(f"127.0.0.1:{ports[2]}", user))
    finally:
        secure.stop()


def record(out: Path = GOLDEN) -> Path:
    import tempfile

    from interop import apache_kafka

    answers: dict[str, Any] = {}
    meta = {}
    for release in (None, apache_kafka.REFERENCE_44):
        kafka = apache_kafka.start_kafka(Path(tempfile.mkdtemp(prefix="kafka-raft-")), release=release)
        try:
            answers[kafka.version] = run(kafka.bootstrap, with_controller=release is not None)
        finally:
            kafka.stop()
        answers[kafka.version]["authorization"] = record_secure(
            release, lambda login, on44=release is not None: authorization(login, with_controller=on44)
        )
        meta[kafka.version] = kafka.version
    answers["_meta"] = {"kafka": sorted(meta)}
    return save_golden(out, answers)


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
