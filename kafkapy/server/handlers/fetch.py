"""Fetch (1): long-polling reads served as file regions (sendfile), with KIP-227 sessions.

The response's `records` are file slices of the segment files; the network
layer sends them with sendfile, so record bytes never enter Python.

Every partition is read through `replicas.partition(...)`: only its leader
answers (else NOT_LEADER_OR_FOLLOWER and the other leader-epoch errors).
Consumers read up to the high watermark (read_committed: the last stable
offset). A fetch with a replica id >= 0 is a follower's: the leader records
the follower's offset first (which may move the high watermark) and serves
it up to the log end offset.

A fetch that must wait (min_bytes not reached) waits on its own partitions
only (`kafkapy.cluster.delayed`): a consumer is woken when one of them moves
its high watermark, a follower also by every append there, so a follower
learns new data one round trip after the leader wrote it.

Fetch v0-3 (clients from before Kafka 0.11, which Kafka 4 no longer serves)
reads as v4 does (read_uncommitted, no sessions) and then, as Kafka 3.x did,
down-converts what it read (`kafkapy.protocol.downconvert`): magic 0
messages for v0-1, magic 1 for v2-3, control batches dropped, aborted
records returned (those versions cannot tell), compressed batches rewrapped
in the same codec. Those responses carry converted bytes, not file slices.
A topic with `compression.type=zstd`, or whose first batch to convert is
zstd, answers UNSUPPORTED_COMPRESSION_TYPE; Kafka 3.x's topic config
`message.downconversion.enable=false`, where the config table has it,
answers UNSUPPORTED_VERSION to consumers. Only whole messages are returned:
up to the client's byte limits or the v2 bytes read if more, at least one
message; a read that converts to nothing (control batches only) reads on,
and waits (max_wait_ms) from after them when they end the log.

Tiered storage (KIP-405, docs/tiered-storage.md): a consumer's offset in [log start, local log
start) of a tiered partition is read from the object store through the RemoteLogManager, as
Kafka's delayed remote fetch: only the first such partition of a request (the others answer
empty, without error, and the client asks again), whole batches up to its partition max bytes,
waiting at most remote.fetch.max.wait.ms (then empty, without error); the fetch answers as soon as
that read is done. A failed remote read answers UNKNOWN_SERVER_ERROR for the partition, as Kafka
does for a RemoteStorageException. A follower's fetch there answers OFFSET_MOVED_TO_TIERED_STORAGE
with the leader's offsets. read_committed: the aborted transactions come from the remote
segments' transaction indexes and then the local ones (`RemoteLogManager.aborted_transactions`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from time import perf_counter
from uuid import UUID

from kafkapy.cluster.partition import FetchIsolation
from kafkapy.config import describe_topic_config
from kafkapy.logging import get_logger
from kafkapy.protocol.api import ApiKey
from kafkapy.protocol.downconvert import DownConverted, down_convert, down_convert_magic
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.errors import UnsupportedCompressionError
from kafkapy.protocol.messages.fetch_request import FetchRequest
from kafkapy.protocol.messages.fetch_response import (
    AbortedTransaction,
    FetchableTopicResponse,
    FetchResponse,
    PartitionData,
)
from kafkapy.protocol.primitives import ZERO_UUID
from kafkapy.security.acl import AclOperation
from kafkapy.server import authz
from kafkapy.server.fetch_sessions import (
    FINAL_EPOCH,
    INITIAL_EPOCH,
    FetchSession,
    SessionError,
    SessionPartition,
)
from kafkapy.server.handler import RequestContext
from kafkapy.server.services import BrokerServices
from kafkapy.server.stats import FETCH_FOLLOWER, BrokerStats
from kafkapy.storage.errors import OffsetMovedToTieredStorageError, OffsetOutOfRangeError
from kafkapy.storage.segment import FileSlice

READ_COMMITTED = 1

log = get_logger(__name__)


@dataclass(slots=True)
class Wanted:
    topic: str | None  # None: unknown topic id
    topic_id: UUID
    partition: int
    fetch_offset: int
    max_bytes: int
    current_leader_epoch: int = -1
    error: int = ErrorCode.NONE  # set before reading (a follower fetch the leader refused)
    remote: tuple[int, bool] | None = None  # tiered: read remotely, with these (max bytes, min one message)


NO_HIGH_WATERMARK = 2**63 - 1  # Fetch v18's HighWatermark when the follower does not send one


def _resolve(state: BrokerServices, name: str, topic_id: UUID, version: int) -> tuple[str | None, UUID]:
    if version >= 13:
        info = state.metadata.topic_by_id(topic_id)
        return (info.name if info else None), topic_id
    info = state.metadata.topic(name)
    return name, (info.topic_id if info else ZERO_UUID)


def _read_partition(
    state: BrokerServices, w: Wanted, limit: int, min_one: bool, isolation: FetchIsolation
) -> PartitionData:
    # On any partition error Kafka answers -1 offsets and empty records.
    pd = PartitionData(
        partition_index=w.partition,
        error_code=ErrorCode.NONE,
        high_watermark=-1,
        last_stable_offset=-1,
        log_start_offset=-1,
        records=b"",
    )
    if w.topic is None:
        pd.error_code = ErrorCode.UNKNOWN_TOPIC_ID
        return pd
    if w.error:
        pd.error_code = w.error
        return pd
    partition = state.replicas.partition(w.topic, w.partition, w.current_leader_epoch)
    if isinstance(partition, int):
        pd.error_code = partition
        return pd
    plog = partition.log
    committed = isolation == FetchIsolation.TXN_COMMITTED
    lso = plog.last_stable_offset
    pd.high_watermark, pd.last_stable_offset, pd.log_start_offset = plog.high_watermark, lso, plog.log_start_offset
    pd.aborted_transactions = [] if committed else None  # as Kafka: null when read_uncommitted
    w.remote = None
    try:
        result = partition.read(w.fetch_offset, limit, isolation, min_one_message=min_one)
        pd.records = result.slices[0] if result.slices else b""
        if committed and result.slices:
            # Aborted transactions overlapping what is returned (at most up to the LSO).
            pd.aborted_transactions = [
                AbortedTransaction(producer_id=a.producer_id, first_offset=a.first_offset)
                for a in plog.aborted_transactions(w.fetch_offset, lso)
            ]
    except OffsetOutOfRangeError:
        pd.error_code = ErrorCode.OFFSET_OUT_OF_RANGE
        pd.high_watermark = pd.last_stable_offset = pd.log_start_offset = -1
        pd.aborted_transactions = None if not committed else []
    except OffsetMovedToTieredStorageError:
        if isolation == FetchIsolation.LOG_END:  # a follower: it rebuilds that range itself (KIP-405)
            pd.error_code = ErrorCode.OFFSET_MOVED_TO_TIERED_STORAGE
        else:
            w.remote = (limit, min_one)
    return pd


def _read_all(
    state: BrokerServices, wanted: list[Wanted], max_bytes: int, isolation: FetchIsolation
) -> tuple[list[PartitionData], int, bool]:
    out: list[PartitionData] = []
    total = 0
    error = False
    for w in wanted:
        remaining = max_bytes - total
        if remaining <= 0 and total > 0:
            out.append(_read_partition(state, w, 0, False, isolation))
        else:
            out.append(_read_partition(state, w, min(w.max_bytes, max(remaining, 0)), total == 0, isolation))
        pd = out[-1]
        if pd.records is not None:
            total += len(pd.records)
        error |= pd.error_code != ErrorCode.NONE
    return out, total, error


def _group(wanted: list[Wanted], datas: list[PartitionData]) -> list[FetchableTopicResponse]:
    topics: list[FetchableTopicResponse] = []
    for w, pd in zip(wanted, datas):
        if not topics or topics[-1].topic_id != w.topic_id or topics[-1].topic != (w.topic or ""):
            topics.append(FetchableTopicResponse(topic=w.topic or "", topic_id=w.topic_id, partitions=[]))
        topics[-1].partitions.append(pd)
    return topics


def _apply_session(
    state: BrokerServices, session: FetchSession, req: FetchRequest, version: int, full: bool
) -> list[Wanted]:
    if full:
        session.partitions.clear()
    for forgotten in req.forgotten_topics_data:
        name, _ = _resolve(state, forgotten.topic, forgotten.topic_id, version)
        for index in forgotten.partitions:
            session.partitions.pop((name or str(forgotten.topic_id), index), None)
    for t in req.topics:
        name, tid = _resolve(state, t.topic, t.topic_id, version)
        for p in t.partitions:
            key = (name or str(t.topic_id), p.partition)
            sp = session.partitions.get(key)
            if sp is None:
                session.partitions[key] = SessionPartition(
                    name, tid, p.fetch_offset, p.partition_max_bytes, p.log_start_offset
                )
            else:
                sp.fetch_offset, sp.max_bytes, sp.log_start_offset = (
                    p.fetch_offset,
                    p.partition_max_bytes,
                    p.log_start_offset,
                )
    return [
        Wanted(sp.topic, sp.topic_id, key[1], sp.fetch_offset, sp.max_bytes) for key, sp in session.partitions.items()
    ]


def _follower_fetch(
    state: BrokerServices, req: FetchRequest, version: int, wanted: list[Wanted], replica_id: int
) -> list[tuple[int, int]]:
    """Let the leader record a follower's fetch; returns each partition's (HW, log start) before it.
    From v18 (KIP-1166) the follower says which high watermark it knows: a fetch from a follower
    behind the leader's then returns at once, without waiting for data."""
    log_starts: dict[tuple[str, int], int] = {}
    known_hw: dict[tuple[str, int], int] = {}
    for t in req.topics:
        name = _resolve(state, t.topic, t.topic_id, version)[0]
        if name is not None:
            for p in t.partitions:
                log_starts[(name, p.partition)] = p.log_start_offset
                if version >= 18 and 0 <= p.high_watermark < NO_HIGH_WATERMARK:
                    known_hw[(name, p.partition)] = p.high_watermark
    replicas = state.replicas
    before: list[tuple[int, int]] = []
    for w in wanted:
        plog = replicas.partition_log(w.topic, w.partition) if w.topic is not None else None
        if plog is None:
            before.append((-1, -1))
        else:
            hw = known_hw.get((w.topic, w.partition), plog.high_watermark) if w.topic is not None else -1
            before.append((hw, plog.log_start_offset))
        if w.topic is not None:
            w.error = replicas.on_follower_fetch(
                w.topic,
                w.partition,
                replica_id,
                w.fetch_offset,
                w.current_leader_epoch,
                log_starts.get((w.topic, w.partition), -1),
            )
    return before


