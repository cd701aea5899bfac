"""DescribeQuorum (55): kafkapy's metadata "quorum", mapped onto Kafka's KRaft answer.

kafkapy has no Raft log: a cluster's metadata lives in etcd, a single broker's in its data dir. The
answer maps that faithfully (docs/compatibility.md):
- the metadata partition `__cluster_metadata`-0 is led by the controller (a cluster's elected
  controller, or the single broker), the one voter; its epoch is the controller epoch (1 on a single
  broker, which never elects);
- every other live broker is an observer: it follows the metadata (etcd's watch) without deciding;
- offsets are metadata revisions as this broker has applied them (etcd's revision in a cluster; on a
  single broker the changes applied since it started): the high watermark, the leader's log end
  offset and this broker's own. Another observer's position is not known here: log end offset and
  times -1 ("unknown", as Kafka says);
- directory ids are zero, as Kafka answers at kraft.version 0 (a static quorum).
Anything but the one metadata partition answers UNKNOWN_TOPIC_OR_PARTITION, as Kafka 4.3.1 does.
"""

from __future__ import annotations

from kafkapy.clock import now_ms
from kafkapy.cluster.etcd_metadata import EtcdMetadata
from kafkapy.cluster.metadata import EmbeddedMetadata
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.describe_quorum_request import DescribeQuorumRequest
from kafkapy.protocol.messages.describe_quorum_response import (
    DescribeQuorumResponse,
    Listener,
    Node,
    PartitionData,
    ReplicaState,
    TopicData,
)
from kafkapy.security.acl import AclOperation
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext

METADATA_TOPIC = "__cluster_metadata"
NOT_HOSTED = "This server does not host this topic-partition."


def _position(ctx: RequestContext) -> tuple[int, int]:
    """(controller epoch, metadata revision applied here)."""
    md = ctx.state.metadata
    if isinstance(md, EtcdMetadata):
        return md.controller_epoch, md.revision
    if isinstance(md, EmbeddedMetadata):
        return 1, md.revision
    return 0, 0


def _replica(ctx: RequestContext, node_id: int, revision: int, now: int, leader: bool = False) -> ReplicaState:
    """The leader's position is the revision applied here (a lower bound: etcd, the log, has it), as is
    this broker's own; another observer's is unknown."""
    if leader or node_id == ctx.state.metadata.broker.node_id:
        return ReplicaState(
            replica_id=node_id, log_end_offset=revision, last_fetch_timestamp=now, last_caught_up_timestamp=now
        )
    return ReplicaState(replica_id=node_id, log_end_offset=-1)


async def describe_quorum(ctx: RequestContext, req: DescribeQuorumRequest) -> DescribeQuorumResponse:
    if not authz.cluster(ctx, AclOperation.DESCRIBE):
        return DescribeQuorumResponse(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message="Cluster authorization failed."
        )
    single = (
        len(req.topics) == 1
        and req.topics[0].topic_name == METADATA_TOPIC
        and [p.partition_index for p in req.topics[0].partitions] == [0]
    )
    if not single:  # Kafka answers only the one metadata partition asked alone
        return DescribeQuorumResponse(
            topics=[
                TopicData(
                    topic_name=t.topic_name,
                    partitions=[
                        PartitionData(
                            partition_index=p.partition_index,
                            error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                            error_message=NOT_HOSTED,
                        )
                        for p in t.partitions
                    ],
                )
                for t in req.topics
            ]
        )
    md = ctx.state.metadata
    epoch, revision = _position(ctx)
    now = now_ms()
    leader = md.controller_id
    observers = [_replica(ctx, b.node_id, revision, now) for b in md.brokers() if b.node_id != leader]
    voters = [_replica(ctx, leader, revision, now, leader=True)] if leader >= 0 else []
    partition = PartitionData(
        partition_index=0,
        leader_id=leader,
        leader_epoch=epoch,
        high_watermark=revision,
        current_voters=voters,
        observers=observers,
    )
    nodes = []
    info = md.broker_info(leader) if leader >= 0 else None
    if info is not None:
        listeners = [Listener(name=name, host=e.host, port=e.port) for name, e in info.endpoints.items()]
        nodes.append(
            Node(node_id=leader, listeners=listeners or [Listener(name="PLAINTEXT", host=info.host, port=info.port)])
        )
    return DescribeQuorumResponse(topics=[TopicData(topic_name=METADATA_TOPIC, partitions=[partition])], nodes=nodes)
