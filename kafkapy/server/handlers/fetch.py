"""Fetch (1): long-polling reads served as file regions (sendfile), with KIP-227 sessions.

The response's `records` are file slices of the segment files; the network
layer sends them with sendfile, so record bytes never enter Python.

A fetch with a replica id >= 0 is a follower's: it is served up to the log
end offset, not the high watermark. In a cluster (`state.replicas` set) the
leader records the follower's offset first (which may move the high
watermark), answers NOT_LEADER_OR_FOLLOWER where it does not lead, and
answers a waiting follower fetch as soon as a high watermark it reads moves;
consumers read only from the leader, up to the high watermark (or LSO).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.fetch_request import FetchRequest
from kafkapy.protocol.messages.fetch_response import (
    AbortedTransaction,
    FetchableTopicResponse,
    FetchResponse,
    PartitionData,
)
from kafkapy.protocol.primitives import ZERO_UUID
from kafkapy.server.fetch_sessions import (
    FINAL_EPOCH,
    INITIAL_EPOCH,
    FetchSession,
    FetchSessionCache,
    SessionError,
    SessionPartition,
)
from kafkapy.server.handler import RequestContext
from kafkapy.server.state import BrokerState
from kafkapy.storage.errors import OffsetOutOfRangeError

READ_COMMITTED = 1


@dataclass(slots=True)
class Wanted:
    topic: str | None  # None: unknown topic id
    topic_id: UUID
    partition: int
    fetch_offset: int
    max_bytes: int
    current_leader_epoch: int = -1
    error: int = ErrorCode.NONE  # set before reading (a follower fetch the leader refused)


def session_cache(state: BrokerState) -> FetchSessionCache:
    cache = state.extras.get("fetch_sessions")
    if cache is None:
        cache = state.extras["fetch_sessions"] = FetchSessionCache(
            max_sessions=int(state.config.get("max.incremental.fetch.session.cache.slots") or 1000)
        )
    return cache


def _resolve(state: BrokerState, name: str, topic_id: UUID, version: int) -> tuple[str | None, UUID]:
    if version >= 13:
        info = state.metadata.topic_by_id(topic_id)
        return (info.name if info else None), topic_id
    info = state.metadata.topic(name)
    return name, (info.topic_id if info else ZERO_UUID)


def _read_partition(
    state: BrokerState, w: Wanted, limit: int, min_one: bool, committed: bool, follower: bool = False
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
    plog = state.partition_log(w.topic, w.partition)
    replicas = state.replicas
    if replicas is not None:
        code = w.error or replicas.leader_check(w.topic, w.partition, w.current_leader_epoch)
        if code != ErrorCode.NONE or plog is None:
            pd.error_code = code or ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            return pd
    else:
        if plog is None:
            pd.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            return pd
        epoch = state.leader_epoch(w.topic, w.partition)
        if w.current_leader_epoch >= 0 and w.current_leader_epoch != epoch:
            pd.error_code = (
                ErrorCode.FENCED_LEADER_EPOCH if w.current_leader_epoch < epoch else ErrorCode.UNKNOWN_LEADER_EPOCH
            )
            return pd
    hw = plog.high_watermark
    lso = state.last_stable_offset(plog)
    pd.high_watermark, pd.last_stable_offset, pd.log_start_offset = hw, lso, plog.log_start_offset
    pd.aborted_transactions = [] if committed else None  # as Kafka: null when read_uncommitted
    try:
        upper = None if follower else (lso if committed else hw)  # followers read up to the log end
        result = plog.read(w.fetch_offset, limit, max_offset=upper, min_one_message=min_one)
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
    return pd


def _read_all(
    state: BrokerState, wanted: list[Wanted], max_bytes: int, committed: bool, follower: bool = False
) -> tuple[list[PartitionData], int, bool]:
    out: list[PartitionData] = []
    total = 0
    error = False
    for w in wanted:
        remaining = max_bytes - total
        if remaining <= 0 and total > 0:
            out.append(_read_partition(state, w, 0, False, committed, follower))
        else:
            out.append(_read_partition(state, w, min(w.max_bytes, max(remaining, 0)), total == 0, committed, follower))
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
    state: BrokerState, session: FetchSession, req: FetchRequest, version: int, full: bool
) -> list[Wanted]:
    if full:
        session.partitions.clear()
    for t in req.forgotten_topics_data:
        name, _ = _resolve(state, t.topic, t.topic_id, version)
        for p in t.partitions:
            session.partitions.pop((name or str(t.topic_id), p), None)
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
    state: BrokerState, wanted: list[Wanted], replica_id: int, log_starts: dict[tuple[str, int], int]
) -> list[tuple[int, int]]:
    """Let the leader record a follower's fetch; returns each partition's (HW, log start) before it."""
    replicas = state.replicas
    before: list[tuple[int, int]] = []
    for w in wanted:
        plog = state.partition_log(w.topic, w.partition) if w.topic is not None else None
        before.append((plog.high_watermark, plog.log_start_offset) if plog is not None else (-1, -1))
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


async def handle(ctx: RequestContext, req: FetchRequest) -> FetchResponse:
    state = ctx.state
    version = ctx.version
    committed = req.isolation_level == READ_COMMITTED
    cache = session_cache(state)
    session: FetchSession | None = None
    incremental = False
    if version >= 7 and not (req.session_id == 0 and req.session_epoch == FINAL_EPOCH):
        try:
            if req.session_epoch in (INITIAL_EPOCH, FINAL_EPOCH):
                # a full fetch closes the session it names (as Kafka's FetchManager
                # does): the Java client sends (its old id, INITIAL) after an error
                # or a reconnect, and must get a new session, not an epoch error
                if req.session_id != 0:
                    cache.remove(req.session_id)
                if req.session_epoch == INITIAL_EPOCH:
                    session = cache.new_session()
            elif req.session_id == 0:
                pass  # no session: a plain full fetch
            else:
                session = cache.get(req.session_id, req.session_epoch)
                incremental = True
        except SessionError as e:
            return FetchResponse(error_code=e.code, session_id=0, responses=[])
    if session is not None:
        wanted = _apply_session(state, session, req, version, full=not incremental)
        if incremental:  # a new session already expects epoch 1 next
            session.epoch = session.epoch + 1 if session.epoch < 0x7FFFFFFF else 1
    else:
        wanted = []
        for t in req.topics:
            name, tid = _resolve(state, t.topic, t.topic_id, version)
            for p in t.partitions:
                wanted.append(
                    Wanted(name, tid, p.partition, p.fetch_offset, p.partition_max_bytes, p.current_leader_epoch)
                )
    replica_id = req.replica_state.replica_id if version >= 15 else req.replica_id
    follower = replica_id >= 0
    hw_before: list[tuple[int, int]] | None = None
    if follower and state.replicas is not None:
        log_starts: dict[tuple[str, int], int] = {}
        for t in req.topics:
            name = _resolve(state, t.topic, t.topic_id, version)[0]
            for p in t.partitions:
                if name is not None:
                    log_starts[(name, p.partition)] = p.log_start_offset
        hw_before = _follower_fetch(state, wanted, replica_id, log_starts)
    max_bytes = req.max_bytes if version >= 3 else 0x7FFFFFFF
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(req.max_wait_ms, 0) / 1000
    while True:
        signal = state.appends.current()
        datas, total, error = _read_all(state, wanted, max_bytes, committed, follower)
        remaining = deadline - loop.time()
        if total >= req.min_bytes or error or remaining <= 0 or not wanted:
            break
        if hw_before is not None and any(
            (pd.high_watermark, pd.log_start_offset) != before for pd, before in zip(datas, hw_before)
        ):
            break  # the follower learns a moved high watermark (or log start) without waiting for data
        try:
            await asyncio.wait_for(asyncio.shield(signal), remaining)
        except TimeoutError:
            pass
        if ctx.conn is not None and getattr(ctx.conn, "closed", False):
            break
    if incremental and session is not None:
        keep_w, keep_d = [], []
        for w, pd in zip(wanted, datas):
            sp = session.partitions[(w.topic or str(w.topic_id), w.partition)]
            changed = (
                (pd.records is not None and len(pd.records) > 0)
                or pd.error_code != ErrorCode.NONE
                or (
                    (pd.high_watermark, pd.last_stable_offset, pd.log_start_offset)
                    != (sp.high_watermark, sp.last_stable_offset, sp.last_log_start)
                )
            )
            if changed:
                keep_w.append(w)
                keep_d.append(pd)
        wanted, datas = keep_w, keep_d
    if session is not None:
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
