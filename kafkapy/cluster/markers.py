"""Transaction markers: the partition leader's append, and the coordinator's channel to the leaders.

`append_markers` is the leader's side (WriteTxnMarkers, Kafka's
ReplicaManager.appendRecords for control batches): a COMMIT/ABORT marker
appended to each partition this broker leads, with acks=-1 rules (refused
below min.insync.replicas); `wait_replicated` then waits for them as an
acks=all produce does.

`MarkerChannel` is the coordinator's side (Kafka's
TransactionMarkerChannelManager): when a transaction ends, its coordinator
must write a marker to every partition in it, on whichever broker leads
that partition now. `write` groups the partitions by their current leader,
sends each remote leader one WriteTxnMarkers request (API 27) and appends
the local ones directly (telling its `MarkerListener`, as the
WriteTxnMarkers handler tells the group coordinator, then waiting until the
markers are replicated). Partitions answered with a retriable error
(NOT_LEADER_OR_FOLLOWER, too few replicas, a timeout, a dropped connection,
no leader yet) are re-grouped after a short backoff, so a leadership change
in the metadata sends them to the new leader. It returns once every marker
is written (or finally refused: a deleted partition, a fenced epoch), or
None as soon as `still_valid()` turns false (the coordinator lost the
transaction's partition, or the transaction moved on). A transactions v2
marker (`transaction_version` 2) travels in WriteTxnMarkers v2.

`CoordinatorChannel` is the other direction (Kafka's
AddPartitionsToTxnManager): a partition leader whose transactional id's
coordinator is another broker asks it with AddPartitionsToTxn v5 (the
broker's batched form): verify-only for Produce up to v11 (KIP-890 part 1:
is the partition in the ongoing transaction?), an add for Produce v12+ and
TxnOffsetCommit v5+ (part 2: the client no longer adds partitions itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kafkapy.clock import now_ms
from kafkapy.cluster.partition import NotEnoughReplicasError, Partition
from kafkapy.cluster.replication import ReplicaManager
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.errors import ProtocolError
from kafkapy.protocol.messages.add_partitions_to_txn_request import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnTopic,
    AddPartitionsToTxnTransaction,
)
from kafkapy.protocol.messages.write_txn_markers_request import (
    WritableTxnMarker,
    WritableTxnMarkerTopic,
    WriteTxnMarkersRequest,
)
from kafkapy.protocol.records import ControlRecordType, build_control_batch
from kafkapy.storage.errors import StorageError
from kafkapy.storage.producer_state import (
    CoordinatorFencedError,
    InvalidProducerEpochError,
    ProducerStateError,
)

if TYPE_CHECKING:
    from kafkapy.client import BrokerConnection

log = get_logger(__name__)

TopicPartition = tuple[str, int]

# Final answers for one marker: written, or refused for good (Kafka drops gone partitions and
# stops on fenced epochs). Anything else is retried.
FINAL = frozenset(
    {
        ErrorCode.NONE,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.INVALID_PRODUCER_EPOCH,
        ErrorCode.TRANSACTION_COORDINATOR_FENCED,
    }
)
_WRITE_TXN_MARKERS_VERSION = 1
_WRITE_TXN_MARKERS_V2 = 2  # carries TransactionVersion (KIP-1228)
_ADD_PARTITIONS_TO_TXN_VERSION = 5  # the broker-to-coordinator form, TRANSACTION_ABORTABLE known
_RETRY_BACKOFF_S = 0.1
_REQUEST_TIMEOUT_S = 35.0  # the leader may wait request.timeout.ms (30 s) for replication


class MarkerListener(Protocol):
    """Told of markers appended on this broker (the group coordinator completes transactional
    offsets on its `__consumer_offsets` partitions)."""

    def on_markers(self, producer_id: int, commit: bool, partitions: Iterable[TopicPartition]) -> None: ...


@dataclass(slots=True)
class MarkerResult:
    errors: dict[TopicPartition, int] = field(default_factory=dict)
    ends: dict[TopicPartition, int] = field(default_factory=dict)  # log end offset after each marker

    @property
    def ok(self) -> bool:
        """Every marker written or finally refused; only retriable faults block completion."""
        return all(e in FINAL for e in self.errors.values())

    def written(self) -> list[TopicPartition]:
        return list(self.ends)


def append_markers(
    replicas: ReplicaManager,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    commit: bool,
    partitions: Iterable[TopicPartition],
    transaction_version: int = 0,
) -> MarkerResult:
    """Append a COMMIT/ABORT marker to each partition this broker leads (acks=-1 rules).

    `transaction_version` 2 (WriteTxnMarkers v2, KIP-1228): the coordinator bumped the epoch before
    writing, so a marker closing a transaction open on the partition must carry a newer epoch than the
    transaction's (INVALID_PRODUCER_EPOCH otherwise); without one open, the usual rule (not older)."""
    result = MarkerResult()
    ctype = ControlRecordType.COMMIT if commit else ControlRecordType.ABORT
    ts = now_ms()
    for tp in partitions:
        topic, index = tp
        part = replicas.partition(topic, index)
        if not isinstance(part, Partition):
            result.errors[tp] = part
            continue
        if transaction_version >= 2:
            entry = part.log.producer_state.producers.get(producer_id)
            if entry is not None and entry.txn_first_offset >= 0 and producer_epoch <= entry.epoch:
                log.warning("marker fenced", topic=topic, partition=index, epoch=producer_epoch, current=entry.epoch)
                result.errors[tp] = ErrorCode.INVALID_PRODUCER_EPOCH
                continue
        batch = build_control_batch(
            ctype, producer_id=producer_id, producer_epoch=producer_epoch,
            coordinator_epoch=coordinator_epoch, timestamp=ts,
        )  # fmt: skip
        try:
            part.append(bytearray(batch), acks=-1)
        except NotEnoughReplicasError:
            result.errors[tp] = ErrorCode.NOT_ENOUGH_REPLICAS
            continue
        except InvalidProducerEpochError as e:
            log.warning("marker fenced", topic=topic, partition=index, error=str(e))
            result.errors[tp] = ErrorCode.INVALID_PRODUCER_EPOCH
            continue
        except CoordinatorFencedError:
            result.errors[tp] = ErrorCode.TRANSACTION_COORDINATOR_FENCED
            continue
        except (ProducerStateError, StorageError) as e:
            log.error("marker append failed", topic=topic, partition=index, error=str(e))
            result.errors[tp] = ErrorCode.KAFKA_STORAGE_ERROR
            continue
        result.errors[tp] = ErrorCode.NONE
        result.ends[tp] = part.log_end_offset
    return result