def _open_session(state: BrokerServices, req: FetchRequest, version: int) -> tuple[FetchSession | None, bool]:
    """KIP-227: (the session this fetch uses or None, whether it is incremental); SessionError."""
    if version < 7 or (req.session_id == 0 and req.session_epoch == FINAL_EPOCH):
        return None, False
    cache = state.fetch_sessions
    if req.session_epoch in (INITIAL_EPOCH, FINAL_EPOCH):
        # a full fetch closes the session it names (as Kafka's FetchManager does): the Java
        # client sends (its old id, INITIAL) after an error or a reconnect, and must get a
        # new session, not an epoch error
        if req.session_id != 0:
            cache.remove(req.session_id)
        return (cache.new_session() if req.session_epoch == INITIAL_EPOCH else None), False
    if req.session_id == 0:
        return None, False  # no session: a plain full fetch
    return cache.get(req.session_id, req.session_epoch), True


def _wanted(state: BrokerServices, req: FetchRequest, version: int) -> list[Wanted]:
    wanted = []
    for t in req.topics:
        name, tid = _resolve(state, t.topic, t.topic_id, version)
        for p in t.partitions:
            wanted.append(Wanted(name, tid, p.partition, p.fetch_offset, p.partition_max_bytes, p.current_leader_epoch))
    return wanted


