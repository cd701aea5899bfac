"""Transaction APIs: AddPartitionsToTxn (24), AddOffsetsToTxn (25), EndTxn (26),
WriteTxnMarkers (27), TxnOffsetCommit (28), DescribeProducers (61),
DescribeTransactions (65), ListTransactions (66); InitProducerId with a
transactional id is in producer_id.py and calls `init_transactional`.

Thin adapters over `TransactionCoordinator` (coordinator/transactions.py)
and, for TxnOffsetCommit, the group coordinator. A fenced producer gets
PRODUCER_FENCED; the dispatcher answers versions before KIP-588 (InitProducerId
v4, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn v2) with
INVALID_PRODUCER_EPOCH (server/errors.py FALLBACKS).

The answers of InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn
and TxnOffsetCommit wait for the coordinator's records to be replicated
(at once on a single broker; docs in coordinator/transactions.py);
WriteTxnMarkers appends only where this broker leads and answers once the
markers are replicated.

Produce verification (KIP-890 part 1, Produce up to v11) and TxnOffsetCommit
up to v4 ask the transactional id's coordinator whether the partition is in
the ongoing transaction: the local one directly, another broker with a
verify-only AddPartitionsToTxn v5 (cluster/markers.py CoordinatorChannel).
Transactions v2 (KIP-890 part 2, the `transaction.version` feature at 2):
Produce v12+ and TxnOffsetCommit v5+ come from clients that no longer send
AddPartitionsToTxn/AddOffsetsToTxn, so the leader (or group coordinator) adds
the partition itself the same way; AddPartitionsToTxn v4+ from a broker adds
under transactions v2; EndTxn v5+ bumps the epoch at every end and answers
the producer id and epoch for the next transaction. A partition whose
producer already has a transaction open at that epoch is not asked again.
"""

from __future__ import annotations

import re
from uuid import UUID

from kafkapy.clock import now_ms
from kafkapy.cluster.markers import append_markers, wait_replicated
from kafkapy.coordinator import OFFSETS_TOPIC
from kafkapy.coordinator.coordinator import GroupCoordinator
from kafkapy.coordinator.placement import CoordinatorWriteError, store_error
from kafkapy.coordinator.records import OffsetValue
from kafkapy.coordinator.txn_offsets import write_txn_offsets
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.add_offsets_to_txn_request import AddOffsetsToTxnRequest
from kafkapy.protocol.messages.add_offsets_to_txn_response import (
    AddOffsetsToTxnResponse,
)
from kafkapy.protocol.messages.add_partitions_to_txn_request import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnTopic,
)
from kafkapy.protocol.messages.add_partitions_to_txn_response import (
    AddPartitionsToTxnPartitionResult,
    AddPartitionsToTxnResponse,
    AddPartitionsToTxnResult,
    AddPartitionsToTxnTopicResult,
)
from kafkapy.protocol.messages.describe_producers_request import (
    DescribeProducersRequest,
)
from kafkapy.protocol.messages.describe_producers_response import (
    DescribeProducersResponse,
    PartitionResponse,
    ProducerState,
    TopicResponse,
)
from kafkapy.protocol.messages.describe_transactions_request import (
    DescribeTransactionsRequest,
)
from kafkapy.protocol.messages.describe_transactions_response import (
    DescribeTransactionsResponse,
    TopicData,
    TransactionState,
)
from kafkapy.protocol.messages.end_txn_request import EndTxnRequest
from kafkapy.protocol.messages.end_txn_response import EndTxnResponse
from kafkapy.protocol.messages.init_producer_id_response import InitProducerIdResponse
from kafkapy.protocol.messages.list_transactions_request import ListTransactionsRequest
from kafkapy.protocol.messages.list_transactions_response import (
    ListTransactionsResponse,
)
from kafkapy.protocol.messages.list_transactions_response import (
    TransactionState as ListedTransaction,
)
from kafkapy.protocol.messages.txn_offset_commit_request import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequestTopic,
)
from kafkapy.protocol.messages.txn_offset_commit_response import (
    TxnOffsetCommitResponse,
    TxnOffsetCommitResponsePartition,
    TxnOffsetCommitResponseTopic,
)
from kafkapy.protocol.messages.write_txn_markers_request import WriteTxnMarkersRequest
from kafkapy.protocol.messages.write_txn_markers_response import (
    WritableTxnMarkerPartitionResult,
    WritableTxnMarkerResult,
    WritableTxnMarkerTopicResult,
    WriteTxnMarkersResponse,
)
from kafkapy.protocol.records import BatchHeader
from kafkapy.security.acl import AclOperation as Op
from kafkapy.security.acl import ResourceType as Res
from kafkapy.server import authz
from kafkapy.server.errors import error_code
from kafkapy.server.handler import RequestContext
from kafkapy.server.services import BrokerServices
from kafkapy.storage.errors import StorageError
from kafkapy.storage.producer_state import ProducerStateError

