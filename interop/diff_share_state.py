"""The share coordinator's RPCs (KIP-932: InitializeShareGroupState 83, ReadShareGroupState 84,
WriteShareGroupState 85, DeleteShareGroupState 86, ReadShareGroupStateSummary 87) as raw requests,
recorded against Apache Kafka 4.3.1 (interop/golden_kafka/share_state.json) and compared with kafkapy
by interop/test_share_groups.py::test_share_state_rpcs_answer_as_kafka.

One PLAINTEXT connection to a single broker (the share coordinator of every key once
`__share_group_state` is made): topic t1, FindCoordinator SHARE for "g:<topic id>:0" until it is
answered, then the key's life: read and summary before any state, a write before initialize,
initialize, read, writes at leader epochs 1 and 0 (fenced) and at an older state epoch, a merged
write, reads at epochs 0 and 2, initialize at the same and a newer state epoch, delete, read after.
Topic ids and throttle times are normalised away.

    python -m interop.diff_share_state record   # against Apache Kafka 4.3.1 (golden file)
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

from interop._common import load_golden, record_golden
from interop.diff_share_groups import plain
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkapy.protocol.messages.delete_share_group_state_request import (
    DeleteShareGroupStateRequest,
    DeleteStateData,
)
from kafkapy.protocol.messages.delete_share_group_state_request import PartitionData as DeletePartition
from kafkapy.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkapy.protocol.messages.initialize_share_group_state_request import (
    InitializeShareGroupStateRequest,
    InitializeStateData,
)
from kafkapy.protocol.messages.initialize_share_group_state_request import PartitionData as InitPartition
from kafkapy.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkapy.protocol.messages.read_share_group_state_request import PartitionData as ReadPartition
from kafkapy.protocol.messages.read_share_group_state_request import ReadShareGroupStateRequest, ReadStateData
from kafkapy.protocol.messages.read_share_group_state_summary_request import PartitionData as SummaryPartition
from kafkapy.protocol.messages.read_share_group_state_summary_request import (
    ReadShareGroupStateSummaryRequest,
    ReadStateSummaryData,
)
from kafkapy.protocol.messages.write_share_group_state_request import PartitionData as WritePartition
from kafkapy.protocol.messages.write_share_group_state_request import (
    StateBatch,
    WriteShareGroupStateRequest,
    WriteStateData,
)
from kafkapy.protocol.primitives import Message
from kafkapy.protocol.uuids import uuid_text
from tests.server.rawclient import RawClient

GOLDEN = Path(__file__).resolve().parent / "golden_kafka" / "share_state.json"
TOPIC = "t1"
GROUP = "g"


def run(bootstrap: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with RawClient(bootstrap, timeout=30) as c:
        c.request(CreateTopicsRequest(topics=[CreatableTopic(name=TOPIC, num_partitions=1, replication_factor=1)]), 7)
        tid = uuid.UUID(int=0)
        for _ in range(60):
            md = c.request(MetadataRequest(topics=[MetadataRequestTopic(name=TOPIC)]), 12)
            tid = md.topics[0].topic_id
            if md.topics[0].error_code == 0:
                break
            time.sleep(0.5)
        key = f"{GROUP}:{uuid_text(tid)}:0"
        found: Any = None
        for _ in range(120):  # Kafka makes __share_group_state, then loads it
            found = c.request(FindCoordinatorRequest(key_type=2, coordinator_keys=[key]), 6)
            if not found.coordinators[0].error_code:
                probe = c.request(
                    ReadShareGroupStateSummaryRequest(
                        group_id="warm",
                        topics=[ReadStateSummaryData(topic_id=tid, partitions=[SummaryPartition(partition=0)])],
                    ),
                    0,
                )
                if probe.results[0].partitions[0].error_code not in (14, 15, 16):
                    break
            time.sleep(0.5)
        out["find_coordinator_share"] = {"error_code": found.coordinators[0].error_code}

        def step(name: str, req: Message, version: int = 0) -> None:
            out[name] = plain(c.request(req, version))

        def read(leader_epoch: int) -> ReadShareGroupStateRequest:
            part = ReadPartition(partition=0, leader_epoch=leader_epoch)
            return ReadShareGroupStateRequest(group_id=GROUP, topics=[ReadStateData(topic_id=tid, partitions=[part])])

        def summary() -> ReadShareGroupStateSummaryRequest:
            part = SummaryPartition(partition=0, leader_epoch=-1)
            return ReadShareGroupStateSummaryRequest(
                group_id=GROUP, topics=[ReadStateSummaryData(topic_id=tid, partitions=[part])]
            )

        def write(state_epoch: int, leader_epoch: int, start: int, batches: list[StateBatch]) -> Message:
            part = WritePartition(
                partition=0,
                state_epoch=state_epoch,
                leader_epoch=leader_epoch,
                start_offset=start,
                state_batches=batches,
            )
            return WriteShareGroupStateRequest(group_id=GROUP, topics=[WriteStateData(topic_id=tid, partitions=[part])])

        def initialize(state_epoch: int, start: int) -> Message:
            part = InitPartition(partition=0, state_epoch=state_epoch, start_offset=start)
            return InitializeShareGroupStateRequest(
                group_id=GROUP, topics=[InitializeStateData(topic_id=tid, partitions=[part])]
            )

        step("read_before_any_state", read(0))
        step("summary_before_any_state", summary())
        step("write_before_initialize", write(0, 0, 0, []))
        step("read_after_first_write", read(0))
        step("initialize", initialize(1, 5))
        step("read_after_initialize", read(0))
        step("write_leader_epoch_1", write(1, 1, 5, [StateBatch(5, 9, 0, 1), StateBatch(10, 10, 2, 1)]))
        step("read_leader_epoch_1", read(1))
        step("write_leader_epoch_0_fenced", write(1, 0, 5, []))
        step("write_state_epoch_0_fenced", write(0, 1, 5, []))
        step("write_merged", write(1, 1, 7, [StateBatch(8, 8, 2, 1)]))
        step("read_leader_epoch_0_fenced", read(0))
        step("read_leader_epoch_2", read(2))
        step("summary", summary())
        step("initialize_same_state_epoch", initialize(1, 20))
        step("initialize_newer_state_epoch", initialize(2, 20))
        step("read_after_reinitialize", read(2))
        step(
            "delete",
            DeleteShareGroupStateRequest(
                group_id=GROUP, topics=[DeleteStateData(topic_id=tid, partitions=[DeletePartition(partition=0)])]
            ),
        )
        step("read_after_delete", read(2))
        step("summary_after_delete", summary())
    return out


def load() -> dict[str, Any]:
    return load_golden(GOLDEN, meta=False)


def record(out: Path = GOLDEN) -> Path:
    return record_golden(out, "kafka-share-state-", run)


def main(argv: list[str]) -> int:
    if argv[1:] == ["record"]:
        print(record())
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
