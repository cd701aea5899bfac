"""Produce (0): validate batches as Kafka's LogValidator does, append, acknowledge.

Each batch is checked by its header and CRC-32C, then record by record
(kafkapy/storage/log_validator.py: structure, count, offset deltas, keys on
compacted topics, timestamps; the header's max timestamp rewritten, the
batch recompressed to the topic's compression.type) without copying an
uncompressed batch kept as sent; the log then rewrites base offsets in
place and appends the bytes. Legacy (magic 0/1) message sets from old
clients are converted to one v2 batch first. A refused append answers
Kafka's code (with Produce v8+ record_errors where Kafka names records) and
logs one line.

Idempotent producers (producer id >= 0) are checked by the partition's
producer state, per batch header (storage/producer_state.py): a retried
batch is acknowledged with its original base offset and not written again;
sequence gaps give OUT_OF_ORDER_SEQUENCE_NUMBER and stale epochs
INVALID_PRODUCER_EPOCH, as Kafka >= 2.7 answers produce requests.
Transactional batches are accepted only for a partition in the producer's
ongoing transaction (asked of the transaction coordinator, here or on
another broker, as KIP-890's verification does; else INVALID_TXN_STATE,
INVALID_PRODUCER_EPOCH for a fenced epoch, NOT_ENOUGH_REPLICAS when the
coordinator cannot answer now); from Produce v12 (transactions v2) the
coordinator adds the partition to the transaction instead. Control batches
from clients get INVALID_RECORD.

Only the partition's leader appends (`replicas.partition`, else its error:
NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION); acks=all is refused
with NOT_ENOUGH_REPLICAS before appending when the ISR is below
min.insync.replicas, and answered once the high watermark passes the
appended batches (or with the error `wait_replicated` gives). On a single
broker the ISR is the broker itself and the answer comes at once.
"""

from __future__ import annotations

import asyncio
from struct import Struct
from time import perf_counter
from uuid import UUID

from kafkapy.clock import now_ms
from kafkapy.cluster.partition import NotEnoughReplicasError, Partition
from kafkapy.logging import get_logger
from kafkapy.protocol import compression, legacy, records
from kafkapy.protocol.api import ApiKey
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.errors import CorruptRecordError, DecodeError, InvalidRecordError, RecordTooLargeError
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest
from kafkapy.protocol.messages.produce_response import (
    BatchIndexAndErrorMessage,
    PartitionProduceResponse,
    ProduceResponse,
    TopicProduceResponse,
)
from kafkapy.security.acl import AclOperation
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext
from kafkapy.server.services import BrokerServices
from kafkapy.server.stats import BrokerStats
from kafkapy.storage.errors import LogDirError, StorageError
from kafkapy.storage.log_validator import BatchRejected, validate_for_append
from kafkapy.storage.producer_state import (
    InvalidProducerEpochError,
    InvalidSequenceError,
    InvalidTxnStateError,
    OutOfOrderSequenceError,
    ProducerStateError,
)

log = get_logger(__name__)

_LEGACY_MAX_UNCOMPRESSED = 64 * 1024 * 1024
_PID_EPOCH = Struct(">qh")  # a v2 batch header's producer id and epoch
_PRODUCER_STATE_ERRORS: dict[type[ProducerStateError], ErrorCode] = {
    OutOfOrderSequenceError: ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
    InvalidProducerEpochError: ErrorCode.INVALID_PRODUCER_EPOCH,
    InvalidSequenceError: ErrorCode.INVALID_RECORD,
    InvalidTxnStateError: ErrorCode.INVALID_TXN_STATE,
}


def _writable(data: memoryview) -> bytearray | memoryview:
    """A writable view of the records: in place when the frame allows it."""
    return data if not data.readonly else bytearray(data)


def _rejected(
    resp: PartitionProduceResponse, code: ErrorCode, topic: str, client_id: str, reason: str, level: str = "info"
) -> tuple[PartitionProduceResponse, None, int]:
    """Answer ``code`` for the partition and log why, once: at error level where Kafka's
    ReplicaManager logs the failure (validation errors), else at info (Kafka logs nothing)."""
    resp.error_code = code
    emit = log.error if level == "error" else log.info
    emit("produce rejected", topic=topic, partition=resp.index, client_id=client_id, error=code.name, reason=reason)
    return resp, None, -1


def _first_batch_codec(data: bytes | bytearray | memoryview) -> int:
    """The compression codec in the first v2 batch's attributes (none for other magics)."""
    if len(data) > records.ATTRIBUTES_OFFSET + 1 and data[records.MAGIC_OFFSET] == records.MAGIC_V2:
        return data[records.ATTRIBUTES_OFFSET + 1] & records.COMPRESSION_MASK
    return compression.NONE