async def wait_replicated(replicas: ReplicaManager, result: MarkerResult, timeout_ms: int) -> MarkerResult:
    """Wait until each written marker is replicated (Kafka appends markers with acks=-1); at once
    where this broker is the whole ISR."""
    if not result.ends:
        return result
    tps = list(result.ends)

    async def one(tp: TopicPartition) -> int:
        part = replicas.partition(*tp)
        if not isinstance(part, Partition):
            return part
        return await part.wait_replicated(result.ends[tp], timeout_ms)

    for tp, code in zip(tps, await asyncio.gather(*(one(tp) for tp in tps))):
        result.errors[tp] = int(code)
    return result


@dataclass(slots=True)
class MarkerChannel:
    """Connections from a transaction coordinator to the partition leaders."""

    replicas: ReplicaManager
    listener: MarkerListener
    timeout_ms: int  # how long a local marker waits for replication
    _conns: dict[int, BrokerConnection] = field(default_factory=dict)

    async def close(self) -> None:
        for conn in self._conns.values():
            await _close(conn)
        self._conns.clear()

    async def write(
        self,
        producer_id: int,
        producer_epoch: int,
        coordinator_epoch: int,
        commit: bool,
        partitions: Iterable[TopicPartition],
        still_valid: Callable[[], bool],
        transaction_version: int = 0,
    ) -> dict[TopicPartition, int] | None:
        """Write every marker; the final error per partition, or None if `still_valid()` turned false."""
        metadata = self.replicas.metadata
        pending = set(partitions)
        done: dict[TopicPartition, int] = {}
        while pending:
            if not still_valid():
                return None
            by_leader: dict[int, list[TopicPartition]] = {}
            for tp in sorted(pending):
                info = metadata.topic(tp[0])
                if info is None or not 0 <= tp[1] < len(info.partitions):
                    done[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                    pending.discard(tp)
                    continue
                leader = info.partitions[tp[1]].leader
                if leader >= 0:
                    by_leader.setdefault(leader, []).append(tp)
            answers = await asyncio.gather(
                *(
                    self._send(leader, tps, producer_id, producer_epoch, coordinator_epoch, commit, transaction_version)
                    for leader, tps in by_leader.items()
                )
            )
            retry: dict[TopicPartition, int] = {}
            for errors in answers:
                for tp, code in errors.items():
                    if code in FINAL:
                        done[tp] = code
                        pending.discard(tp)
                    else:
                        retry[tp] = code
            if pending:
                log.info(
                    "retrying transaction markers",
                    producer_id=producer_id,
                    pending=len(pending),
                    errors={f"{t}-{p}": c for (t, p), c in retry.items()},
                )
                await asyncio.sleep(_RETRY_BACKOFF_S)
        return done

    async def _send(
        self,
        leader: int,
        tps: list[TopicPartition],
        producer_id: int,
        producer_epoch: int,
        coordinator_epoch: int,
        commit: bool,
        transaction_version: int = 0,
    ) -> dict[TopicPartition, int]:
        from kafkapy.client import KafkaError  # lazily: start-up of a broker whose markers stay local skips it

        if leader == self.replicas.node_id:
            res = append_markers(
                self.replicas, producer_id, producer_epoch, coordinator_epoch, commit, tps, transaction_version
            )
            self.listener.on_markers(producer_id, commit, res.written())
            return (await wait_replicated(self.replicas, res, self.timeout_ms)).errors
        by_topic: dict[str, list[int]] = {}
        for t, p in tps:
            by_topic.setdefault(t, []).append(p)
        req = WriteTxnMarkersRequest(
            markers=[
                WritableTxnMarker(
                    producer_id=producer_id,
                    producer_epoch=producer_epoch,
                    transaction_result=commit,
                    coordinator_epoch=coordinator_epoch,
                    topics=[WritableTxnMarkerTopic(name=t, partition_indexes=ps) for t, ps in by_topic.items()],
                    transaction_version=transaction_version,
                )
            ]
        )
        version = _WRITE_TXN_MARKERS_V2 if transaction_version >= 2 else _WRITE_TXN_MARKERS_VERSION
        try:
            conn = await self._connection(leader)
            resp: Any = await conn.request(req, version)
        except (KafkaError, ProtocolError, OSError) as e:
            log.info("transaction markers not sent", leader=leader, error=str(e))
            old = self._conns.pop(leader, None)
            if old is not None:
                await _close(old)
            return dict.fromkeys(tps, int(ErrorCode.NETWORK_EXCEPTION))
        out: dict[TopicPartition, int] = dict.fromkeys(tps, int(ErrorCode.UNKNOWN_SERVER_ERROR))
        for m in resp.markers:
            for t in m.topics:
                for p in t.partitions:
                    if (t.name, p.partition_index) in out:
                        out[(t.name, p.partition_index)] = p.error_code
        return out

    async def _connection(self, leader: int) -> BrokerConnection:
        return await _connect(self.replicas, self._conns, leader, f"kafkapy-txn-markers-{self.replicas.node_id}")


@dataclass(slots=True)
class CoordinatorChannel:
    """Connections from a partition leader to the transaction coordinators on other brokers."""

    replicas: ReplicaManager
    _conns: dict[int, BrokerConnection] = field(default_factory=dict)

    async def close(self) -> None:
        for conn in self._conns.values():
            await _close(conn)
        self._conns.clear()

    async def add_partitions(
        self,
        coordinator: int,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: list[TopicPartition],
        verify_only: bool,
    ) -> dict[TopicPartition, int]:
        """AddPartitionsToTxn v5 for one transaction: each partition's error (NETWORK_EXCEPTION when
        the coordinator could not be asked)."""
        from kafkapy.client import KafkaError

        by_topic: dict[str, list[int]] = {}
        for t, p in partitions:
            by_topic.setdefault(t, []).append(p)
        req = AddPartitionsToTxnRequest(
            transactions=[
                AddPartitionsToTxnTransaction(
                    transactional_id=transactional_id,
                    producer_id=producer_id,
                    producer_epoch=producer_epoch,
                    verify_only=verify_only,
                    topics=[AddPartitionsToTxnTopic(name=t, partitions=ps) for t, ps in by_topic.items()],
                )
            ]
        )
        out: dict[TopicPartition, int] = dict.fromkeys(partitions, int(ErrorCode.NETWORK_EXCEPTION))
        try:
            conn = await _connect(
                self.replicas, self._conns, coordinator, f"kafkapy-txn-verify-{self.replicas.node_id}"
            )
            resp: Any = await conn.request(req, _ADD_PARTITIONS_TO_TXN_VERSION)
        except (KafkaError, ProtocolError, OSError) as e:
            log.info("AddPartitionsToTxn not sent", coordinator=coordinator, error=str(e))
            old = self._conns.pop(coordinator, None)
            if old is not None:
                await _close(old)
            return out
        if resp.error_code != ErrorCode.NONE:
            return dict.fromkeys(partitions, int(resp.error_code))
        for txn in resp.results_by_transaction:
            for t in txn.topic_results:
                for p in t.results_by_partition:
                    if (t.name, p.partition_index) in out:
                        out[(t.name, p.partition_index)] = p.partition_error_code
        return out


async def _connect(
    replicas: ReplicaManager, conns: dict[int, BrokerConnection], node: int, client_id: str
) -> BrokerConnection:
    """A live connection to broker `node`'s inter-broker endpoint, reused from `conns` when it still fits."""
    from kafkapy.client import BrokerConnection, KafkaError

    leader = node
    info = replicas.metadata.broker_info(leader)
    if info is None:
        raise KafkaError(ErrorCode.BROKER_NOT_AVAILABLE, f"broker {leader} is not registered")
    conn = conns.get(leader)
    if conn is not None and not conn.closed and not conn.expiring and (conn.host, conn.port) == (info.host, info.port):
        return conn
    if conn is not None:
        await _close(conn)
    from kafkapy.cluster.inter_broker import inter_broker_security

    conn = BrokerConnection(  # host/port: the broker's inter-broker endpoint
        info.host,
        info.port,
        client_id=client_id,
        request_timeout=_REQUEST_TIMEOUT_S,
        security=inter_broker_security(replicas.config),
    )
    await conn.connect(5.0)
    conns[leader] = conn
    return conn


async def _close(conn: BrokerConnection) -> None:
    from kafkapy.client import KafkaError

    try:
        await conn.close()
    except (KafkaError, OSError) as e:
        log.debug("marker connection close failed", error=str(e))