async def _long_poll(
    ctx: RequestContext,
    req: FetchRequest,
    wanted: list[Wanted],
    isolation: FetchIsolation,
    hw_before: list[tuple[int, int]] | None,
) -> list[PartitionData]:
    """Read; until min_bytes are there (or an error, or the wait is over) wait for the partitions
    read to move. A follower also returns as soon as a high watermark or log start it reads moved."""
    state = ctx.state
    max_bytes = req.max_bytes if ctx.version >= 3 else 0x7FFFFFFF
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(req.max_wait_ms, 0) / 1000
    waits = state.replicas.follower_waits if hw_before is not None else state.replicas.consumer_waits
    keys = [(w.topic, w.partition) for w in wanted if w.topic is not None]
    while True:
        datas, total, error = _read_all(state, wanted, max_bytes, isolation)
        remote = next((i for i, w in enumerate(wanted) if w.remote is not None), None)
        if remote is not None:  # answered once the remote read is done, whatever min_bytes says
            waited = perf_counter()
            await _read_remote(state, wanted[remote], datas[remote], isolation)
            if ctx.timer is not None:
                ctx.timer.remote += perf_counter() - waited
            return datas
        if total >= req.min_bytes or error or not wanted:
            return datas
        if hw_before is not None and any(
            (pd.high_watermark, pd.log_start_offset) != before for pd, before in zip(datas, hw_before)
        ):
            return datas  # the follower learns a moved high watermark (or log start) without waiting for data
        remaining = deadline - loop.time()
        if remaining <= 0:
            return datas
        # Registered right after reading, with no await in between: nothing can slip past.
        woken: asyncio.Future[None] = loop.create_future()
        waits.watch(keys, woken)
        waited = perf_counter()
        try:
            await asyncio.wait_for(woken, remaining)
        except TimeoutError:
            pass
        finally:
            waits.unwatch(keys, woken)
            if ctx.timer is not None:
                ctx.timer.remote += perf_counter() - waited
        if ctx.conn is not None and ctx.conn.closed:
            return datas


