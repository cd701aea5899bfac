"""The transaction coordinator: transactional ids over `__transaction_state` (KIP-98).

A state machine over records, like the group coordinator. Each request is
decided by the transactional id's `TxnMetadata` (txn_state.py), which
returns the records to write; `_write` appends them to the id's
`__transaction_state` partition (abs(javaHashCode(id)) % partitions) and
replays them through `_replay`, the function loading uses after a restart.

Ending a transaction writes PrepareCommit/PrepareAbort, then a transaction
marker (control batch) to every partition in it, `__consumer_offsets`
partitions included (the group coordinator then commits or drops the
transactional offsets), then CompleteCommit/CompleteAbort. This broker
leads every partition on a single broker, so there markers are local
appends done before EndTxn is answered. In a cluster, EndTxn is answered
once PrepareX is replicated and a completion task (one per transactional
id) sends the markers to the partitions' current leaders through
`MarkerChannel` (cluster/markers.py) and then writes CompleteX; requests
meanwhile get CONCURRENT_TRANSACTIONS, as in Kafka. Handlers make their
answers wait for `__transaction_state` replication with `written`. A
transaction left in PrepareX (a marker write failed, or the broker died
between the records) is finished by the timer task and on load (also when
a broker takes over the partition's leadership). One timer also aborts transactions past their timeout (with an epoch
fence, so the late producer is fenced) and removes transactional ids idle
for `transactional.id.expiration.ms`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from kafkapy.coordinator import TXN_TOPIC
from kafkapy.coordinator.coordinator import (
    OFFSETS_TOPIC,
    replay_records,
    run_timers,
    store_error,
    wait_written,
)
from kafkapy.coordinator.placement import Placement
from kafkapy.coordinator.txn_records import (
    TopicPartition,
    TxnValue,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)
from kafkapy.coordinator.txn_state import (
    NO_PRODUCER_ID,
    PREPARING,
    Decision,
    TxnMetadata,
    TxnState,
)
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.errors import DecodeError
from kafkapy.protocol.records import (
    ControlRecordType,
    build_batch,
    build_control_batch,
)
from kafkapy.server.state import now_ms
from kafkapy.storage.errors import StorageError
from kafkapy.storage.producer_state import (
    CoordinatorFencedError,
    InvalidProducerEpochError,
    ProducerStateError,
)

if TYPE_CHECKING:
    from kafkapy.cluster.markers import MarkerChannel
    from kafkapy.server.state import BrokerState

log = get_logger(__name__)

EXTRAS_KEY = "transaction_coordinator"
_SEGMENT_BYTES = 104857600
_ABORT_CHECK_KEY = "transaction.abort.timed.out.transaction.cleanup.interval.ms"
_REMOVE_CHECK_KEY = "transaction.remove.expired.transaction.cleanup.interval.ms"
_RETRY_MS = 1000


class CoordinatorWriteError(Exception):
    """`__transaction_state` could not be written."""


def _config_int(state: BrokerState, key: str, default: int) -> int:
    try:
        value = state.config.get(key)
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


@dataclass(slots=True)
class MarkerResult:
    errors: dict[TopicPartition, int] = field(default_factory=dict)
    ends: dict[TopicPartition, int] = field(default_factory=dict)  # log end offset after each marker

    @property
    def ok(self) -> bool:
        # Gone partitions and fenced markers are final, as in Kafka; only retriable faults block completion.
        return all(
            e
            in (
                ErrorCode.NONE,
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                ErrorCode.INVALID_PRODUCER_EPOCH,
                ErrorCode.TRANSACTION_COORDINATOR_FENCED,
            )
            for e in self.errors.values()
        )


@dataclass(slots=True)
class TransactionCoordinator(Placement):
    TOPIC: ClassVar[str] = TXN_TOPIC

    state: BrokerState
    txns: dict[str, TxnMetadata] = field(default_factory=dict)
    num_partitions: int = 50
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _loading: bool = False
    _next_expiry_ms: int = 0
    _scheduled_ms: int = 0  # when the timer task wakes next (it is woken earlier only if needed)
    _by_producer: dict[int, str] = field(default_factory=dict)  # producer id -> transactional id
    _completing: dict[str, asyncio.Task[None]] = field(default_factory=dict)  # cluster: completion tasks
    _channel: MarkerChannel | None = None

    # ------------------------------------------------------------ start-up

    @classmethod
    def of(cls, state: BrokerState) -> TransactionCoordinator:
        """The broker's coordinator, created (and `__transaction_state` loaded) on first use."""
        existing = state.extras.get(EXTRAS_KEY)
        if existing is not None:
            return existing  # type: ignore[no-any-return]
        coord = cls(state=state)
        coord._open_topic()
        coord.load()
        state.extras[EXTRAS_KEY] = coord
        coord.recover()
        state.tasks.append(asyncio.get_running_loop().create_task(coord._run_timers()))
        return coord

    def _open_topic(self) -> None:
        info = self.state.metadata.topic(TXN_TOPIC)
        if info is not None:
            self.num_partitions = len(info.partitions)
            return
        cfg = self.state.config
        configs = {
            "cleanup.policy": "compact",
            "segment.bytes": str(_config_int(self.state, "transaction.state.log.segment.bytes", _SEGMENT_BYTES)),
            "compression.type": "uncompressed",
            "min.insync.replicas": str(cfg.transaction_state_log_min_isr),
        }
        self.num_partitions = cfg.transaction_state_log_num_partitions
        cluster = self.state.cluster
        if cluster is not None:  # created in the background; NOT_COORDINATOR until then
            rf = cluster.internal_replication_factor(
                cfg.transaction_state_log_replication_factor, "transaction.state.log.replication.factor"
            )
            cluster.ensure_internal_topic(TXN_TOPIC, self.num_partitions, rf, configs)
            return
        self.state.create_topic_now(TXN_TOPIC, self.num_partitions, 1, configs)

    def load(self) -> None:
        """Replay every owned partition of `__transaction_state` from its start."""
        count = sum(self._load_partition(p) for p in range(self.num_partitions) if self._owns_partition(p))
        log.info("transaction coordinator loaded", records=count, transactional_ids=len(self.txns))

    def load_partition(self, p: int) -> None:
        """This broker became the leader of partition p: replay it and finish what it left half-done."""
        self.num_partitions = max(self.num_partitions, p + 1)
        count = self._load_partition(p)
        log.info("transaction coordinator partition loaded", partition=p, records=count)
        self.recover()

    def unload_partition(self, p: int) -> None:
        """Another broker leads partition p now: forget its transactional ids."""
        gone = [t for t in self.txns if self.partition_of(t) == p]
        for t in gone:
            md = self.txns.pop(t)
            self._by_producer.pop(md.producer_id, None)
            task = self._completing.pop(t, None)
            if task is not None:
                task.cancel()
        log.info("transaction coordinator partition unloaded", partition=p, transactional_ids=len(gone))

    def _load_partition(self, p: int) -> int:
        self._loading = True
        count = 0
        try:
            plog = self.state.partition_log(TXN_TOPIC, p)
            if plog is None:
                return 0
            for header, rec in replay_records(plog):
                if header.is_control or rec.key is None:
                    continue
                try:
                    txn_id = decode_key(rec.key)
                    value = None if rec.value is None else decode_value(rec.value)
                except DecodeError as e:
                    log.warning("skipping bad __transaction_state record", partition=p, offset=rec.offset, error=str(e))
                    continue
                self._replay(txn_id, value)
                count += 1
        finally:
            self._loading = False
        return count

    def recover(self) -> None:
        """Finish transactions a crash left between PrepareX and CompleteX (markers again: idempotent)."""
        for txn_id, md in list(self.txns.items()):
            if md.state in PREPARING:
                log.info("resuming transaction completion", transactional_id=txn_id, state=md.state.value)
                self._complete(txn_id)
            elif md.state is TxnState.PREPARE_EPOCH_FENCE:  # not written by us; treat as an abort under the fence
                md.state = TxnState.ONGOING
                self._fence_abort(txn_id)

    # ------------------------------------------------------------ placement

    def coordinator_epoch(self, transactional_id: str) -> int:
        return max(self.state.leader_epoch(TXN_TOPIC, self.partition_of(transactional_id)), 0)

    # ------------------------------------------------------------ records

    def _write(self, txn_id: str, value: TxnValue | None) -> None:
        """Append one record to the id's partition, then replay it."""
        p = self.partition_of(txn_id)
        plog = self.state.partition_log(TXN_TOPIC, p)
        if plog is None:
            raise CoordinatorWriteError(f"{TXN_TOPIC}-{p} has no log")
        raw = None if value is None else encode_value(value)
        try:
            plog.append(
                bytearray(build_batch([(encode_key(txn_id), raw, [], now_ms())])),
                leader_epoch=self.state.leader_epoch(TXN_TOPIC, p),
            )
        except StorageError as e:
            raise CoordinatorWriteError(str(e)) from e
        self._replay(txn_id, value)

    def _replay(self, txn_id: str, value: TxnValue | None) -> None:
        """The one place records change the coordinator, live or loading."""
        md = self.txns.get(txn_id)
        if value is None:
            if md is not None:
                del self.txns[txn_id]
                if self._by_producer.get(md.producer_id) == txn_id:
                    del self._by_producer[md.producer_id]
            return
        if md is None:
            md = self.txns[txn_id] = TxnMetadata.from_value(txn_id, value)
        else:
            if md.producer_id != value.producer_id and self._by_producer.get(md.producer_id) == txn_id:
                del self._by_producer[md.producer_id]
            md.apply(value, loading=self._loading)
        self._by_producer[md.producer_id] = txn_id
        due = md.deadline()
        if md.state in PREPARING or (due is not None and due < self._scheduled_ms):
            self._wake.set()

    def _write_all(self, txn_id: str, values: Iterable[TxnValue]) -> None:
        for v in values:
            self._write(txn_id, v)

    # ------------------------------------------------------------ markers

    def write_markers(
        self,
        producer_id: int,
        producer_epoch: int,
        coordinator_epoch: int,
        commit: bool,
        partitions: Iterable[TopicPartition],
    ) -> MarkerResult:
        """Append a COMMIT/ABORT marker to each partition (also WriteTxnMarkers)."""
        result = MarkerResult()
        ctype = ControlRecordType.COMMIT if commit else ControlRecordType.ABORT
        ts = now_ms()
        groups: Any = None
        for tp in partitions:
            topic, partition = tp
            plog = self.state.partition_log(topic, partition)
            if plog is None:
                result.errors[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                continue
            replicas = self.state.replicas
            if replicas is not None:  # cluster: only the leader appends markers, with acks=-1 rules
                code = replicas.leader_check(topic, partition)
                if code == ErrorCode.NONE and len(replicas.isr(topic, partition)) < replicas.min_isr(topic):
                    code = ErrorCode.NOT_ENOUGH_REPLICAS
                if code != ErrorCode.NONE:
                    result.errors[tp] = code
                    continue
            batch = build_control_batch(
                ctype, producer_id=producer_id, producer_epoch=producer_epoch,
                coordinator_epoch=coordinator_epoch, timestamp=ts,
            )  # fmt: skip
            try:
                plog.append(bytearray(batch), leader_epoch=self.state.leader_epoch(topic, partition))
            except InvalidProducerEpochError as e:
                log.warning("marker fenced", topic=topic, partition=partition, error=str(e))
                result.errors[tp] = ErrorCode.INVALID_PRODUCER_EPOCH
                continue
            except CoordinatorFencedError:
                result.errors[tp] = ErrorCode.TRANSACTION_COORDINATOR_FENCED
                continue
            except (ProducerStateError, StorageError) as e:
                log.error("marker append failed", topic=topic, partition=partition, error=str(e))
                result.errors[tp] = ErrorCode.KAFKA_STORAGE_ERROR
                continue
            result.errors[tp] = ErrorCode.NONE
            result.ends[tp] = plog.log_end_offset
            if topic == OFFSETS_TOPIC:
                if groups is None:
                    groups = self.state.extras.get("group_coordinator")
                if groups is not None:
                    groups.complete_txn(producer_id, commit, partition)
        self.state.appends.notify()
        return result

    async def markers_replicated(self, result: MarkerResult) -> MarkerResult:
        """Cluster: wait until each written marker is replicated (Kafka appends markers with acks=-1)."""
        replicas = self.state.replicas
        if replicas is None or not result.ends:
            return result
        timeout = _config_int(self.state, "request.timeout.ms", 30_000)
        tps = list(result.ends)
        codes = await asyncio.gather(
            *(replicas.wait_replicated(t, p, result.ends[(t, p)], timeout, replicas.min_isr(t)) for t, p in tps)
        )
        for tp, code in zip(tps, codes):
            result.errors[tp] = int(code)
        return result

    async def written(self, txn_id: str) -> int:
        """The id's `__transaction_state` writes so far replicated (cluster), as an answer's error."""
        code = await wait_written(
            self.state, TXN_TOPIC, self.partition_of(txn_id), _config_int(self.state, "request.timeout.ms", 30_000)
        )
        return store_error(code, timed_out=ErrorCode.COORDINATOR_NOT_AVAILABLE)

    def _complete(self, txn_id: str) -> bool:
        """PrepareX -> markers -> CompleteX. False (left in PrepareX, retried by the timer) on failure.

        In a cluster the markers go out from a task and this returns False at once."""
        if self.state.cluster is not None:
            self._start_completion(txn_id)
            return False
        md = self.txns[txn_id]
        commit = md.state is TxnState.PREPARE_COMMIT
        res = self.write_markers(
            md.producer_id, md.producer_epoch, self.coordinator_epoch(txn_id), commit, md.partitions
        )
        if not res.ok:
            log.warning("transaction markers incomplete; will retry", transactional_id=txn_id, errors=res.errors)
            self._wake.set()
            return False
        try:
            self._write(txn_id, md.complete(now_ms()))
        except CoordinatorWriteError as e:
            log.error("could not complete transaction", transactional_id=txn_id, error=str(e))
            return False
        return True

    def _start_completion(self, txn_id: str) -> None:
        if txn_id in self._completing:
            return
        task = asyncio.get_running_loop().create_task(self._complete_remote(txn_id))
        self._completing[txn_id] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._completing.get(txn_id) is t:
                del self._completing[txn_id]

        task.add_done_callback(done)

    async def _complete_remote(self, txn_id: str) -> None:
        """Cluster: PrepareX replicated, markers to the leaders (MarkerChannel), then CompleteX.

        On failure the transaction stays in PrepareX; the timer starts a new attempt within a second."""
        from kafkapy.cluster.markers import MarkerChannel

        md = self.txns.get(txn_id)
        if md is None or md.state not in PREPARING:
            return
        prepared, pid, epoch = md.state, md.producer_id, md.producer_epoch

        def still_valid() -> bool:
            cur = self.txns.get(txn_id)
            return (
                cur is md
                and md.state is prepared
                and md.producer_id == pid
                and md.producer_epoch == epoch
                and self.owns(txn_id)
            )

        try:
            # Markers only after PrepareX is durable: a new coordinator must not abort a committed txn.
            if await self.written(txn_id) != ErrorCode.NONE or not still_valid():
                return
            if self._channel is None:
                self._channel = MarkerChannel(self)
            errors = await self._channel.write(
                pid,
                epoch,
                self.coordinator_epoch(txn_id),
                prepared is TxnState.PREPARE_COMMIT,
                md.partitions,
                still_valid,
            )
            if errors is None or not still_valid():
                return
            self._write(txn_id, md.complete(now_ms()))
            log.info(
                "transaction completed",
                transactional_id=txn_id,
                producer_id=pid,
                epoch=epoch,
                state=md.state.value,
                partitions=len(errors),
            )
            await self.written(txn_id)
        except CoordinatorWriteError as e:
            log.error("could not complete transaction", transactional_id=txn_id, error=str(e))
        except Exception:
            log.exception("transaction completion failed", transactional_id=txn_id)

    def _fence_abort(self, txn_id: str) -> bool:
        """Abort the ongoing transaction under a bumped epoch (InitProducerId, timeout)."""
        md = self.txns[txn_id]
        self._write(txn_id, md.fence_and_abort(now_ms()))
        return self._complete(txn_id)

    # ------------------------------------------------------------ requests

    def _new_producer_id(self) -> int:
        from kafkapy.server.handlers.producer_id import producer_id_manager

        try:
            return producer_id_manager(self.state).generate()
        except RuntimeError as e:  # cluster: no producer id block reserved yet
            raise CoordinatorWriteError(str(e)) from e

    def init_producer_id(
        self, txn_id: str, timeout_ms: int, producer_id: int, producer_epoch: int, *, producer_fenced: bool
    ) -> Decision:
        if timeout_ms <= 0 or timeout_ms > self.state.config.transaction_max_timeout_ms:
            return Decision(ErrorCode.INVALID_TRANSACTION_TIMEOUT)
        md = self.txns.get(txn_id)
        now = now_ms()
        try:
            if md is None:
                if producer_id != NO_PRODUCER_ID:
                    # KIP-360: a producer id we don't know for this transactional id.
                    return Decision(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
                v = TxnValue(self._new_producer_id(), 0, timeout_ms, 0, frozenset(), now, -1)
                self._write(txn_id, v)
                return Decision(producer_id=v.producer_id, producer_epoch=v.producer_epoch)
            d = md.init_producer_id(
                producer_id, producer_epoch, timeout_ms, now, self._new_producer_id, producer_fenced=producer_fenced
            )
            if d.fence_first:
                # Kafka answers CONCURRENT_TRANSACTIONS here and lets the client retry; the abort is
                # synchronous in this broker, so the retry's answer is given at once.
                if not self._fence_abort(txn_id):
                    return Decision(ErrorCode.CONCURRENT_TRANSACTIONS)
                d = md.init_producer_id(
                    NO_PRODUCER_ID, -1, timeout_ms, now_ms(), self._new_producer_id, producer_fenced=producer_fenced
                )
            self._write_all(txn_id, d.records)
            return d
        except CoordinatorWriteError:
            return Decision(ErrorCode.COORDINATOR_NOT_AVAILABLE)

    def add_partitions(
        self,
        txn_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: list[TopicPartition],
        *,
        producer_fenced: bool,
    ) -> int:
        md = self.txns.get(txn_id)
        if md is None:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        d = md.add_partitions(producer_id, producer_epoch, partitions, now_ms(), producer_fenced=producer_fenced)
        if d.error == ErrorCode.NONE:
            try:
                self._write_all(txn_id, d.records)
            except CoordinatorWriteError:
                return ErrorCode.COORDINATOR_NOT_AVAILABLE
        return d.error

    def verify(self, txn_id: str | None, producer_id: int, producer_epoch: int, tp: TopicPartition) -> int:
        """Produce of a transactional batch: is the partition in the producer's ongoing transaction?"""
        if txn_id is None:
            txn_id = self._by_producer.get(producer_id)
        md = self.txns.get(txn_id) if txn_id is not None else None
        if md is None:
            return ErrorCode.INVALID_TXN_STATE
        return md.verify(producer_id, producer_epoch, tp)

    def end_txn(
        self, txn_id: str, producer_id: int, producer_epoch: int, commit: bool, *, producer_fenced: bool
    ) -> int:
        md = self.txns.get(txn_id)
        if md is None:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        d = md.end_txn(producer_id, producer_epoch, commit, now_ms(), producer_fenced=producer_fenced)
        if d.error != ErrorCode.NONE or not d.records:
            return d.error
        try:
            self._write_all(txn_id, d.records)
        except CoordinatorWriteError:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        self._complete(txn_id)  # if a marker fails, the timer finishes it; the client sees success (as in Kafka)
        return ErrorCode.NONE

    # ------------------------------------------------------------ timers

    async def _run_timers(self) -> None:
        def schedule(now: int) -> int:
            self._scheduled_ms = self.next_deadline(now)
            return self._scheduled_ms

        try:
            await run_timers(self._wake, schedule, self.fire, "transaction")
        finally:  # broker shutdown: completions stop with the timers (they resume on the next load)
            for task in list(self._completing.values()):
                task.cancel()

    def next_deadline(self, now: int) -> int:
        check = _config_int(self.state, _ABORT_CHECK_KEY, 10_000)
        out = now + check
        for md in self.txns.values():
            if md.state in PREPARING:
                out = min(out, now + _RETRY_MS)
            else:
                d = md.deadline()
                if d is not None:
                    out = min(out, d)
        if self._next_expiry_ms:
            out = min(out, self._next_expiry_ms)
        return out

    def fire(self, now: int) -> None:
        """Abort expired transactions, finish stuck completions, expire idle transactional ids."""
        for txn_id, md in list(self.txns.items()):
            if md.state in PREPARING:
                self._complete(txn_id)
            elif md.expired(now):
                log.info(
                    "aborting timed-out transaction",
                    transactional_id=txn_id,
                    producer_id=md.producer_id,
                    epoch=md.producer_epoch,
                    timeout_ms=md.timeout_ms,
                )
                try:
                    self._fence_abort(txn_id)
                except CoordinatorWriteError as e:
                    log.error("could not abort timed-out transaction", transactional_id=txn_id, error=str(e))
        if now >= self._next_expiry_ms:
            self._next_expiry_ms = now + _config_int(self.state, _REMOVE_CHECK_KEY, 3_600_000)
            self.expire_ids(now)

    def expire_ids(self, now: int) -> int:
        expiration = self.state.config.transactional_id_expiration_ms
        removed = 0
        for txn_id, md in list(self.txns.items()):
            if md.id_expired(now, expiration):
                md.tombstone_check()
                try:
                    self._write(txn_id, None)
                except CoordinatorWriteError:
                    continue
                removed += 1
        if removed:
            log.info("expired transactional ids", count=removed)
        return removed

    # ------------------------------------------------------------ admin

    def listed(
        self, states: set[str] | None, producer_ids: set[int] | None, min_duration_ms: int = -1
    ) -> list[TxnMetadata]:
        now = now_ms()
        out = []
        for md in self.txns.values():
            if states and md.state.value not in states:
                continue
            if producer_ids and md.producer_id not in producer_ids:
                continue
            if min_duration_ms >= 0 and (md.state is not TxnState.ONGOING or now - md.start_ms < min_duration_ms):
                continue
            out.append(md)
        return out
