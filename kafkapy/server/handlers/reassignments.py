"""AlterPartitionReassignments (45) and ListPartitionReassignments (46).

Alter: every partition is validated (unknown topic or partition, an empty,
duplicate or unregistered replica list, a cancel with nothing in flight) and
its KIP-455 reassignment started or cancelled, all of the request's
partitions as one decision (`alter_reassignments`: one put of each topic's
record in etcd, `kafkapy.cluster.reassignment` for the states); the controller
finishes it once the new replicas are in sync. The answer comes when the
reassignment has started, as in Kafka. A single broker can only "move" a
partition onto itself. v1 (KIP-860): with AllowReplicationFactorChange false, a
valid target that changes the partition's replication factor is refused with
INVALID_REPLICATION_FACTOR; the flag is echoed in the answer.

List: the partitions whose replica set is changing (replicas being added or
removed), from the cluster metadata. A single broker never has any. As in
Kafka, a filter naming an unknown topic or partition matches nothing and is
not an error.
"""

from __future__ import annotations

from collections.abc import Iterable

from kafkapy.cluster.metadata import Outcome, PartitionInfo, TopicInfo, check_target
from kafkapy.cluster.view import MetadataStore
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
    allow = req.allow_replication_factor_change or ctx.version < 1
    wanted = []
    refused: dict[tuple[str, int], Outcome] = {}
    for t in req.topics:
        for p in t.partitions:
            target = None if p.replicas is None else list(p.replicas)
            problem = None if allow else _factor_change(md, t.name, p.partition_index, target)
            if problem is not None:
                refused[(t.name, p.partition_index)] = problem
            else:
                wanted.append((t.name, p.partition_index, target))
    outcomes = iter(await md.alter_reassignments(wanted))  # one decision for the whole request
    responses = []
    for t in req.topics:
        results = []
        for p in t.partitions:
            outcome = refused.get((t.name, p.partition_index)) or next(outcomes)
            results.append(
                ReassignablePartitionResponse(
                    partition_index=p.partition_index, error_code=outcome.code, error_message=outcome.message
                )
            )
        responses.append(ReassignableTopicResponse(name=t.name, partitions=results))
    return AlterPartitionReassignmentsResponse(
        error_code=ErrorCode.NONE,
        error_message=None if req.topics else "",  # as Kafka 4.3.1: null, but "" for a request with no topics
        allow_replication_factor_change=allow,
        responses=responses,
    )


def _factor_change(md: MetadataStore, topic: str, index: int, target: list[int] | None) -> Outcome | None:
    """v1 with AllowReplicationFactorChange false (KIP-860): a valid target whose replica count differs
    from the partition's replication factor (its replicas less those a reassignment is adding) is refused."""
    info = md.topic(topic)
    if target is None or info is None or not 0 <= index < len(info.partitions):
        return None
    if check_target(target, md.live_ids()) is not None:
        return None  # invalid anyway: the reassignment's own checks answer
    part = info.partitions[index]
    factor = len(part.replicas) - len(part.adding_replicas)
    if len(target) == factor:
        return None
    return Outcome(
        ErrorCode.INVALID_REPLICATION_FACTOR, f"The replication factor is changed from {factor} to {len(target)}"
    )