async def _read_remote(state: BrokerServices, w: Wanted, pd: PartitionData, isolation: FetchIsolation) -> None:
    """Fill `pd` from the object store (see the module docstring)."""
    assert w.topic is not None and w.remote is not None
    limit, min_one = w.remote
    task = state.remote_log
    plog = state.replicas.partition_log(w.topic, w.partition)
    topic_id = task.topic_id(w.topic) if task is not None else None
    counters = state.stats.remote_topic(w.topic) if state.stats is not None else None
    if counters is not None:
        counters.fetch_requests += 1
    committed = isolation == FetchIsolation.TXN_COMMITTED
    try:
        if task is None or plog is None or topic_id is None:
            raise RuntimeError("tiered storage is not enabled on this broker")
        upper = plog.last_stable_offset if committed else plog.high_watermark
        data = await asyncio.wait_for(
            task.read(plog, topic_id, w.fetch_offset, limit, upper, min_one),
            state.config.remote_fetch_max_wait_ms / 1000,
        )
    except TimeoutError:
        log.info("remote fetch timed out", topic=w.topic, partition=w.partition, offset=w.fetch_offset)
        return  # empty, no error: the client fetches again
    except Exception as exc:
        log.warning(
            "remote fetch failed",
            topic=w.topic,
            partition=w.partition,
            offset=w.fetch_offset,
            error=f"{type(exc).__name__}: {exc}",
        )
        if counters is not None:
            counters.fetch_errors += 1
        pd.error_code = ErrorCode.UNKNOWN_SERVER_ERROR
        pd.high_watermark = pd.last_stable_offset = pd.log_start_offset = -1
        pd.aborted_transactions = [] if committed else None
        return
    if not data:
        return  # nothing remote holds the offset any more (expired meanwhile): the next fetch tells
    pd.records = data
    if counters is not None:
        counters.fetch_bytes += len(data)
    if committed:
        try:
            aborted = await task.manager.aborted_transactions(plog, topic_id, w.fetch_offset, upper)
        except Exception as exc:
            log.warning("remote aborted transactions failed", topic=w.topic, partition=w.partition, error=str(exc))
            if counters is not None:
                counters.fetch_errors += 1
            pd.error_code = ErrorCode.UNKNOWN_SERVER_ERROR
            pd.records = b""
            pd.high_watermark = pd.last_stable_offset = pd.log_start_offset = -1
            return
        pd.aborted_transactions = [
            AbortedTransaction(producer_id=a.producer_id, first_offset=a.first_offset) for a in aborted
        ]