TopicPartition = tuple[str, int]


def _partition_exists(state: BrokerServices, topic: str, partition: int) -> bool:
    info = state.metadata.topic(topic)
    return info is not None and 0 <= partition < len(info.partitions)


# ---------------------------------------------------------------- InitProducerId


async def init_transactional(
    ctx: RequestContext, txn_id: str, timeout_ms: int, producer_id: int, producer_epoch: int
) -> InitProducerIdResponse:
    coord = ctx.state.txns
    if not coord.owns(txn_id):
        return InitProducerIdResponse(error_code=ErrorCode.NOT_COORDINATOR, producer_id=-1, producer_epoch=-1)
    await ctx.state.producer_ids.ready()  # the coordinator takes a new id without waiting
    d = coord.init_producer_id(txn_id, timeout_ms, producer_id, producer_epoch, producer_fenced=True)
    if d.error == ErrorCode.NONE:
        d.error = await coord.written(txn_id)  # the new epoch is replicated before the producer uses it
    if d.error != ErrorCode.NONE:
        return InitProducerIdResponse(error_code=d.error, producer_id=-1, producer_epoch=-1)
    return InitProducerIdResponse(error_code=ErrorCode.NONE, producer_id=d.producer_id, producer_epoch=d.producer_epoch)


# ---------------------------------------------------------------- Produce verification


def verify_produce(state: BrokerServices, txn_id: str | None, topic: str, partition: int, h: BatchHeader) -> int:
    """A transactional batch is accepted only for a partition in its producer's ongoing transaction
    (Produce v0-2, no transactional id in the request: checked when this broker is the coordinator)."""
    return state.txns.verify_produce(txn_id, h.producer_id, h.producer_epoch, (topic, partition))


# The coordinator could not answer now: the producer retries (Kafka answers NOT_ENOUGH_REPLICAS).
_ASK_AGAIN = frozenset(
    {
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.CONCURRENT_TRANSACTIONS,
        ErrorCode.NETWORK_EXCEPTION,
        ErrorCode.REQUEST_TIMED_OUT,
    }
)


def _produce_code(code: int, version: int) -> int:
    """The coordinator's answer as a Produce partition error (v11+ knows TRANSACTION_ABORTABLE, which
    Kafka 4.3.1 answers for a partition not in the transaction)."""
    if code == ErrorCode.NONE:
        return ErrorCode.NONE
    if code in (ErrorCode.INVALID_PRODUCER_EPOCH, ErrorCode.PRODUCER_FENCED):
        return ErrorCode.INVALID_PRODUCER_EPOCH
    if code in _ASK_AGAIN:
        return ErrorCode.NOT_ENOUGH_REPLICAS
    return ErrorCode.TRANSACTION_ABORTABLE if version >= 11 else ErrorCode.INVALID_TXN_STATE


def _open_here(state: BrokerServices, tp: TopicPartition, producer_id: int, producer_epoch: int) -> bool:
    """Has this producer a transaction open on the partition at this epoch (checked when it began)?"""
    plog = state.replicas.partition_log(*tp)
    entry = plog.producer_state.producers.get(producer_id) if plog is not None else None
    return entry is not None and entry.epoch == producer_epoch and entry.txn_first_offset >= 0


