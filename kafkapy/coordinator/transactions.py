"""The transaction coordinator: transactional ids over `__transaction_state` (KIP-98).

A state machine over records, like the group coordinator. Each request is
decided by the transactional id's `TxnMetadata` (txn_state.py), which
returns the records to write; `_write` appends them to the id's
`__transaction_state` partition (abs(javaHashCode(id)) % partitions) and
replays them through `_replay`, the function loading uses after a restart.

Ending a transaction writes PrepareCommit/PrepareAbort, then a transaction
marker (control batch) to every partition in it, `__consumer_offsets`
partitions included (the group coordinator then commits or drops the
transactional offsets), then CompleteCommit/CompleteAbort. When PrepareX
is already replicated and this broker leads every partition of the
transaction alone in its ISR (always on a single broker), the markers are
local appends done before EndTxn is answered. Otherwise EndTxn is answered
once PrepareX is replicated and a completion task (one per transactional
id) sends the markers to the partitions' current leaders through
`MarkerChannel` (cluster/markers.py) and then writes CompleteX; requests
meanwhile get CONCURRENT_TRANSACTIONS, as in Kafka. Handlers make their
answers wait for `__transaction_state` replication with `written`. A
transaction left in PrepareX (a marker write failed, or the broker died
between the records) is finished by the timer task and on load (also when
a broker takes over the partition's leadership). One timer also aborts
transactions past their timeout (with an epoch fence, so the late producer
is fenced) and removes transactional ids idle for
`transactional.id.expiration.ms`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from kafkapy.clock import now_ms
from kafkapy.cluster.markers import (
    CoordinatorChannel,
    MarkerChannel,
    MarkerListener,
    TopicPartition,
    append_markers,
)
from kafkapy.cluster.partition import Partition
from kafkapy.cluster.replication import ReplicaManager
from kafkapy.cluster.view import MetadataStore
from kafkapy.config import BrokerConfig
from kafkapy.coordinator import TXN_TOPIC
from kafkapy.coordinator.placement import (
    CoordinatorWriteError,
    Placement,
    replay_records,
    run_timers,
    store_error,
)
from kafkapy.coordinator.producer_ids import ProducerIdManager, ProducerIdsUnavailableError
from kafkapy.coordinator.txn_records import (
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
from kafkapy.protocol.records import build_batch
from kafkapy.storage.errors import StorageError

__all__ = ["TXN_TOPIC", "CoordinatorWriteError", "TransactionCoordinator"]

log = get_logger(__name__)

_SEGMENT_BYTES = 104857600
_ABORT_CHECK_KEY = "transaction.abort.timed.out.transaction.cleanup.interval.ms"
_REMOVE_CHECK_KEY = "transaction.remove.expired.transaction.cleanup.interval.ms"
_RETRY_MS = 1000


def _config_int(config: BrokerConfig, key: str, default: int) -> int:
    try:
        value = config.get(key)
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _no_groups() -> MarkerListener | None:
    return None


@dataclass(slots=True, kw_only=True)
class TransactionCoordinator(Placement):
    TOPIC: ClassVar[str] = TXN_TOPIC

    producer_ids: ProducerIdManager
    # the broker's group coordinator if it has one (told of markers on `__consumer_offsets`)
    groups: Callable[[], MarkerListener | None] = _no_groups
    txns: dict[str, TxnMetadata] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _loading: bool = False
    _next_expiry_ms: int = 0
    _scheduled_ms: int = 0  # when the timer task wakes next (it is woken earlier only if needed)
    _by_producer: dict[int, str] = field(default_factory=dict)  # producer id -> transactional id
    _completing: dict[str, asyncio.Task[None]] = field(default_factory=dict)  # completion tasks
    _channel: MarkerChannel | None = None
    _to_coordinators: CoordinatorChannel | None = None  # this broker as a partition leader (KIP-890)

    # ------------------------------------------------------------ start-up

    @classmethod
    def open(
        cls,
        replicas: ReplicaManager,
        metadata: MetadataStore,
        config: BrokerConfig,
        producer_ids: ProducerIdManager,
        *,
        groups: Callable[[], MarkerListener | None] = _no_groups,
    ) -> TransactionCoordinator:
        """The coordinator with `__transaction_state` created if missing, its led partitions loaded
        and half-completed transactions resumed; its timer task runs until `close`."""
        coord = cls(replicas=replicas, metadata=metadata, config=config, producer_ids=producer_ids, groups=groups)
        coord.ensure_topic(
            config.transaction_state_log_num_partitions,
            config.transaction_state_log_replication_factor,
            "transaction.state.log.replication.factor",
            {
                "cleanup.policy": "compact",
                "segment.bytes": str(_config_int(config, "transaction.state.log.segment.bytes", _SEGMENT_BYTES)),
                "compression.type": "uncompressed",
                "min.insync.replicas": str(config.transaction_state_log_min_isr),
            },
        )
        coord.load()
        coord.recover()
        coord.spawn(coord._run_timers())
        return coord

    def close(self) -> None:
        """Stop the timers and completions (they resume on the next load); drop marker connections."""
        for task in list(self._completing.values()):
            task.cancel()
        Placement.close(self)
        channel, self._channel = self._channel, None
        if channel is not None:
            asyncio.get_running_loop().create_task(channel.close())
        to_coordinators, self._to_coordinators = self._to_coordinators, None
        if to_coordinators is not None:
            asyncio.get_running_loop().create_task(to_coordinators.close())

    def load(self) -> None:
        """Replay every owned partition of `__transaction_state` from its start."""
        count = sum(self._load_partition(p) for p in self.owned_partitions())
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
            plog = self.replicas.partition_log(TXN_TOPIC, p)
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

    # ------------------------------------------------------------ records

    def _write(self, txn_id: str, value: TxnValue | None) -> None:
        """Append one record to the id's partition, then replay it."""
        part = self.append_target(self.partition_of(txn_id))
        raw = None if value is None else encode_value(value)
        try:
            part.append(bytearray(build_batch([(encode_key(txn_id), raw, [], now_ms())])))
        except StorageError as e:
            raise CoordinatorWriteError(ErrorCode.KAFKA_STORAGE_ERROR, str(e)) from e
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

    def on_markers(self, producer_id: int, commit: bool, partitions: Iterable[TopicPartition]) -> None:
        """Markers appended on this broker: the group coordinator completes the transactional offsets."""
        groups = self.groups()
        if groups is not None:
            groups.on_markers(producer_id, commit, partitions)

    def _timeout_ms(self) -> int:
        return _config_int(self.config, "request.timeout.ms", 30_000)

    async def written(self, txn_id: str) -> int:
        """The id's `__transaction_state` writes so far replicated, as an answer's error (at once on a
        single broker)."""
        code = await self.written_code(txn_id, self._timeout_ms())
        return store_error(code, timed_out=ErrorCode.COORDINATOR_NOT_AVAILABLE)

    def _completes_here(self, txn_id: str, md: TxnMetadata) -> bool:
        """Can the markers be written now, before returning? When PrepareX is already replicated and
        every partition of the transaction is led here with this broker its whole ISR (so a marker
        is replicated once appended): always on a single broker."""
        tpart = self.partition(self.partition_of(txn_id))
        if not isinstance(tpart, Partition) or tpart.high_watermark < tpart.log_end_offset:
            return False
        for topic, index in md.partitions:
            part = self.replicas.partition(topic, index)
            if isinstance(part, Partition):
                if part.isr != [self.node_id]:
                    return False
            elif part != ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:  # a gone partition is final, as in Kafka
                return False
        return True

    def _complete(self, txn_id: str) -> bool:
        """PrepareX -> markers -> CompleteX. False (left in PrepareX, retried by the timer) on failure.

        When the markers must travel or wait for replication, they go out from a task
        (`MarkerChannel`) and this returns False at once."""
        md = self.txns[txn_id]
        if not self._completes_here(txn_id, md):
            self._start_completion(txn_id)
            return False
        commit = md.state is TxnState.PREPARE_COMMIT
        res = append_markers(
            self.replicas, md.producer_id, md.producer_epoch, self.coordinator_epoch(txn_id), commit, md.partitions,
            md.client_tv,
        )  # fmt: skip
        self.on_markers(md.producer_id, commit, res.written())
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
        task = asyncio.get_running_loop().create_task(self._complete_async(txn_id))
        self._completing[txn_id] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._completing.get(txn_id) is t:
                del self._completing[txn_id]

        task.add_done_callback(done)

    async def _complete_async(self, txn_id: str) -> None:
        """PrepareX replicated, markers to the leaders (MarkerChannel), then CompleteX.

        On failure the transaction stays in PrepareX; the timer starts a new attempt within a second."""
        md = self.txns.get(txn_id)
        if md is None or md.state not in PREPARING:
            return
        prepared, pid, epoch, tv = md.state, md.producer_id, md.producer_epoch, md.client_tv

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
                self._channel = MarkerChannel(self.replicas, self, self._timeout_ms())
            errors = await self._channel.write(
                pid,
                epoch,
                self.coordinator_epoch(txn_id),
                prepared is TxnState.PREPARE_COMMIT,
                md.partitions,
                still_valid,
                tv,
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
        try:
            return self.producer_ids.generate()
        except ProducerIdsUnavailableError as e:  # a block is being reserved; the client retries
            raise CoordinatorWriteError(ErrorCode.COORDINATOR_NOT_AVAILABLE, str(e)) from e

    def init_producer_id(
        self, txn_id: str, timeout_ms: int, producer_id: int, producer_epoch: int, *, producer_fenced: bool
    ) -> Decision:
        if timeout_ms <= 0 or timeout_ms > self.config.transaction_max_timeout_ms:
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
        client_tv: int = 0,
    ) -> int:
        md = self.txns.get(txn_id)
        if md is None:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        d = md.add_partitions(
            producer_id, producer_epoch, partitions, now_ms(), producer_fenced=producer_fenced, client_tv=client_tv
        )
        if d.error == ErrorCode.NONE:
            try:
                self._write_all(txn_id, d.records)
            except CoordinatorWriteError:
                return ErrorCode.COORDINATOR_NOT_AVAILABLE
        return d.error

    def verify_produce(self, txn_id: str | None, producer_id: int, producer_epoch: int, tp: TopicPartition) -> int:
        """`verify` where this broker coordinates the producer's transactional id; NONE (accepted
        unverified, as before KIP-890) where another broker may."""
        if txn_id is None:
            known = producer_id in self._by_producer
            if not known and len(self.owned_partitions()) < self.num_partitions:
                return ErrorCode.NONE
        elif not self.owns(txn_id):
            return ErrorCode.NONE
        return self.verify(txn_id, producer_id, producer_epoch, tp)

    async def add_or_verify(
        self,
        txn_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: list[TopicPartition],
        *,
        add: bool,
    ) -> dict[TopicPartition, int]:
        """A partition leader's question to the transactional id's coordinator, here or on another
        broker (AddPartitionsToTxn v5): `add` (transactions v2: Produce v12+, TxnOffsetCommit v5+)
        puts the partitions into the transaction, else only checks they are in it (KIP-890 part 1)."""
        if self.owns(txn_id):
            if not add:
                return {tp: self.verify(txn_id, producer_id, producer_epoch, tp) for tp in partitions}
            err = self.add_partitions(
                txn_id, producer_id, producer_epoch, partitions, producer_fenced=True, client_tv=2
            )
            if err == ErrorCode.NONE:
                err = await self.written(txn_id)
            return dict.fromkeys(partitions, err)
        node = self.coordinator_node(txn_id)
        if node is None:
            return dict.fromkeys(partitions, int(ErrorCode.COORDINATOR_NOT_AVAILABLE))
        if self._to_coordinators is None:
            self._to_coordinators = CoordinatorChannel(self.replicas)
        return await self._to_coordinators.add_partitions(
            node.node_id, txn_id, producer_id, producer_epoch, partitions, verify_only=not add
        )

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
        """EndTxn before transactions v2: the error only."""
        return self.end_transaction(txn_id, producer_id, producer_epoch, commit, producer_fenced=producer_fenced).error

    def end_transaction(
        self,
        txn_id: str,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        *,
        producer_fenced: bool,
        client_tv: int = 0,
    ) -> Decision:
        """EndTxn; with `client_tv` 2 (EndTxn v5+) the epoch is bumped and the Decision holds the
        producer id and epoch to answer."""
        md = self.txns.get(txn_id)
        if md is None:
            return Decision(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        try:
            if client_tv >= 2:
                d = md.end_txn_v2(producer_id, producer_epoch, commit, now_ms(), self._new_producer_id)
            else:
                d = md.end_txn(producer_id, producer_epoch, commit, now_ms(), producer_fenced=producer_fenced)
            if d.error != ErrorCode.NONE or not d.records:
                return d
            self._write_all(txn_id, d.records)
        except CoordinatorWriteError:
            return Decision(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        self._complete(txn_id)  # if a marker fails, the timer finishes it; the client sees success (as in Kafka)
        return d

    # ------------------------------------------------------------ timers

    async def _run_timers(self) -> None:
        def schedule(now: int) -> int:
            self._scheduled_ms = self.next_deadline(now)
            return self._scheduled_ms

        await run_timers(self._wake, schedule, self.fire, "transaction")

    def next_deadline(self, now: int) -> int:
        check = _config_int(self.config, _ABORT_CHECK_KEY, 10_000)
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
            self._next_expiry_ms = now + _config_int(self.config, _REMOVE_CHECK_KEY, 3_600_000)
            self.expire_ids(now)

    def expire_ids(self, now: int) -> int:
        expiration = self.config.transactional_id_expiration_ms
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
            # as Kafka: running at least that long since the transaction's start, whatever the state (a
            # transactional id with no transaction started yet has start -1 and always passes)
            if min_duration_ms >= 0 and now - md.start_ms < min_duration_ms:
                continue
            out.append(md)
        return out