def _changed_only(
    session: FetchSession, wanted: list[Wanted], datas: list[PartitionData]
) -> tuple[list[Wanted], list[PartitionData]]:
    """An incremental response carries only partitions with records, an error or new offsets."""
    keep_w, keep_d = [], []
    for w, pd in zip(wanted, datas):
        sp = session.partitions[(w.topic or str(w.topic_id), w.partition)]
        if (
            (pd.records is not None and len(pd.records) > 0)
            or pd.error_code != ErrorCode.NONE
            or (pd.high_watermark, pd.last_stable_offset, pd.log_start_offset)
            != (sp.high_watermark, sp.last_stable_offset, sp.last_log_start)
        ):
            keep_w.append(w)
            keep_d.append(pd)
    return keep_w, keep_d


# --- Fetch v0-3: down-conversion to magic 0/1 ------------------------------------

DOWNCONVERSION_CONFIG = "message.downconversion.enable"
_MAX_EMPTY_READS = 64  # reads past dropped control batches before answering empty


def _legacy_error(partition: int, code: int) -> PartitionData:
    # Kafka's partitionResponse(tp, error): -1 offsets, no records
    return PartitionData(
        partition_index=partition,
        error_code=code,
        high_watermark=-1,
        last_stable_offset=-1,
        log_start_offset=-1,
        records=b"",
    )


def _downconversion_enabled(state: BrokerServices, overrides: dict[str, str]) -> bool:
    # Kafka 3.x's switch (gone in Kafka 4, which has no down-conversion): on unless the config says false
    described = describe_topic_config(state.config, overrides, [DOWNCONVERSION_CONFIG])
    return not described or described[0].value != "false"


def _records_bytes(records: object) -> bytes:
    if isinstance(records, FileSlice):
        return records.read_bytes()
    if isinstance(records, (bytes, bytearray, memoryview)):
        return bytes(records)
    return b""


def _down_convert_all(
    state: BrokerServices,
    req: FetchRequest,
    version: int,
    wanted: list[Wanted],
    datas: list[PartitionData],
    isolation: FetchIsolation,
    follower: bool,
) -> tuple[list[PartitionData], list[int]]:
    """Each partition converted, and where the next read may start for those whose read held
    only dropped batches (else -1)."""
    remaining = req.max_bytes if version >= 3 else 0x7FFFFFFF
    out = []
    skips = []
    for w, read in zip(wanted, datas):
        allowed = max(0, min(w.max_bytes, remaining))
        converted, skip = _down_convert(state, w, read, version, isolation, follower, allowed)
        if isinstance(converted.records, bytes):
            remaining -= len(converted.records)
        out.append(converted)
        skips.append(skip)
    return out, skips