async def check_produce(
    state: BrokerServices, txn_id: str, version: int, batches: dict[TopicPartition, tuple[int, int]]
) -> dict[TopicPartition, int]:
    """Produce v3+ transactional batches (partition -> producer id, epoch of its first batch): each
    partition's Produce error. v12+ adds the partitions to the transaction (transactions v2)."""
    out: dict[TopicPartition, int] = {}
    ask: dict[tuple[int, int], list[TopicPartition]] = {}
    for tp, (pid, epoch) in batches.items():
        if _open_here(state, tp, pid, epoch):
            out[tp] = ErrorCode.NONE
        else:
            ask.setdefault((pid, epoch), []).append(tp)
    for (pid, epoch), tps in ask.items():
        codes = await state.txns.add_or_verify(txn_id, pid, epoch, tps, add=version >= 12)
        for tp in tps:
            out[tp] = _produce_code(codes.get(tp, ErrorCode.UNKNOWN_SERVER_ERROR), version)
    return out


# ---------------------------------------------------------------- AddPartitionsToTxn


def _add_one(
    state: BrokerServices,
    txn_id: str,
    pid: int,
    epoch: int,
    topics: list[AddPartitionsToTxnTopic],
    verify_only: bool = False,
    client_tv: int = 0,
    version: int = 3,
) -> list[AddPartitionsToTxnTopicResult]:
    coord = state.txns
    wanted = [(t.name, p) for t in topics for p in t.partitions]
    errors: dict[TopicPartition, int] = {}
    if not coord.owns(txn_id):
        errors = dict.fromkeys(wanted, ErrorCode.NOT_COORDINATOR)
    elif verify_only:  # v4+, a broker's question
        errors = {tp: _verify_code(coord.verify(txn_id, pid, epoch, tp), version) for tp in wanted}
    else:
        unknown = [tp for tp in wanted if not _partition_exists(state, *tp)]
        if unknown:
            errors = dict.fromkeys(wanted, ErrorCode.OPERATION_NOT_ATTEMPTED)
            errors.update(dict.fromkeys(unknown, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
        else:
            err = coord.add_partitions(txn_id, pid, epoch, wanted, producer_fenced=True, client_tv=client_tv)
            errors = dict.fromkeys(wanted, err)
    return [
        AddPartitionsToTxnTopicResult(
            name=t.name,
            results_by_partition=[
                AddPartitionsToTxnPartitionResult(partition_index=p, partition_error_code=errors[(t.name, p)])
                for p in t.partitions
            ],
        )
        for t in topics
    ]


def _verify_code(code: int, version: int) -> int:
    """A verify-only answer as Kafka 4.3.1 gives it: a stale epoch PRODUCER_FENCED, a partition not in
    the transaction TRANSACTION_ABORTABLE from v5 (INVALID_TXN_STATE before)."""
    if code == ErrorCode.INVALID_PRODUCER_EPOCH:
        return ErrorCode.PRODUCER_FENCED
    if code == ErrorCode.INVALID_TXN_STATE and version >= 5:
        return ErrorCode.TRANSACTION_ABORTABLE
    return code


async def _replicated(state: BrokerServices, txn_id: str, results: list[AddPartitionsToTxnTopicResult]) -> None:
    """Successful additions answer once `__transaction_state` is replicated."""
    ok = [p for t in results for p in t.results_by_partition if p.partition_error_code == ErrorCode.NONE]
    if not ok:
        return
    err = await state.txns.written(txn_id)
    for p in ok:
        p.partition_error_code = err


def _refuse_partitions(
    topics: list[AddPartitionsToTxnTopic], code: int, denied: set[str] | None = None
) -> list[AddPartitionsToTxnTopicResult]:
    """Every partition answers `code`; with `denied`, those topics' partitions answer
    TOPIC_AUTHORIZATION_FAILED and the others OPERATION_NOT_ATTEMPTED (Kafka's answer)."""
    return [
        AddPartitionsToTxnTopicResult(
            name=t.name,
            results_by_partition=[
                AddPartitionsToTxnPartitionResult(
                    partition_index=p,
                    partition_error_code=code
                    if denied is None
                    else (
                        ErrorCode.TOPIC_AUTHORIZATION_FAILED if t.name in denied else ErrorCode.OPERATION_NOT_ATTEMPTED
                    ),
                )
                for p in t.partitions
            ],
        )
        for t in topics
    ]


async def add_partitions_to_txn(ctx: RequestContext, req: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse:
    v = ctx.version
    if v <= 3 and ctx.state.authorizer is not None:
        # a client: Write on the transactional id, then on each topic
        topics = req.v3_and_below_topics
        if not authz.transactional_id(ctx, Op.WRITE, req.v3_and_below_transactional_id):
            return AddPartitionsToTxnResponse(
                results_by_topic_v3_and_below=_refuse_partitions(
                    topics, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
                )
            )
        denied = authz.denied_topics(ctx, Op.WRITE, (t.name for t in topics))
        if denied:
            return AddPartitionsToTxnResponse(
                results_by_topic_v3_and_below=_refuse_partitions(topics, ErrorCode.NONE, denied)
            )
    if v >= 4 and not authz.cluster(ctx, Op.CLUSTER_ACTION):  # v4+: brokers only
        return AddPartitionsToTxnResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
    if v <= 3:
        results = _add_one(
            ctx.state, req.v3_and_below_transactional_id, req.v3_and_below_producer_id,
            req.v3_and_below_producer_epoch, req.v3_and_below_topics,
        )  # fmt: skip
        await _replicated(ctx.state, req.v3_and_below_transactional_id, results)
        return AddPartitionsToTxnResponse(results_by_topic_v3_and_below=results)
    out = []
    for t in req.transactions:
        # a broker's add (v4+) comes from a transactions v2 client (Produce v12+, TxnOffsetCommit v5+)
        results = _add_one(
            ctx.state, t.transactional_id, t.producer_id, t.producer_epoch, t.topics, t.verify_only, client_tv=2,
            version=v,
        )  # fmt: skip
        if not t.verify_only:
            await _replicated(ctx.state, t.transactional_id, results)
        out.append(AddPartitionsToTxnResult(transactional_id=t.transactional_id, topic_results=results))
    return AddPartitionsToTxnResponse(error_code=ErrorCode.NONE, results_by_transaction=out)


# ---------------------------------------------------------------- AddOffsetsToTxn


async def add_offsets_to_txn(ctx: RequestContext, req: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse:
    if not authz.transactional_id(ctx, Op.WRITE, req.transactional_id):
        return AddOffsetsToTxnResponse(error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    if not authz.group(ctx, Op.READ, req.group_id):
        return AddOffsetsToTxnResponse(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
    coord = ctx.state.txns
    if not coord.owns(req.transactional_id):
        return AddOffsetsToTxnResponse(error_code=ErrorCode.NOT_COORDINATOR)
    if not req.group_id:
        return AddOffsetsToTxnResponse(error_code=ErrorCode.INVALID_GROUP_ID)
    p = ctx.state.groups.partition_of(req.group_id)
    err = coord.add_partitions(
        req.transactional_id,
        req.producer_id,
        req.producer_epoch,
        [(OFFSETS_TOPIC, p)],
        producer_fenced=True,
    )
    if err == ErrorCode.NONE:
        err = await coord.written(req.transactional_id)
    return AddOffsetsToTxnResponse(error_code=err)


# ---------------------------------------------------------------- EndTxn


async def end_txn(ctx: RequestContext, req: EndTxnRequest) -> EndTxnResponse:
    if not authz.transactional_id(ctx, Op.WRITE, req.transactional_id):
        return EndTxnResponse(error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    coord = ctx.state.txns
    if not coord.owns(req.transactional_id):
        return EndTxnResponse(error_code=ErrorCode.NOT_COORDINATOR)
    d = coord.end_transaction(
        req.transactional_id, req.producer_id, req.producer_epoch, req.committed,
        producer_fenced=True, client_tv=2 if ctx.version >= 5 else 0,
    )  # fmt: skip
    err = d.error
    if err == ErrorCode.NONE:
        err = await coord.written(req.transactional_id)  # PrepareX replicated
    if err != ErrorCode.NONE or ctx.version < 5:
        return EndTxnResponse(error_code=err)
    # v5 (transactions v2): the producer's id and epoch for its next transaction
    return EndTxnResponse(error_code=err, producer_id=d.producer_id, producer_epoch=d.producer_epoch)


# ---------------------------------------------------------------- WriteTxnMarkers


async def write_txn_markers(ctx: RequestContext, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse:
    state = ctx.state
    timeout_ms = int(state.config.get("request.timeout.ms") or 30_000)
    out = []
    if not authz.cluster(ctx, Op.CLUSTER_ACTION):  # brokers only
        return WriteTxnMarkersResponse(
            markers=[
                WritableTxnMarkerResult(
                    producer_id=m.producer_id,
                    topics=[
                        WritableTxnMarkerTopicResult(
                            name=t.name,
                            partitions=[
                                WritableTxnMarkerPartitionResult(
                                    partition_index=p, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED
                                )
                                for p in t.partition_indexes
                            ],
                        )
                        for t in m.topics
                    ],
                )
                for m in req.markers
            ]
        )
    for m in req.markers:
        tps = [(t.name, p) for t in m.topics for p in t.partition_indexes]
        res = append_markers(
            state.replicas,
            m.producer_id,
            m.producer_epoch,
            m.coordinator_epoch,
            m.transaction_result,
            tps,
            m.transaction_version if ctx.version >= 2 else 0,
        )
        if any(t == OFFSETS_TOPIC for t, _ in res.written()):
            state.groups.on_markers(m.producer_id, m.transaction_result, res.written())
        res = await wait_replicated(state.replicas, res, timeout_ms)  # acks=-1
        out.append(
            WritableTxnMarkerResult(
                producer_id=m.producer_id,
                topics=[
                    WritableTxnMarkerTopicResult(
                        name=t.name,
                        partitions=[
                            WritableTxnMarkerPartitionResult(partition_index=p, error_code=res.errors[(t.name, p)])
                            for p in t.partition_indexes
                        ],
                    )
                    for t in m.topics
                ],
            )
        )
    return WriteTxnMarkersResponse(markers=out)


# ---------------------------------------------------------------- TxnOffsetCommit


async def txn_offset_commit(ctx: RequestContext, req: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse:
    v = ctx.version
    state = ctx.state
    groups = state.groups
    max_meta = state.config.offset_metadata_max_bytes
    now = now_ms()
    errors: dict[TopicPartition, int] = {}
    commits: list[tuple[str, int, OffsetValue]] = []
    owned = groups.owns(req.group_id)
    refused: int = ErrorCode.NONE
    denied: set[str] = set()
    unknown_ids: set[UUID] = set()
    if v >= 6:  # KIP-1319: topics named by id
        for t in req.topics:
            info = state.metadata.topic_by_id(t.topic_id)
            if info is None:
                unknown_ids.add(t.topic_id)
            else:
                t.name = info.name
    if state.authorizer is not None:
        if not authz.transactional_id(ctx, Op.WRITE, req.transactional_id):
            refused = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        elif not authz.group(ctx, Op.READ, req.group_id):
            refused = ErrorCode.GROUP_AUTHORIZATION_FAILED
        else:
            denied = authz.denied_topics(ctx, Op.READ, (t.name for t in req.topics if t.topic_id not in unknown_ids))
    for t in req.topics:
        for p in t.partitions:
            tp = (_topic_key(t, unknown_ids), p.partition_index)
            meta = p.committed_metadata or ""
            if refused:
                errors[tp] = refused
            elif t.topic_id in unknown_ids:
                errors[tp] = ErrorCode.UNKNOWN_TOPIC_ID
            elif t.name in denied:
                errors[tp] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            elif not owned:
                errors[tp] = ErrorCode.NOT_COORDINATOR
            elif not _partition_exists(state, *tp):
                errors[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif len(meta.encode()) > max_meta:
                errors[tp] = ErrorCode.OFFSET_METADATA_TOO_LARGE
            else:
                epoch = p.committed_leader_epoch if v >= 2 else -1
                commits.append((t.name, p.partition_index, OffsetValue(p.committed_offset, epoch, meta, now)))
    if commits:
        err: int = ErrorCode.NONE
        if v >= 3 and (req.generation_id >= 0 or req.member_id):
            # KIP-447: the consumer's group metadata fences zombies of an older generation.
            err = _check_member(groups, req, v, now)
        if err == ErrorCode.NONE:
            err = await _check_txn(state, req, v)
        if err == ErrorCode.NONE:
            try:
                write_txn_offsets(groups, req.group_id, req.producer_id, req.producer_epoch, commits)
            except CoordinatorWriteError as e:
                err = store_error(e.code)
            except (ProducerStateError, StorageError) as e:
                err = store_error(error_code(e))
            if err == ErrorCode.NONE:
                err = await groups.written(req.group_id)  # answered once replicated
        for topic, partition, _ in commits:
            errors[(topic, partition)] = err
    return TxnOffsetCommitResponse(
        topics=[
            TxnOffsetCommitResponseTopic(
                name=t.name,
                topic_id=t.topic_id,
                partitions=[
                    TxnOffsetCommitResponsePartition(
                        partition_index=p.partition_index,
                        error_code=errors[(_topic_key(t, unknown_ids), p.partition_index)],
                    )
                    for p in t.partitions
                ],
            )
            for t in req.topics
        ]
    )


def _topic_key(t: TxnOffsetCommitRequestTopic, unknown_ids: set[UUID]) -> str:
    """The topic's name, or its unknown id (v6) as text."""
    return str(t.topic_id) if t.topic_id in unknown_ids else t.name


def _check_member(groups: GroupCoordinator, req: TxnOffsetCommitRequest, version: int, now: int) -> int:
    """The committing member against its group, as Kafka 4.4.0 answers: a classic group's generation
    (KIP-447), a consumer-protocol group's member epoch (GROUP_ID_NOT_FOUND and STALE_MEMBER_EPOCH from v6,
    ILLEGAL_GENERATION before, KIP-1319); no group at all: as if it did not exist."""
    classic = groups.groups.get(req.group_id)
    if classic is not None:
        return classic.validate_commit(req.member_id, req.group_instance_id, req.generation_id, now)
    group = groups.consumer.get(req.group_id) or groups.streams.get(req.group_id)
    err = ErrorCode.GROUP_ID_NOT_FOUND if group is None else group.validate_commit(req.member_id, req.generation_id)
    if version < 6 and err in (ErrorCode.GROUP_ID_NOT_FOUND, ErrorCode.STALE_MEMBER_EPOCH):
        return ErrorCode.ILLEGAL_GENERATION
    return err


# TxnOffsetCommit's answer when the transaction coordinator could not answer now (the client retries)
_OFFSETS_ASK_AGAIN = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS


async def _check_txn(state: BrokerServices, req: TxnOffsetCommitRequest, version: int) -> int:
    """The producer must own the transactional id, in an ongoing transaction with the group's partition;
    v5+ (transactions v2) adds the partition to the transaction. Asked of the coordinator, here or remote."""
    coord = state.txns
    tp = (OFFSETS_TOPIC, state.groups.partition_of(req.group_id))
    if version >= 5 or not coord.owns(req.transactional_id):
        codes = await coord.add_or_verify(
            req.transactional_id, req.producer_id, req.producer_epoch, [tp], add=version >= 5
        )
        code = codes.get(tp, ErrorCode.UNKNOWN_SERVER_ERROR)
        if code in _ASK_AGAIN:
            return _OFFSETS_ASK_AGAIN
        if code == ErrorCode.PRODUCER_FENCED:
            return ErrorCode.INVALID_PRODUCER_EPOCH  # as the local check answers a stale epoch
        return _offsets_code(code, version)
    md = coord.txns.get(req.transactional_id)
    if md is None:
        return ErrorCode.INVALID_PRODUCER_ID_MAPPING
    if md.producer_id != req.producer_id:
        return ErrorCode.INVALID_PRODUCER_ID_MAPPING
    if req.producer_epoch < md.producer_epoch:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    return _offsets_code(md.verify(req.producer_id, req.producer_epoch, tp), version)


def _offsets_code(code: int, version: int) -> int:
    """v4+ (KIP-890 part 1) knows TRANSACTION_ABORTABLE: Kafka 4.3.1's answer for a group partition
    not in the transaction."""
    if code in (ErrorCode.INVALID_TXN_STATE, ErrorCode.TRANSACTION_ABORTABLE):
        return ErrorCode.TRANSACTION_ABORTABLE if version >= 4 else ErrorCode.INVALID_TXN_STATE
    return code


# ---------------------------------------------------------------- DescribeProducers


async def describe_producers(ctx: RequestContext, req: DescribeProducersRequest) -> DescribeProducersResponse:
    state = ctx.state
    topics = []
    denied = authz.denied_topics(ctx, Op.READ, (t.name for t in req.topics))
    for t in req.topics:
        parts = []
        if t.name in denied:
            topics.append(
                TopicResponse(
                    name=t.name,
                    partitions=[
                        PartitionResponse(
                            partition_index=p, error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED, error_message=None
                        )
                        for p in t.partition_indexes
                    ],
                )
            )
            continue
        for p in t.partition_indexes:
            plog = state.replicas.partition_log(t.name, p) if _partition_exists(state, t.name, p) else None
            if plog is None:
                parts.append(
                    PartitionResponse(
                        partition_index=p,
                        error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                        # as Kafka: its text for an unknown topic, null for an unknown partition of a known one
                        error_message=None
                        if state.metadata.topic(t.name) is not None
                        else "This server does not host this topic-partition.",
                    )
                )
                continue
            active = [
                ProducerState(
                    producer_id=e.producer_id,
                    producer_epoch=e.epoch,
                    last_sequence=e.last_seq,
                    last_timestamp=e.last_timestamp,
                    coordinator_epoch=e.coordinator_epoch,
                    current_txn_start_offset=e.txn_first_offset,
                )
                for e in plog.producer_state.producers.values()
            ]
            parts.append(PartitionResponse(partition_index=p, error_code=ErrorCode.NONE, active_producers=active))
        topics.append(TopicResponse(name=t.name, partitions=parts))
    return DescribeProducersResponse(topics=topics)


# ---------------------------------------------------------------- DescribeTransactions / ListTransactions


async def describe_transactions(ctx: RequestContext, req: DescribeTransactionsRequest) -> DescribeTransactionsResponse:
    coord = ctx.state.txns
    out = []
    for txn_id in req.transactional_ids:
        md = coord.txns.get(txn_id)
        if not authz.transactional_id(ctx, Op.DESCRIBE, txn_id):
            out.append(
                TransactionState(error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, transactional_id=txn_id)
            )
            continue
        if not coord.owns(txn_id):
            out.append(TransactionState(error_code=ErrorCode.NOT_COORDINATOR, transactional_id=txn_id))
            continue
        if md is None:
            out.append(TransactionState(error_code=ErrorCode.TRANSACTIONAL_ID_NOT_FOUND, transactional_id=txn_id))
            continue
        by_topic: dict[str, list[int]] = {}
        for t, p in sorted(md.partitions):
            by_topic.setdefault(t, []).append(p)
        for hidden in authz.denied_topics(ctx, Op.DESCRIBE, by_topic):
            del by_topic[hidden]
        out.append(
            TransactionState(
                error_code=ErrorCode.NONE,
                transactional_id=txn_id,
                transaction_state=md.state.value,
                transaction_timeout_ms=md.timeout_ms,
                transaction_start_time_ms=md.start_ms,
                producer_id=md.producer_id,
                producer_epoch=md.producer_epoch,
                topics=[TopicData(topic=t, partitions=ps) for t, ps in by_topic.items()],
            )
        )
    return DescribeTransactionsResponse(transaction_states=out)


_KNOWN_STATES = frozenset(
    {
        "Empty",
        "Ongoing",
        "PrepareCommit",
        "PrepareAbort",
        "CompleteCommit",
        "CompleteAbort",
        "Dead",
        "PrepareEpochFence",
    }
)


async def list_transactions(ctx: RequestContext, req: ListTransactionsRequest) -> ListTransactionsResponse:
    coord = ctx.state.txns
    unknown = [s for s in req.state_filters if s not in _KNOWN_STATES]
    states = {s for s in req.state_filters if s in _KNOWN_STATES}
    pattern: re.Pattern[str] | None = None
    if ctx.version >= 2 and req.transactional_id_pattern:  # KIP-1152; null or empty: every id
        try:
            pattern = re.compile(req.transactional_id_pattern)
        except re.error:
            return ListTransactionsResponse(error_code=ErrorCode.INVALID_REGULAR_EXPRESSION)
    if req.state_filters and not states:
        return ListTransactionsResponse(error_code=ErrorCode.NONE, unknown_state_filters=unknown)
    listed = coord.listed(
        states or None, set(req.producer_id_filters) or None, req.duration_filter if ctx.version >= 1 else -1
    )
    if pattern is not None:  # the whole id must match (Java's Matcher.matches)
        listed = [md for md in listed if pattern.fullmatch(md.transactional_id)]
    listed = authz.filter_items(ctx, Op.DESCRIBE, Res.TRANSACTIONAL_ID, list(listed), lambda md: md.transactional_id)
    return ListTransactionsResponse(
        error_code=ErrorCode.NONE,
        unknown_state_filters=unknown,
        transaction_states=[
            ListedTransaction(
                transactional_id=md.transactional_id, producer_id=md.producer_id, transaction_state=md.state.value
            )
            for md in listed
        ],
    )
