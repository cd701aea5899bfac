"""The share coordinator (KIP-932): share-partition state for the brokers that lead the partitions.

`ShareStateStore` is the share coordinator's side of InitializeShareGroupState
(83), ReadShareGroupState (84), WriteShareGroupState (85),
DeleteShareGroupState (86) and ReadShareGroupStateSummary (87). A key
"group:topicId:partition" (the topic id in Kafka's text form) lives in one
partition of `__share_group_state` (Kafka's `abs(hashCode) % partitions`,
FindCoordinator key type SHARE); its leader is the key's share coordinator.
State changes only by replaying records (share_records type 2), live or
loading; a partition is (re)loaded the first time it is used at a new leader
epoch, so a broker that becomes its leader reads it from the log.

As Kafka 4.3.1 answers (interop/diff_share_state.py): a key is first
initialized (InitializeShareGroupState: a state epoch, a start offset, no
batches; a read or write before is INVALID_REQUEST); a write or read with an
older leader epoch than stored is FENCED_LEADER_EPOCH (a newer one is
stored), a write with an older state epoch FENCED_STATE_EPOCH; a write's
batches are merged into the stored ones (later wins), those below the start
offset dropped; the summary of a key without state is start offset -1.

`ShareStatePersister` is the share-partition leader's client of it: the key's
coordinator here, or another broker through a `ShareStateChannel` (RPCs).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from kafkapy.clock import now_ms
from kafkapy.cluster.replication import ReplicaManager
from kafkapy.cluster.view import MetadataStore
from kafkapy.config import BrokerConfig
from kafkapy.coordinator.placement import CoordinatorWriteError, Placement, replay_records, store_error
from kafkapy.coordinator.share_partition import ACKNOWLEDGED, ARCHIVED, StateBatch
from kafkapy.coordinator.share_records import (
    ShareStateKey,
    ShareStateValue,
    decode_key,
    decode_state_value,
    encode_key,
    encode_state_value,
)
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.errors import DecodeError
from kafkapy.protocol.records import build_batch
from kafkapy.protocol.uuids import uuid_text

log = get_logger(__name__)

SHARE_STATE_TOPIC = "__share_group_state"
StateKey = tuple[str, UUID, int]
UNINITIALIZED = ShareStateValue(0, 0, -1, ())  # as Kafka 4.3.1's summary of a key it has no state for


def error_message(code: int, operation: str) -> str | None:
    """Kafka 4.3.1's messages with these RPCs' errors (`operation`: "Read" or "Write")."""
    messages: dict[int, str] = {
        ErrorCode.INVALID_REQUEST: f"{operation} operation on uninitialized share partition not allowed.",
        ErrorCode.FENCED_LEADER_EPOCH: "The leader epoch in the request is older than the epoch on the broker.",
        ErrorCode.FENCED_STATE_EPOCH: (
            "The share coordinator rejected the request because the share-group state epoch did not match."
        ),
        ErrorCode.NOT_COORDINATOR: "This is not the correct coordinator.",
        ErrorCode.COORDINATOR_NOT_AVAILABLE: "The coordinator is not available.",
        ErrorCode.CLUSTER_AUTHORIZATION_FAILED: "Cluster authorization failed.",
    }
    return messages.get(code)


def coordinator_key(group: str, topic_id: UUID, partition: int) -> str:
    """FindCoordinator's SHARE key (Kafka's SharePartitionKey.asCoordinatorKey)."""
    return f"{group}:{uuid_text(topic_id)}:{partition}"


def merge_batches(old: tuple[StateBatch, ...], new: list[StateBatch], start: int) -> tuple[StateBatch, ...]:
    """`new` over `old` (a new batch wins where they overlap), nothing below `start`."""
    out: list[StateBatch] = []
    for b in old:
        pieces = [(b.first, b.last)]
        for n in new:
            cut = []
            for f, last in pieces:
                if n.last < f or n.first > last:
                    cut.append((f, last))
                    continue
                if f < n.first:
                    cut.append((f, n.first - 1))
                if last > n.last:
                    cut.append((n.last + 1, last))
            pieces = cut
        out += [StateBatch(f, last, b.state, b.delivery_count) for f, last in pieces]
    out += new
    kept = []
    for b in sorted(out, key=lambda b: b.first):
        if b.last < start:
            continue
        kept.append(b if b.first >= start else StateBatch(start, b.last, b.state, b.delivery_count))
    return tuple(kept)


def delivery_complete(value: ShareStateValue) -> int:
    """ReadShareGroupStateSummary v1's DeliveryCompleteCount: offsets from the start offset whose
    delivery is complete (acknowledged or archived), counted from the stored batches (-1: no state)."""
    if value.start_offset < 0:
        return -1
    return sum(
        b.last - max(b.first, value.start_offset) + 1 for b in value.batches if b.state in (ACKNOWLEDGED, ARCHIVED)
    )


@dataclass(slots=True)
class ShareStateStore(Placement):
    TOPIC = SHARE_STATE_TOPIC

    states: dict[StateKey, ShareStateValue] = field(default_factory=dict)
    _loaded: dict[int, int] = field(default_factory=dict)  # partition -> leader epoch it was loaded at

    @classmethod
    def open(cls, replicas: ReplicaManager, metadata: MetadataStore, config: BrokerConfig) -> ShareStateStore:
        store = cls(replicas=replicas, metadata=metadata, config=config)
        store.ensure_topic(
            config.share_coordinator_state_topic_num_partitions,
            config.share_coordinator_state_topic_replication_factor,
            "share.coordinator.state.topic.replication.factor",
            {"cleanup.policy": "compact"},
        )
        return store

    def key_partition(self, group: str, topic_id: UUID, partition: int) -> int:
        return self.partition_of(coordinator_key(group, topic_id, partition))

    def coordinator_of(self, group: str, topic_id: UUID, partition: int) -> int:
        """The node leading the key's partition (-1: none known)."""
        info = self.metadata.topic(self.TOPIC)
        p = self.key_partition(group, topic_id, partition)
        if info is None or p >= len(info.partitions):
            return -1
        return info.partitions[p].leader

    def _ready(self, p: int) -> int:
        """NONE when this broker leads partition `p` (loaded at its current leader epoch), else NOT_COORDINATOR."""
        part = self.partition(p)
        if isinstance(part, int):
            self._loaded.pop(p, None)
            return ErrorCode.NOT_COORDINATOR
        if self._loaded.get(p) == part.leader_epoch:
            return ErrorCode.NONE
        for k in [k for k in self.states if self.key_partition(*k) == p]:
            del self.states[k]
        count = 0
        for header, rec in replay_records(part.log):
            if header.is_control or rec.key is None:
                continue
            try:
                key = decode_key(rec.key)
                if not isinstance(key, ShareStateKey):
                    continue  # group epochs and the older layout: the ShareCoordinator's
                value = decode_state_value(rec.value) if rec.value is not None else None
            except DecodeError as e:
                log.warning("skipping bad __share_group_state record", partition=p, offset=rec.offset, error=str(e))
                continue
            self._replay(key, value)
            count += 1
        self._loaded[p] = part.leader_epoch
        log.info("share state partition loaded", partition=p, records=count, leader_epoch=part.leader_epoch)
        return ErrorCode.NONE

    def _replay(self, key: ShareStateKey, value: ShareStateValue | None) -> None:
        k = (key.group, key.topic_id, key.partition)
        if value is None:
            self.states.pop(k, None)
        else:
            self.states[k] = value

    def _append(self, k: StateKey, value: ShareStateValue | None) -> int:
        key = ShareStateKey(*k)
        batch = build_batch([(encode_key(key), encode_state_value(value) if value is not None else None, [], now_ms())])
        try:
            self.append_records(self.key_partition(*k), bytearray(batch))
        except CoordinatorWriteError as e:
            log.warning("could not write share state", key=str(k), error=str(e))
            return store_error(e.code)
        self._replay(key, value)
        return ErrorCode.NONE

    async def replicated(self, k: StateKey, timeout_ms: int = 30000) -> int:
        """Wait until what was written for the key is replicated (acks=all, as Kafka's share
        coordinator answers a write); the Kafka error code."""
        code = await self.written_code(coordinator_key(*k), timeout_ms)
        return store_error(code) if code != ErrorCode.NONE else ErrorCode.NONE

    # ------------------------------------------------------------ the RPCs, per partition

    def read(self, k: StateKey, leader_epoch: int) -> tuple[int, ShareStateValue]:
        err = self._ready(self.key_partition(*k))
        if err != ErrorCode.NONE:
            return err, UNINITIALIZED
        cur = self.states.get(k)
        if cur is None:
            return ErrorCode.INVALID_REQUEST, UNINITIALIZED
        if leader_epoch != -1 and leader_epoch < cur.leader_epoch:
            return ErrorCode.FENCED_LEADER_EPOCH, UNINITIALIZED
        if leader_epoch > cur.leader_epoch:  # a new share-partition leader: later writers older than it are fenced
            cur = ShareStateValue(cur.state_epoch, leader_epoch, cur.start_offset, cur.batches)
            err = self._append(k, cur)
        return err, cur

    def summary(self, k: StateKey) -> tuple[int, ShareStateValue]:
        err = self._ready(self.key_partition(*k))
        if err != ErrorCode.NONE:
            return err, UNINITIALIZED
        return ErrorCode.NONE, self.states.get(k, UNINITIALIZED)

    def write(
        self, k: StateKey, state_epoch: int, leader_epoch: int, start_offset: int, batches: list[StateBatch]
    ) -> int:
        err = self._ready(self.key_partition(*k))
        if err != ErrorCode.NONE:
            return err
        old = self.states.get(k)
        if old is None:
            return ErrorCode.INVALID_REQUEST
        if leader_epoch != -1 and leader_epoch < old.leader_epoch:
            return ErrorCode.FENCED_LEADER_EPOCH
        if state_epoch < old.state_epoch:
            return ErrorCode.FENCED_STATE_EPOCH
        start = start_offset if start_offset != -1 else old.start_offset
        value = ShareStateValue(
            max(state_epoch, old.state_epoch),
            max(leader_epoch, old.leader_epoch),
            start,
            merge_batches(old.batches, batches, start),
        )
        return self._append(k, value)

    def initialize(self, k: StateKey, state_epoch: int, start_offset: int) -> int:
        err = self._ready(self.key_partition(*k))
        if err != ErrorCode.NONE:
            return err
        cur = self.states.get(k)
        if cur is not None and state_epoch < cur.state_epoch:
            return ErrorCode.FENCED_STATE_EPOCH
        leader = cur.leader_epoch if cur is not None else 0
        return self._append(k, ShareStateValue(state_epoch, leader, start_offset, ()))

    def delete(self, k: StateKey) -> int:
        err = self._ready(self.key_partition(*k))
        if err != ErrorCode.NONE:
            return err
        if k not in self.states:
            return ErrorCode.NONE
        return self._append(k, None)