async def _legacy_poll(
    ctx: RequestContext,
    req: FetchRequest,
    wanted: list[Wanted],
    isolation: FetchIsolation,
    hw_before: list[tuple[int, int]] | None,
) -> list[PartitionData]:
    """`_long_poll` and down-conversion. min_bytes counts the v2 bytes read (as Kafka's did), so a
    read of transaction markers only would answer at once with nothing and the old consumer would
    ask again at once, in a loop: instead the wait goes on from after the markers."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(req.max_wait_ms, 0) / 1000
    while True:
        read = await _long_poll(ctx, req, wanted, isolation, hw_before)
        datas, skips = _down_convert_all(ctx.state, req, ctx.version, wanted, read, isolation, hw_before is not None)
        remaining = deadline - loop.time()
        if (
            any(isinstance(pd.records, bytes) and pd.records for pd in datas)
            or any(pd.error_code != ErrorCode.NONE for pd in datas)
            or all(s < 0 for s in skips)
            or remaining <= 0
            or (ctx.conn is not None and ctx.conn.closed)
        ):
            return datas
        for w, skip in zip(wanted, skips):
            if skip >= 0:
                w.fetch_offset = skip
        req.max_wait_ms = max(1, int(remaining * 1000))


def _down_convert(
    state: BrokerServices,
    w: Wanted,
    pd: PartitionData,
    version: int,
    isolation: FetchIsolation,
    follower: bool,
    allowed: int,
) -> tuple[PartitionData, int]:
    """Kafka's maybeConvertFetchedData for Fetch v0-3 (see the module docstring). The converted
    messages fill up to `allowed` bytes (the client's limits left) or the v2 bytes read if more.
    Also returns the offset after the batches read when all were dropped (else -1)."""
    magic = down_convert_magic(version)
    if magic is None or w.topic is None:
        return pd, -1
    info = state.metadata.topic(w.topic)
    plog = state.replicas.partition_log(w.topic, w.partition)
    if info is None or plog is None:
        return pd, -1  # no local log: nothing to convert, the read's error stands
    if plog.config.compression_type == "zstd":
        return _legacy_error(w.partition, ErrorCode.UNSUPPORTED_COMPRESSION_TYPE), -1
    if not follower and not _downconversion_enabled(state, info.configs):
        return _legacy_error(w.partition, ErrorCode.UNSUPPORTED_VERSION), -1
    source = _records_bytes(pd.records)
    if not source:
        return pd, -1
    budget = max(len(source), allowed)
    try:
        conv = down_convert(source, magic, w.fetch_offset, budget)
        conv = _read_past_dropped(state, w, conv, magic, budget, isolation)
    except UnsupportedCompressionError:
        return _legacy_error(w.partition, ErrorCode.UNSUPPORTED_COMPRESSION_TYPE), -1
    pd.records = conv.data
    skip = conv.next_offset if not conv.data and conv.next_offset > w.fetch_offset else -1
    return pd, skip


def _read_past_dropped(
    state: BrokerServices, w: Wanted, conv: DownConverted, magic: int, budget: int, isolation: FetchIsolation
) -> DownConverted:
    """A read of control batches only converts to nothing: read on from after them, so that an
    old consumer (which fetches from its last message + 1) is not stuck before them."""
    assert w.topic is not None
    for _ in range(_MAX_EMPTY_READS):
        if conv.data or conv.next_offset < 0:
            return conv
        partition = state.replicas.partition(w.topic, w.partition)
        if isinstance(partition, int):
            return conv
        try:
            result = partition.read(conv.next_offset, budget, isolation, min_one_message=True)
        except (OffsetOutOfRangeError, OffsetMovedToTieredStorageError):
            return conv
        source = b"".join(s.read_bytes() for s in result.slices)
        if not source:
            return conv
        conv = down_convert(source, magic, conv.next_offset, budget)
    return conv


def _authorize(ctx: RequestContext, wanted: list[Wanted], replica_id: int) -> bool:
    """Kafka's checks: a follower needs ClusterAction on the cluster (False: refuse it whole), a
    consumer Read on each topic; refused partitions answer TOPIC_AUTHORIZATION_FAILED (an unknown
    topic id stays UNKNOWN_TOPIC_ID: there is no name to check)."""
    if replica_id >= 0:
        if authz.cluster(ctx, AclOperation.CLUSTER_ACTION):
            return True
        for w in wanted:
            if w.topic is not None:
                w.error = ErrorCode.TOPIC_AUTHORIZATION_FAILED
        return False
    allowed = authz.filter_topics(ctx, AclOperation.READ, {w.topic for w in wanted if w.topic is not None})
    if allowed is not None:
        for w in wanted:
            if w.topic is not None and w.topic not in allowed:
                w.error = ErrorCode.TOPIC_AUTHORIZATION_FAILED
    return True


def _count(stats: BrokerStats, wanted: list[Wanted], datas: list[PartitionData], *, follower: bool) -> None:
    """BrokerTopicMetrics of one fetch: each partition read, its bytes (BytesOut to consumers,
    ReplicationBytesOut to followers, all topics), its error; unknown topics count in the totals only."""
    for w, pd in zip(wanted, datas):
        code = pd.error_code
        known = w.topic is not None and code not in (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.UNKNOWN_TOPIC_ID)
        counters = stats.topic(w.topic) if known and w.topic is not None else stats.gone
        counters.fetch_requests += 1
        if code != ErrorCode.NONE:
            counters.failed_fetch += 1
            stats.error(FETCH_FOLLOWER if follower else ApiKey.FETCH, code)
        elif pd.records is not None:
            if follower:
                stats.replication_bytes_out += len(pd.records)
            else:
                counters.bytes_out += len(pd.records)


async def handle(ctx: RequestContext, req: FetchRequest) -> FetchResponse:
    state = ctx.state
    version = ctx.version
    try:
        session, incremental = _open_session(state, req, version)
    except SessionError as e:
        return FetchResponse(error_code=e.code, session_id=0, responses=[])
    if session is not None:
        wanted = _apply_session(state, session, req, version, full=not incremental)
        if incremental:  # a new session already expects epoch 1 next
            session.epoch = session.epoch + 1 if session.epoch < 0x7FFFFFFF else 1
    else:
        wanted = _wanted(state, req, version)
    replica_id = req.replica_state.replica_id if version >= 15 else req.replica_id
    if state.authorizer is not None and not _authorize(ctx, wanted, replica_id):
        # a follower without ClusterAction: every partition refused, nothing recorded
        datas = [_read_partition(state, w, 0, False, FetchIsolation.HIGH_WATERMARK) for w in wanted]
        return FetchResponse(
            error_code=ErrorCode.NONE,
            session_id=session.session_id if session is not None else 0,
            responses=_group(wanted, datas),
        )
    hw_before: list[tuple[int, int]] | None = None
    if replica_id >= 0:
        isolation = FetchIsolation.LOG_END
        hw_before = _follower_fetch(state, req, version, wanted, replica_id)
    elif req.isolation_level == READ_COMMITTED:
        isolation = FetchIsolation.TXN_COMMITTED
    else:
        isolation = FetchIsolation.HIGH_WATERMARK
    if version <= 3:
        datas = await _legacy_poll(ctx, req, wanted, isolation, hw_before)
    else:
        datas = await _long_poll(ctx, req, wanted, isolation, hw_before)
    if state.stats is not None:
        _count(state.stats, wanted, datas, follower=replica_id >= 0)
    if session is not None:
        if incremental:
            wanted, datas = _changed_only(session, wanted, datas)
        for w, pd in zip(wanted, datas):
            sp = session.partitions.get((w.topic or str(w.topic_id), w.partition))
            if sp is not None:
                sp.high_watermark, sp.last_stable_offset, sp.last_log_start = (
                    pd.high_watermark,
                    pd.last_stable_offset,
                    pd.log_start_offset,
                )
    return FetchResponse(
        error_code=ErrorCode.NONE,
        session_id=session.session_id if session is not None else 0,
        responses=_group(wanted, datas),
    )
