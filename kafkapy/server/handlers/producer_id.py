"""InitProducerId (22): producer ids for idempotent producers.

Ids come from the broker's `ProducerIdManager` (coordinator/producer_ids.py),
which hands them out from durably reserved blocks, so an id is never handed
out twice.

Non-transactional requests (transactional_id null) always get a fresh id
with epoch 0, also at v3+ when they carry their current id and epoch
(KIP-360): this is what Kafka's coordinator does for them. Idempotent
clients bump their epoch themselves; only a transactional id has a durable
record against which an epoch bump could be checked.

A transactional id goes to the transaction coordinator
(handlers/transactions.py, coordinator/transactions.py), which takes its
producer ids from the same manager. An empty transactional id is
INVALID_REQUEST, as in Kafka.
"""

from __future__ import annotations

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.init_producer_id_request import InitProducerIdRequest
from kafkapy.protocol.messages.init_producer_id_response import InitProducerIdResponse
from kafkapy.security.acl import AclOperation
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext


async def handle(ctx: RequestContext, req: InitProducerIdRequest) -> InitProducerIdResponse:
    if ctx.state.authorizer is not None:
        # Kafka: Write on the transactional id; an idempotent producer needs IdempotentWrite on the
        # cluster or Write on some topic (KIP-679)
        if req.transactional_id is not None:
            if not authz.transactional_id(ctx, AclOperation.WRITE, req.transactional_id):
                return InitProducerIdResponse(
                    error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, producer_id=-1, producer_epoch=-1
                )
        elif not authz.idempotent_write(ctx):
            return InitProducerIdResponse(
                error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, producer_id=-1, producer_epoch=-1
            )
    if req.transactional_id is not None:
        if req.transactional_id == "":
            return InitProducerIdResponse(error_code=ErrorCode.INVALID_REQUEST, producer_id=-1, producer_epoch=-1)
        from kafkapy.server.handlers.transactions import init_transactional  # the coordinator on first use

        pid, epoch = (req.producer_id, req.producer_epoch) if ctx.version >= 3 else (-1, -1)
        return await init_transactional(ctx, req.transactional_id, req.transaction_timeout_ms, pid, epoch)
    pid = await ctx.state.producer_ids.next_id()
    return InitProducerIdResponse(error_code=ErrorCode.NONE, producer_id=pid, producer_epoch=0)
