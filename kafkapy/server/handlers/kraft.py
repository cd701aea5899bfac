"""KRaft registrations: UnregisterBroker (64); quorum membership: AddRaftVoter (80), RemoveRaftVoter (81),
UnregisterController (94).

UnregisterBroker (Admin.unregisterBroker) removes a broker's registration. A kafkapy cluster keeps
two parts of one in etcd: `brokers/<id>`, under the live broker's lease, and `broker-dirs/<id>`, the
data dir the cluster accepted for it, which outlives the broker (a stopped broker is what Kafka calls
fenced). Unregistering a stopped broker deletes the latter, so a broker coming back with that id is a
new one. A live broker's registration is its lease: the answer is NONE and it stays (Kafka's broker
registers again too). Any other id: BROKER_ID_NOT_REGISTERED, as Kafka answers.

kafkapy has no Raft quorum: a cluster's metadata lives in etcd, a single broker's in its data dir, and
DescribeQuorum (quorum.py) shows the controller as the one voter of a static quorum (kraft.version 0).
These APIs answer as Apache Kafka 4.3.1/4.4.0 answer with a static quorum (recorded by
interop/diff_raft.py): after the cluster id check, voters cannot change (UNSUPPORTED_VERSION) and no
controller is registered but the active one (which cannot unregister itself).
"""

from __future__ import annotations

from kafkapy.cluster.etcd_metadata import EtcdMetadata
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.add_raft_voter_request import AddRaftVoterRequest
from kafkapy.protocol.messages.add_raft_voter_response import AddRaftVoterResponse
from kafkapy.protocol.messages.remove_raft_voter_request import RemoveRaftVoterRequest
from kafkapy.protocol.messages.remove_raft_voter_response import RemoveRaftVoterResponse
from kafkapy.protocol.messages.unregister_broker_request import UnregisterBrokerRequest
from kafkapy.protocol.messages.unregister_broker_response import UnregisterBrokerResponse
from kafkapy.protocol.messages.unregister_controller_request import UnregisterControllerRequest
from kafkapy.protocol.messages.unregister_controller_response import UnregisterControllerResponse
from kafkapy.security.acl import AclOperation
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext

log = get_logger(__name__)

STATIC_QUORUM = "Cluster doesn't support {} voter because the kraft.version feature is 0"
NO_VOTER = "{} voter request didn't include a valid voter"
# Kafka's first controller.listener.names entry: a new voter must give its endpoint
CONTROLLER_LISTENER = "CONTROLLER"


def _denied(ctx: RequestContext, api: str | None = None) -> str | None:
    """Every change here needs ALTER on the cluster. Kafka's text for the voter APIs is its generic one;
    for the registrations it names its Java request object: ours names the request and principal."""
    if authz.cluster(ctx, AclOperation.ALTER):
        return None
    if api is None:
        return "Cluster authorization failed."
    principal = ctx.conn.principal if ctx.conn is not None else authz.ANONYMOUS
    return f"Request {api} v{ctx.version} of {principal} needs ALTER permission."


def _other_cluster(ctx: RequestContext, cluster_id: str | None) -> str | None:
    """A request naming another cluster (null names none)."""
    ours = ctx.state.metadata.cluster_id
    if cluster_id is None or cluster_id == ours:
        return None
    return f'The given id "{cluster_id}" doesn\'t match the cluster id "{ours}"'


def _no_endpoint(req: AddRaftVoterRequest) -> str:
    """Kafka's message, its endpoints written as Java prints them."""
    endpoints = ", ".join(f"ListenerName({e.name})={e.host}/<unresolved>:{e.port}" for e in req.listeners)
    return (
        f"Add voter request didn't include the endpoint (Endpoints(endpoints={{{endpoints}}})) "
        f"for the default listener ListenerName({CONTROLLER_LISTENER})"
    )


async def add_raft_voter(ctx: RequestContext, req: AddRaftVoterRequest) -> AddRaftVoterResponse:
    if (why := _denied(ctx)) is not None:
        return AddRaftVoterResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=why)
    if (why := _other_cluster(ctx, req.cluster_id)) is not None:
        return AddRaftVoterResponse(error_code=ErrorCode.INCONSISTENT_CLUSTER_ID, error_message=why)
    if req.voter_id < 0 or req.voter_directory_id.int == 0:  # a voter is its id and directory id
        return AddRaftVoterResponse(error_code=ErrorCode.INVALID_REQUEST, error_message=NO_VOTER.format("Add"))
    if not any(listener.name == CONTROLLER_LISTENER for listener in req.listeners):
        return AddRaftVoterResponse(error_code=ErrorCode.INVALID_REQUEST, error_message=_no_endpoint(req))
    return AddRaftVoterResponse(error_code=ErrorCode.UNSUPPORTED_VERSION, error_message=STATIC_QUORUM.format("adding"))


async def remove_raft_voter(ctx: RequestContext, req: RemoveRaftVoterRequest) -> RemoveRaftVoterResponse:
    if (why := _denied(ctx)) is not None:
        return RemoveRaftVoterResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=why)
    if (why := _other_cluster(ctx, req.cluster_id)) is not None:
        return RemoveRaftVoterResponse(error_code=ErrorCode.INCONSISTENT_CLUSTER_ID, error_message=why)
    if req.voter_id < 0 or req.voter_directory_id.int == 0:
        return RemoveRaftVoterResponse(error_code=ErrorCode.INVALID_REQUEST, error_message=NO_VOTER.format("Remove"))
    return RemoveRaftVoterResponse(
        error_code=ErrorCode.UNSUPPORTED_VERSION, error_message=STATIC_QUORUM.format("removing")
    )


async def unregister_controller(ctx: RequestContext, req: UnregisterControllerRequest) -> UnregisterControllerResponse:
    """The active controller (the one voter) cannot leave; no other controller is registered."""
    if (why := _denied(ctx, "UnregisterController")) is not None:
        return UnregisterControllerResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=why)
    if req.controller_id >= 0 and req.controller_id == ctx.state.metadata.controller_id:
        return UnregisterControllerResponse(
            error_code=ErrorCode.INVALID_REQUEST,
            error_message="Controller cannot unregister itself while it is active.",
        )
    return UnregisterControllerResponse(
        error_code=ErrorCode.CONTROLLER_ID_NOT_REGISTERED,
        error_message=f"Controller ID {req.controller_id} is not currently registered.",
    )


async def unregister_broker(ctx: RequestContext, req: UnregisterBrokerRequest) -> UnregisterBrokerResponse:
    if (why := _denied(ctx, "UnregisterBroker")) is not None:
        return UnregisterBrokerResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=why)
    md = ctx.state.metadata
    node = req.broker_id
    if isinstance(md, EtcdMetadata) and node in md.stopped_ids() and await md.forget_broker(node):
        log.info("stopped broker unregistered", broker_id=node)
        return UnregisterBrokerResponse(error_message="")
    if md.broker_info(node) is not None:  # live: registered under its lease
        return UnregisterBrokerResponse(error_message="")
    return UnregisterBrokerResponse(
        error_code=ErrorCode.BROKER_ID_NOT_REGISTERED, error_message=f"Broker ID {node} is not currently registered"
    )
