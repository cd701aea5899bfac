"""AlterPartitionReassignments (45) and ListPartitionReassignments (46).

Alter: every partition is validated (unknown topic or partition, an empty,
duplicate or unregistered replica list, a cancel with nothing in flight) and
its KIP-455 reassignment started or cancelled by a compare-and-swap on the
partition's state in etcd (`kafkapy.cluster.reassignment`); the controller
finishes it once the new replicas are in sync. The answer comes when the
reassignment has started, as in Kafka. A single broker can only "move" a
partition onto itself.

List: the partitions whose replica set is changing (replicas being added or
removed), from the cluster metadata. A single broker never has any. As in
Kafka, a filter naming an unknown topic or partition matches nothing and is
not an error.
"""

from __future__ import annotations

from collections.abc import Iterable

from kafkapy.cluster.metadata import PartitionInfo, TopicInfo
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.alter_partition_reassignments_request import (
    AlterPartitionReassignmentsRequest,
)
from kafkapy.protocol.messages.alter_partition_reassignments_response import (
    AlterPartitionReassignmentsResponse,
    ReassignablePartitionResponse,
    ReassignableTopicResponse,
)
from kafkapy.protocol.messages.list_partition_reassignments_request import (
    ListPartitionReassignmentsRequest,
)
from kafkapy.protocol.messages.list_partition_reassignments_response import (
    ListPartitionReassignmentsResponse,
    OngoingPartitionReassignment,
    OngoingTopicReassignment,
)
from kafkapy.security.acl import AclOperation as Op
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext


def _ongoing(partitions: Iterable[PartitionInfo]) -> list[OngoingPartitionReassignment]:
    return [
        OngoingPartitionReassignment(
            partition_index=p.index,
            replicas=list(p.replicas),
            adding_replicas=list(p.adding_replicas),
            removing_replicas=list(p.removing_replicas),
        )
        for p in partitions
        if p.adding_replicas or p.removing_replicas
    ]


CLUSTER_AUTHORIZATION_FAILED = "Cluster authorization failed."


async def list_partition_reassignments(
    ctx: RequestContext, req: ListPartitionReassignmentsRequest
) -> ListPartitionReassignmentsResponse:
    md = ctx.state.metadata
    if not authz.cluster(ctx, Op.DESCRIBE):  # Kafka: Describe on the cluster
        return ListPartitionReassignmentsResponse(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=CLUSTER_AUTHORIZATION_FAILED, topics=[]
        )
    wanted: list[tuple[TopicInfo, Iterable[PartitionInfo]]] = []
    if req.topics is None:
        wanted = [(t, t.partitions) for t in md.topics()]
    else:
        for asked in req.topics:
            info = md.topic(asked.name)
            if info is not None:
                indexes = set(asked.partition_indexes)
                wanted.append((info, [p for p in info.partitions if p.index in indexes]))
    topics = []
    for info, partitions in wanted:
        ongoing = _ongoing(partitions)
        if ongoing:
            topics.append(OngoingTopicReassignment(name=info.name, partitions=ongoing))
    return ListPartitionReassignmentsResponse(error_code=ErrorCode.NONE, error_message=None, topics=topics)


async def alter_partition_reassignments(
    ctx: RequestContext, req: AlterPartitionReassignmentsRequest
) -> AlterPartitionReassignmentsResponse:
    md = ctx.state.metadata
    if not authz.cluster(ctx, Op.ALTER):  # Kafka: Alter on the cluster
        return AlterPartitionReassignmentsResponse(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=CLUSTER_AUTHORIZATION_FAILED, responses=[]
        )
    responses = []
    for t in req.topics:
        results = []
        for p in t.partitions:
            target = None if p.replicas is None else list(p.replicas)
            outcome = await md.alter_reassignment(t.name, p.partition_index, target)
            results.append(
                ReassignablePartitionResponse(
                    partition_index=p.partition_index, error_code=outcome.code, error_message=outcome.message
                )
            )
        responses.append(ReassignableTopicResponse(name=t.name, partitions=results))
    return AlterPartitionReassignmentsResponse(error_code=ErrorCode.NONE, responses=responses)
