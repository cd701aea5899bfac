"""ElectLeaders (43): preferred (0) and unclean (1) leader elections on request.

Preferred: replicas[0] leads if it is live and in the ISR
(ELECTION_NOT_NEEDED when it already leads, PREFERRED_LEADER_NOT_AVAILABLE
otherwise). Unclean: only when no ISR member is live, the first live
replica leads. A null topic list means every partition; then, as the
Kafka tools show it, partitions that needed no election are left out.
In a cluster each election is a compare-and-swap on the partition's state
in etcd (`kafkapy.cluster.reassignment.elect`); a single broker is its own
preferred leader, so nothing ever needs electing there.
A timeout of 0 or less times out before any election, as in Kafka 4.3.1
(whose controller checks the deadline first), unless no partition is named.
The elections made count in the serving broker's ControllerStats (kafkapy's
brokers write them to etcd themselves, where Kafka's brokers forward the
request to the controller; clients send it to the controller either way).
"""

from __future__ import annotations

from time import perf_counter

from kafkapy.cluster.metadata import PREFERRED, UNCLEAN, Outcome
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.elect_leaders_request import ElectLeadersRequest
from kafkapy.protocol.messages.elect_leaders_response import (
    ElectLeadersResponse,
    PartitionResult,
    ReplicaElectionResult,
)
from kafkapy.security.acl import AclOperation as Op
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext


async def _one(ctx: RequestContext, topic: str, index: int, election_type: int) -> Outcome:
    if election_type not in (PREFERRED, UNCLEAN):
        return Outcome(ErrorCode.INVALID_REQUEST, f"Unknown election type {election_type}.")
    return await ctx.state.metadata.elect_leader(topic, index, election_type)


def _timed_out(req: ElectLeadersRequest) -> ElectLeadersResponse:
    """Kafka's answer to a timeout of 0 or less: REQUEST_TIMED_OUT at the top and for every
    partition as the request lists it (topics unmerged, duplicates kept); none for a null list."""
    results = [
        ReplicaElectionResult(
            topic=tp.topic,
            partition_result=[
                PartitionResult(partition_id=index, error_code=ErrorCode.REQUEST_TIMED_OUT, error_message=None)
                for index in tp.partitions
            ],
        )
        for tp in req.topic_partitions or []
    ]
    return ElectLeadersResponse(error_code=ErrorCode.REQUEST_TIMED_OUT, replica_election_results=results)


async def handle(ctx: RequestContext, req: ElectLeadersRequest) -> ElectLeadersResponse:
    if not authz.cluster(ctx, Op.ALTER):  # Kafka: Alter on the cluster, every named partition refused
        return ElectLeadersResponse(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
            replica_election_results=[
                ReplicaElectionResult(
                    topic=tp.topic,
                    partition_result=[
                        PartitionResult(
                            partition_id=i, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=None
                        )
                        for i in tp.partitions
                    ],
                )
                for tp in req.topic_partitions or []
            ],
        )
    if req.timeout_ms <= 0 and req.topic_partitions != []:
        return _timed_out(req)
    election_type = req.election_type if ctx.version >= 1 else PREFERRED
    everything = req.topic_partitions is None
    if everything:
        wanted = [(t.name, [p.index for p in t.partitions]) for t in ctx.state.metadata.topics()]
    else:
        merged: dict[str, list[int]] = {}
        for tp in req.topic_partitions or []:
            indexes = merged.setdefault(tp.topic, [])
            indexes.extend(i for i in tp.partitions if i not in indexes)
        wanted = list(merged.items())
    results = []
    began, elected = perf_counter(), 0
    for topic, indexes in wanted:
        partitions = []
        for index in indexes:
            outcome = await _one(ctx, topic, index, election_type)
            elected += outcome.code == ErrorCode.NONE
            if everything and outcome.code == ErrorCode.ELECTION_NOT_NEEDED:
                continue
            partitions.append(
                PartitionResult(partition_id=index, error_code=outcome.code, error_message=outcome.message)
            )
        if partitions or not everything:
            results.append(ReplicaElectionResult(topic=topic, partition_result=partitions))
    controller = ctx.state.controller
    if elected and controller is not None:
        # ControllerStats (docs/monitoring.md): one pass in LeaderElectionRateAndTimeMs; every unclean one
        # (a leader from outside the ISR) in UncleanLeaderElectionsPerSec
        controller.count_elections(elected if election_type == UNCLEAN else 0, (perf_counter() - began) * 1000.0)
    return ElectLeadersResponse(error_code=ErrorCode.NONE, replica_election_results=results)