def append_partition(
    state: BrokerServices,
    topic: str,
    part: PartitionProduceData,
    version: int,
    transactional_id: str | None = None,
    acks: int = 1,
    client_id: str = "",
    txn_error: int | None = None,
) -> tuple[PartitionProduceResponse, Partition | None, int]:
    """Validate and append one partition's records: (response, partition, end offset) where the
    partition is None when nothing was appended. `txn_error`: the coordinator's answer for a
    transactional batch, asked beforehand (`check_produce`); None: asked here if needed."""
    resp = PartitionProduceResponse(index=part.index, error_code=ErrorCode.NONE, base_offset=-1)
    partition = state.replicas.partition(topic, part.index)
    if isinstance(partition, int):
        resp.error_code = partition
        return resp, None, -1
    if acks == -1:
        try:
            partition.check_min_isr()
        except NotEnoughReplicasError as e:
            resp.error_message = str(e)
            return _rejected(resp, ErrorCode.NOT_ENOUGH_REPLICAS, topic, client_id, str(e))
    data = part.records
    if data is None or len(data) == 0:
        resp.error_message = "Produce request has no records"
        return _rejected(resp, ErrorCode.INVALID_RECORD, topic, client_id, resp.error_message)
    if version < 7 and _first_batch_codec(data) == compression.ZSTD:
        # zstd came with Produce v7 (KIP-110); Kafka checks the first batch before its size and CRC
        return _rejected(resp, ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, topic, client_id, "zstd before Produce v7")
    cfg = partition.log.config
    now = now_ms()
    try:
        if legacy.is_legacy(data):
            if version >= 3:
                # as Kafka's ProduceRequest.validateRecords: INVALID_RECORD, no log start offset
                reason = f"Produce requests with version {version} are only allowed to contain record batches with magic version 2"
                return _rejected(resp, ErrorCode.INVALID_RECORD, topic, client_id, reason)
            buf: bytearray | memoryview = bytearray(
                legacy.convert_to_v2(data, timestamp_now_ms=None, max_uncompressed=_LEGACY_MAX_UNCOMPRESSED)
            )
        else:
            buf = _writable(data)
        # max.message.bytes bounds each batch's whole size, its 12-byte log overhead included (as Kafka)
        headers = records.validate_records(buf, cfg.max_message_bytes)
    except InvalidRecordError as e:
        # intact bytes, inconsistent fields: Kafka's LogValidator answers with the log start offset
        resp.log_start_offset = partition.log_start_offset
        return _rejected(resp, ErrorCode.INVALID_RECORD, topic, client_id, str(e))
    except RecordTooLargeError as e:
        return _rejected(resp, ErrorCode.MESSAGE_TOO_LARGE, topic, client_id, str(e))
    except (CorruptRecordError, DecodeError) as e:
        resp.error_message = str(e)
        return _rejected(resp, ErrorCode.CORRUPT_MESSAGE, topic, client_id, str(e))
    if version >= 3 and len(headers) != 1:
        resp.error_message = "Compressed outer record has more than one batch" if len(headers) > 1 else "no batch"
        return _rejected(resp, ErrorCode.INVALID_RECORD, topic, client_id, resp.error_message)
    for h in headers:
        if h.is_transactional and not h.is_control and h.producer_id >= 0:
            if txn_error is not None:
                if txn_error != ErrorCode.NONE:
                    resp.error_message = (
                        "The transaction coordinator could not be asked about the partition"
                        if txn_error == ErrorCode.NOT_ENOUGH_REPLICAS
                        else "The partition is not part of the producer's ongoing transaction"
                    )
                    return _rejected(resp, ErrorCode(txn_error), topic, client_id, resp.error_message)
                continue
            from kafkapy.server.handlers.transactions import verify_produce

            err = verify_produce(state, transactional_id, topic, part.index, h)
            if err != ErrorCode.NONE:
                code = (
                    ErrorCode.INVALID_PRODUCER_EPOCH
                    if err == ErrorCode.INVALID_PRODUCER_EPOCH
                    else ErrorCode.INVALID_TXN_STATE
                )
                resp.error_message = "The partition is not part of the producer's ongoing transaction"
                return _rejected(resp, code, topic, client_id, resp.error_message)
    try:
        # Kafka's LogValidator: every record walked, headers fixed, maybe recompressed
        buf = validate_for_append(buf, headers, partition.validation_policy, now, f"{topic}-{part.index}")
    except BatchRejected as e:
        resp.log_start_offset = partition.log_start_offset
        if e.per_record:
            resp.record_errors = [
                BatchIndexAndErrorMessage(batch_index=i, batch_index_error_message=m) for i, m in e.errors
            ]
            resp.error_message = e.message
        return _rejected(resp, ErrorCode(e.code), topic, client_id, e.message, level="error")
    try:
        # The log assigns offsets in place and stamps LogAppendTime when the topic asks for it.
        result = partition.append(buf)
    except ProducerStateError as e:
        resp.error_message = str(e)
        code = _PRODUCER_STATE_ERRORS.get(type(e), ErrorCode.UNKNOWN_SERVER_ERROR)
        # as Kafka's ReplicaManager: a fenced epoch at info, the other failures at error
        level = "info" if code == ErrorCode.INVALID_PRODUCER_EPOCH else "error"
        return _rejected(resp, code, topic, client_id, str(e), level=level)
    except LogDirError as e:
        # a full or failing disk: the log dir's state change is logged once (LogDirHealth), not each produce
        resp.error_code = ErrorCode.KAFKA_STORAGE_ERROR
        where = next((d for d in state.logs.data_dirs if e.path.startswith(str(d))), state.data_dir)
        resp.error_message = f"log dir {where} refuses writes: {e.detail}"
        return resp, None, -1
    except StorageError as e:
        log.error("append failed", topic=topic, partition=part.index, error=str(e))
        resp.error_code = ErrorCode.KAFKA_STORAGE_ERROR
        return resp, None, -1
    resp.base_offset = result.base_offset
    resp.log_append_time_ms = result.log_append_time
    resp.log_start_offset = partition.log_start_offset
    return resp, partition, result.last_offset + 1