class ShareStateChannel(Protocol):
    """What the persister needs to reach another broker's share coordinator (the server's inter-broker client)."""

    async def send(self, node: int, request: Any, version: int) -> Any: ...


_RETRIABLE = frozenset(
    {
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.NETWORK_EXCEPTION,
        ErrorCode.REQUEST_TIMED_OUT,
    }
)


@dataclass(slots=True)
class ShareStatePersister:
    """The share-partition leader's access to the share coordinator of each key (Kafka's persister):
    local calls when this broker is it, else the RPCs; retried while the coordinator moves."""

    store: ShareStateStore
    channel: ShareStateChannel | None
    attempts: int = 20
    backoff_s: float = 0.1

    async def _call(self, k: StateKey, local: Any, remote: Any) -> Any:
        """`local()` or `remote(node)` (each gives (error, ...)), until an answer that is not retriable."""
        out: Any = None
        for _ in range(self.attempts):
            node = self.store.coordinator_of(*k)
            if node == self.store.node_id:
                out = local()
                if out[0] == ErrorCode.NONE:
                    code = await self.store.replicated(k)
                    if code != ErrorCode.NONE:
                        out = (code, *out[1:])
            elif node < 0 or self.channel is None:
                out = (ErrorCode.COORDINATOR_NOT_AVAILABLE, None)
            else:
                out = await remote(node)
            if out[0] not in _RETRIABLE:
                return out
            await asyncio.sleep(self.backoff_s)
        return out

    async def read(self, k: StateKey, leader_epoch: int) -> tuple[int, ShareStateValue]:
        from kafkapy.protocol.messages.read_share_group_state_request import (
            PartitionData,
            ReadShareGroupStateRequest,
            ReadStateData,
        )

        async def remote(node: int) -> tuple[int, ShareStateValue]:
            req = ReadShareGroupStateRequest(
                group_id=k[0],
                topics=[
                    ReadStateData(topic_id=k[1], partitions=[PartitionData(partition=k[2], leader_epoch=leader_epoch)])
                ],
            )
            resp = await self._send(node, req)
            if resp is None:
                return ErrorCode.NETWORK_EXCEPTION, UNINITIALIZED
            for r in resp.results:
                for p in r.partitions:
                    batches = tuple(
                        StateBatch(b.first_offset, b.last_offset, b.delivery_state, b.delivery_count)
                        for b in p.state_batches
                    )
                    return p.error_code, ShareStateValue(p.state_epoch, leader_epoch, p.start_offset, batches)
            return ErrorCode.UNKNOWN_SERVER_ERROR, UNINITIALIZED

        out: tuple[int, ShareStateValue] = await self._call(k, lambda: self.store.read(k, leader_epoch), remote)
        return out[0], out[1] if out[1] is not None else UNINITIALIZED

    async def write(
        self, k: StateKey, state_epoch: int, leader_epoch: int, start_offset: int, batches: list[StateBatch]
    ) -> int:
        from kafkapy.protocol.messages.write_share_group_state_request import (
            PartitionData,
            WriteShareGroupStateRequest,
            WriteStateData,
        )
        from kafkapy.protocol.messages.write_share_group_state_request import (
            StateBatch as WireBatch,
        )

        async def remote(node: int) -> tuple[int, None]:
            part = PartitionData(
                partition=k[2],
                state_epoch=state_epoch,
                leader_epoch=leader_epoch,
                start_offset=start_offset,
                state_batches=[WireBatch(b.first, b.last, b.state, b.delivery_count) for b in batches],
            )
            req = WriteShareGroupStateRequest(group_id=k[0], topics=[WriteStateData(topic_id=k[1], partitions=[part])])
            resp = await self._send(node, req)
            if resp is None:
                return ErrorCode.NETWORK_EXCEPTION, None
            codes = [p.error_code for r in resp.results for p in r.partitions]
            return (codes[0] if codes else ErrorCode.UNKNOWN_SERVER_ERROR), None

        out = await self._call(
            k, lambda: (self.store.write(k, state_epoch, leader_epoch, start_offset, batches), None), remote
        )
        return int(out[0])

    async def _send(self, node: int, req: Any) -> Any:
        assert self.channel is not None
        try:
            return await self.channel.send(node, req, 0)
        except Exception as e:  # a dropped connection, a timeout: retried by _call
            log.info("share state request not answered", node=node, api=type(req).__name__, error=str(e))
            return None

    async def summary(self, k: StateKey) -> tuple[int, ShareStateValue]:
        from kafkapy.protocol.messages.read_share_group_state_summary_request import (
            PartitionData,
            ReadShareGroupStateSummaryRequest,
            ReadStateSummaryData,
        )

        async def remote(node: int) -> tuple[int, ShareStateValue]:
            req = ReadShareGroupStateSummaryRequest(
                group_id=k[0],
                topics=[
                    ReadStateSummaryData(topic_id=k[1], partitions=[PartitionData(partition=k[2], leader_epoch=-1)])
                ],
            )
            resp = await self._send(node, req)
            if resp is None:
                return ErrorCode.NETWORK_EXCEPTION, UNINITIALIZED
            for r in resp.results:
                for p in r.partitions:
                    return p.error_code, ShareStateValue(p.state_epoch, -1, p.start_offset, ())
            return ErrorCode.UNKNOWN_SERVER_ERROR, UNINITIALIZED

        out: tuple[int, ShareStateValue] = await self._call(k, lambda: self.store.summary(k), remote)
        return out[0], out[1] if out[1] is not None else UNINITIALIZED

    async def initialize(self, k: StateKey, state_epoch: int, start_offset: int) -> int:
        from kafkapy.protocol.messages.initialize_share_group_state_request import (
            InitializeShareGroupStateRequest,
            InitializeStateData,
            PartitionData,
        )

        async def remote(node: int) -> tuple[int, None]:
            part = PartitionData(partition=k[2], state_epoch=state_epoch, start_offset=start_offset)
            req = InitializeShareGroupStateRequest(
                group_id=k[0], topics=[InitializeStateData(topic_id=k[1], partitions=[part])]
            )
            return await self._first_code(node, req)

        out = await self._call(k, lambda: (self.store.initialize(k, state_epoch, start_offset), None), remote)
        return int(out[0])

    async def delete(self, k: StateKey) -> int:
        from kafkapy.protocol.messages.delete_share_group_state_request import (
            DeleteShareGroupStateRequest,
            DeleteStateData,
            PartitionData,
        )

        async def remote(node: int) -> tuple[int, None]:
            req = DeleteShareGroupStateRequest(
                group_id=k[0], topics=[DeleteStateData(topic_id=k[1], partitions=[PartitionData(partition=k[2])])]
            )
            return await self._first_code(node, req)

        out = await self._call(k, lambda: (self.store.delete(k), None), remote)
        return int(out[0])

    async def _first_code(self, node: int, req: Any) -> tuple[int, None]:
        resp = await self._send(node, req)
        if resp is None:
            return ErrorCode.NETWORK_EXCEPTION, None
        codes = [p.error_code for r in resp.results for p in r.partitions]
        return (codes[0] if codes else ErrorCode.UNKNOWN_SERVER_ERROR), None
