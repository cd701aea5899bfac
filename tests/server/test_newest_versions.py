"""APIs at Kafka 4.3.1's newest versions (issue 18), against a kafkapy broker process.

`test_answers_as_kafka` runs interop/diff_newest.py's raw-request sections and compares them with what
Apache Kafka 4.3.1 answered (interop/golden_kafka/newest_versions.json, `python -m interop.diff_newest
record`), `test_answers_as_kafka_44` the versions new in Kafka 4.4.0 against its answers
(newest_versions_4.4.0.json); the other tests check the new fields' meaning beyond the golden answers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interop import diff_newest as dn
from interop._common import BrokerProcess, start_broker
from interop.apache_kafka import REFERENCE_44
from kafkapy.cluster.metadata import PartitionInfo, TopicInfo
from kafkapy.protocol.api import ApiKey
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from tests.server.rawclient import RawClient

# The sections kafkapy serves at the version the golden file recorded, and that version.
SERVED = {
    "find_coordinator": (ApiKey.FIND_COORDINATOR, 6),
    "describe_groups": (ApiKey.DESCRIBE_GROUPS, 6),
    "describe_cluster": (ApiKey.DESCRIBE_CLUSTER, 2),
    "list_transactions": (ApiKey.LIST_TRANSACTIONS, 2),
    "consumer_group_describe": (ApiKey.CONSUMER_GROUP_DESCRIBE, 1),
    "alter_partition_reassignments": (ApiKey.ALTER_PARTITION_REASSIGNMENTS, 1),
    "describe_log_dirs": (ApiKey.DESCRIBE_LOG_DIRS, 5),
    "write_txn_markers": (ApiKey.WRITE_TXN_MARKERS, 2),
    "metadata_v13": (ApiKey.METADATA, 13),
    "fetch_v18": (ApiKey.FETCH, 18),
    "list_offsets_v11": (ApiKey.LIST_OFFSETS, 11),
    "offset_commit_fetch_v10": (ApiKey.OFFSET_COMMIT, 10),
    "list_config_resources_v1": (ApiKey.LIST_CLIENT_METRICS_RESOURCES, 1),
}
# Recorded from Kafka 4.4.0 (interop/golden_kafka/newest_versions_4.4.0.json): versions new in it.
SERVED_44 = {
    "delete_groups_v3": (ApiKey.DELETE_GROUPS, 3),
    "api_versions_v5": (ApiKey.API_VERSIONS, 5),
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    b = start_broker(Path(tmp_path_factory.mktemp("newest")) / "data")
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="module")
def answers(broker: BrokerProcess) -> dict[str, object]:
    return dn.run(broker.bootstrap, sections=list(SERVED) + list(SERVED_44))


def test_api_versions_advertise_the_newest_versions(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as c:
        resp = c.request(ApiVersionsRequest(client_software_name="t", client_software_version="1"), 3)
    ranges = {k.api_key: k.max_version for k in resp.api_keys}
    for api, version in [*SERVED.values(), *SERVED_44.values()]:
        assert ranges[api] == version
    assert ranges[ApiKey.OFFSET_FETCH] == 10


@pytest.mark.parametrize("section", list(SERVED))
def test_answers_as_kafka(answers: dict[str, object], section: str) -> None:
    golden = dn.load()[section]
    assert answers[section] == golden, json.dumps({"kafkapy": answers[section], "kafka": golden}, indent=1)


@pytest.mark.parametrize("section", list(SERVED_44))
def test_answers_as_kafka_44(answers: dict[str, object], section: str) -> None:
    golden = dn.load(REFERENCE_44)[section]
    assert answers[section] == golden, json.dumps({"kafkapy": answers[section], "kafka": golden}, indent=1)


class _View:
    """The two ClusterView reads `_factor_change` makes: partition 0 of "t" on brokers 1 and 2,
    broker 3 being added by a reassignment in flight."""

    def topic(self, name: str) -> TopicInfo | None:
        if name != "t":
            return None
        part = PartitionInfo(index=0, leader=1, replicas=[1, 2, 3], isr=[1, 2], adding_replicas=[3])
        return TopicInfo(name="t", topic_id=uuid.uuid4(), partitions=[part])

    def live_ids(self) -> set[int]:
        return {1, 2, 3, 4}


def test_reassignment_refuses_a_replication_factor_change() -> None:
    from kafkapy.server.handlers.reassignments import _factor_change

    view: Any = _View()
    assert _factor_change(view, "t", 0, [3, 4]) is None  # the factor is 2 (3 is only being added)
    refused = _factor_change(view, "t", 0, [1, 2, 4])
    assert refused is not None
    assert (refused.code, refused.message) == (
        ErrorCode.INVALID_REPLICATION_FACTOR,
        "The replication factor is changed from 2 to 3",
    )
    assert _factor_change(view, "t", 0, [4]) is not None
    # left to the reassignment's own checks: cancel, unknown topic or partition, an invalid target
    assert _factor_change(view, "t", 0, None) is None
    assert _factor_change(view, "nope", 0, [1]) is None
    assert _factor_change(view, "t", 5, [1]) is None
    assert _factor_change(view, "t", 0, [1, 9]) is None
    assert _factor_change(view, "t", 0, [1, 1, 2]) is None


class _Log:
    high_watermark, log_start_offset = 10, 0


class _Replicas:
    def partition_log(self, topic: str, partition: int) -> _Log:
        return _Log()

    def on_follower_fetch(self, *args: object) -> int:
        return ErrorCode.NONE


class _State:
    """What `_follower_fetch` reads: topic "t" (id 1) led here with high watermark 10."""

    class metadata:
        @staticmethod
        def topic_by_id(topic_id: uuid.UUID) -> TopicInfo | None:
            return TopicInfo(name="t", topic_id=topic_id, partitions=[]) if topic_id.int == 1 else None

    replicas = _Replicas()


@pytest.mark.parametrize(
    ("version", "sent", "seen"),
    [(17, None, 10), (18, None, 10), (18, 2**63 - 1, 10), (18, -1, 10), (18, 7, 7), (18, 10, 10)],
)
def test_fetch_v18_follower_high_watermark(version: int, sent: int | None, seen: int) -> None:
    """KIP-1166: from v18 the leader compares its high watermark with the one the follower sent (when
    it sent one, -1 meaning unknown): a follower behind returns at once (the long poll ends when the
    high watermark differs from this "before" value)."""
    from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
    from kafkapy.server.handlers.fetch import Wanted, _follower_fetch

    part = FetchPartition(partition=0, fetch_offset=10)
    if sent is not None:
        part.high_watermark = sent
    req = FetchRequest(topics=[FetchTopic(topic_id=uuid.UUID(int=1), partitions=[part])])
    wanted = [Wanted("t", uuid.UUID(int=1), 0, 10, 1 << 20)]
    state: Any = _State()
    assert _follower_fetch(state, req, version, wanted, 2) == [(seen, 0)]