def _first_batch_transactional(data: bytes | bytearray | memoryview | None) -> bool:
    """The transactional bit of the first v2 batch's attributes (Kafka looks at the first batch)."""
    return (
        data is not None
        and len(data) > records.ATTRIBUTES_OFFSET + 1
        and data[records.MAGIC_OFFSET] == records.MAGIC_V2
        and bool(data[records.ATTRIBUTES_OFFSET + 1] & records.TRANSACTIONAL_MASK)
    )


def _txn_batches(req: ProduceRequest) -> dict[tuple[str, int], tuple[int, int]]:
    """Each partition whose first batch is transactional: its producer id and epoch."""
    out: dict[tuple[str, int], tuple[int, int]] = {}
    for t in req.topic_data:
        for p in t.partition_data:
            data = p.records
            if _first_batch_transactional(data) and data is not None and len(data) >= records.RECORDS_OFFSET:
                pid, epoch = _PID_EPOCH.unpack_from(data, records.PRODUCER_ID_OFFSET)
                if pid >= 0:
                    out[(t.name, p.index)] = (pid, epoch)
    return out


def _refuse_all(ctx: RequestContext, req: ProduceRequest, code: ErrorCode, reason: str) -> ProduceResponse | None:
    """Every partition of the request answers ``code``; nothing is appended."""
    out = []
    for t in req.topic_data:
        parts = []
        for p in t.partition_data:
            resp = PartitionProduceResponse(index=p.index, base_offset=-1)
            parts.append(_rejected(resp, code, t.name, ctx.client_id, reason)[0])
        out.append(TopicProduceResponse(name=t.name, topic_id=t.topic_id, partition_responses=parts))
    return ProduceResponse(responses=out) if req.acks != 0 else None


async def handle(ctx: RequestContext, req: ProduceRequest) -> ProduceResponse | None:
    state = ctx.state
    acks = req.acks
    unknown_ids = _resolve_topic_ids(state, req) if ctx.version >= 13 else None
    if (
        ctx.version >= 3
        and req.transactional_id is None
        and any(_first_batch_transactional(p.records) for t in req.topic_data for p in t.partition_data)
    ):
        # Kafka refuses the whole request, as it does a transactional id the client may not use
        return _refuse_all(
            ctx, req, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "transactional batch without a transactional id"
        )
    denied: set[str] | None = None
    if state.authorizer is not None:  # no authorizer: no check at all
        denied = _denied_topics(ctx, req)
        if denied is None:
            return _refuse_all(
                ctx, req, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "not authorized for the transactional id"
            )
    txn_errors: dict[tuple[str, int], int] = {}
    if ctx.version >= 3 and req.transactional_id is not None:
        batches = _txn_batches(req)
        if denied:
            batches = {tp: b for tp, b in batches.items() if tp[0] not in denied}
        batches = {tp: b for tp, b in batches.items() if not isinstance(state.replicas.partition(*tp), int)}
        if batches:
            from kafkapy.server.handlers.transactions import check_produce

            txn_errors = await check_produce(state, req.transactional_id, ctx.version, batches)
    out: list[TopicProduceResponse] = []
    missing: list[TopicProduceResponse] = []  # unknown topic ids: answered after the others (as Kafka)
    waits: list[tuple[PartitionProduceResponse, Partition, int]] = []
    stats = state.stats
    for t in req.topic_data:
        parts = []
        if unknown_ids and t.topic_id in unknown_ids:
            parts = [
                PartitionProduceResponse(index=p.index, error_code=ErrorCode.UNKNOWN_TOPIC_ID, base_offset=-1)
                for p in t.partition_data
            ]
            if stats is not None:
                for _ in parts:
                    stats.error(ApiKey.PRODUCE, ErrorCode.UNKNOWN_TOPIC_ID)
            missing.append(TopicProduceResponse(topic_id=t.topic_id, partition_responses=parts))
            continue
        if denied and t.name in denied:
            parts = [
                PartitionProduceResponse(index=p.index, error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED, base_offset=-1)
                for p in t.partition_data
            ]
            out.append(TopicProduceResponse(name=t.name, topic_id=t.topic_id, partition_responses=parts))
            continue
        for p in t.partition_data:
            if acks not in (0, 1, -1):
                parts.append(PartitionProduceResponse(index=p.index, error_code=ErrorCode.INVALID_REQUIRED_ACKS))
                continue
            r, partition, end = append_partition(
                state, t.name, p, ctx.version, req.transactional_id if ctx.version >= 3 else None, acks, ctx.client_id,
                txn_errors.get((t.name, p.index)),
            )  # fmt: skip
            parts.append(r)
            if stats is not None:  # BrokerTopicMetrics, inline for an append (a call costs as much)
                if partition is None:
                    _count_refused(stats, t.name, p, r)
                else:
                    counters = stats.topics.get(t.name) or stats.topic(t.name)
                    counters.produce_requests += 1
                    counters.messages_in += end - r.base_offset
                    counters.bytes_in += len(p.records) if p.records is not None else 0
            if partition is not None and acks == -1:
                waits.append((r, partition, end))
        out.append(TopicProduceResponse(name=t.name, topic_id=t.topic_id, partition_responses=parts))
    out.extend(missing)
    if waits:
        timer = ctx.timer
        if timer is None:
            await _await_replication(waits, req.timeout_ms)
        else:
            waited = perf_counter()
            await _await_replication(waits, req.timeout_ms)
            timer.remote += perf_counter() - waited
    if acks == 0:
        return None
    return ProduceResponse(responses=out)


def _resolve_topic_ids(state: BrokerServices, req: ProduceRequest) -> set[UUID]:
    """v13 names topics by id (KIP-516): each known id's name is filled in; the unknown ids returned
    (their partitions answer UNKNOWN_TOPIC_ID)."""
    unknown: set[UUID] = set()
    for t in req.topic_data:
        info = state.metadata.topic_by_id(t.topic_id)
        if info is None:
            unknown.add(t.topic_id)
        else:
            t.name = info.name
    return unknown


def _count_refused(stats: BrokerStats, topic: str, data: PartitionProduceData, r: PartitionProduceResponse) -> None:
    """BrokerTopicMetrics of a partition's refused append; an unknown topic's counts in the totals only."""
    size = len(data.records) if data.records is not None else 0
    counters = stats.gone if r.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION else stats.topic(topic)
    counters.produce_requests += 1
    counters.failed_produce += 1
    counters.bytes_rejected += size
    stats.error(ApiKey.PRODUCE, r.error_code)


def _denied_topics(ctx: RequestContext, req: ProduceRequest) -> set[str] | None:
    """Kafka's checks: Write on the transactional id for transactional batches (None: the whole request
    answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED), Write on each topic (the topics returned answer
    TOPIC_AUTHORIZATION_FAILED for their partitions, whether they exist or not). An idempotent producer got its id through
    InitProducerId, which checked IdempotentWrite (KIP-679), so the batches need nothing more."""
    if (
        ctx.version >= 3
        and req.transactional_id is not None
        and any(_first_batch_transactional(p.records) for t in req.topic_data for p in t.partition_data)
        and not authz.transactional_id(ctx, AclOperation.WRITE, req.transactional_id)
    ):
        return None
    return authz.denied_topics(ctx, AclOperation.WRITE, (t.name for t in req.topic_data))


async def _await_replication(waits: list[tuple[PartitionProduceResponse, Partition, int]], timeout_ms: int) -> None:
    """acks=all: answer the partitions already replicated at once (all of them on a single broker),
    wait for the others' high watermarks together."""
    pending: list[tuple[PartitionProduceResponse, Partition, int]] = []
    for r, partition, end in waits:
        code = partition.replicated(end)
        if code is None:
            pending.append((r, partition, end))
        elif code != ErrorCode.NONE:
            r.error_code = code
    if not pending:
        return
    codes = await asyncio.gather(*(partition.wait_replicated(end, timeout_ms) for _, partition, end in pending))
    for (r, _, _), code in zip(pending, codes):
        if code != ErrorCode.NONE:
            r.error_code = code
