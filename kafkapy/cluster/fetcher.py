"""Follower side of replication: fetcher tasks that copy leaders' logs with Fetch.

One `SourceFetcher` per (leader broker, fetcher id < num.replica.fetchers)
holds a `BrokerConnection` to the leader and fetches every partition it
follows from that leader in one full Fetch request (no session), carrying
this broker's id as the replica id. A partition starts in the truncating
state: the fetcher asks OffsetForLeaderEpoch for the end offset of its
latest epoch and truncates a divergent tail before fetching. Fetched
batches are appended with `append_as_follower`; the follower's high
watermark becomes min(leader's high watermark, its log end offset) and its
log start offset follows the leader's.

Errors: NOT_LEADER_OR_FOLLOWER / FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH
back the partition off for replica.fetch.backoff.ms (the metadata will name
a new leader or epoch); OFFSET_OUT_OF_RANGE restarts the log at the
leader's log start when that is past our end, else truncates again;
OFFSET_MOVED_TO_TIERED_STORAGE (a tiered topic whose leader holds our next
offset remotely only) restarts the log at the leader's earliest local offset,
rebuilt from the remote metadata (the host's `tiered_follower`, KIP-405);
connection errors reconnect after the backoff.

Throttle: replicas being added by a reassignment, and replicas listed in the
topic's `follower.replication.throttled.replicas` (this broker) or
`leader.replication.throttled.replicas` (the leader), are fetched within
`follower.replication.throttled.rate` of this broker / the leader's
`leader.replication.throttled.rate` (dynamic broker configs, bytes/s, the
lower one applies): one token bucket per broker; while it is in debt the
throttled partitions wait, and each of their fetches asks for at most about
one second's worth of bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from kafkapy import __version__
from kafkapy.client import BrokerConnection, ConnectionSecurity, KafkaError
from kafkapy.config import BrokerConfig
from kafkapy.logging import get_logger
from kafkapy.protocol.api import ApiKey
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.errors import ProtocolError
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.fetch_request import (
    FetchPartition,
    FetchRequest,
    FetchTopic,
    ReplicaState,
)
from kafkapy.protocol.messages.list_offsets_request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kafkapy.protocol.messages.offset_for_leader_epoch_request import (
    OffsetForLeaderEpochRequest,
    OffsetForLeaderPartition,
    OffsetForLeaderTopic,
)
from kafkapy.protocol.primitives import ZERO_UUID
from kafkapy.protocol.records import validate_records
from kafkapy.storage.errors import LogDirError, OffsetOutOfRangeError, StorageError
from kafkapy.storage.log import PartitionLog

if TYPE_CHECKING:
    from kafkapy.cluster.view import ClusterView

log = get_logger(__name__)

EARLIEST, LATEST, EARLIEST_LOCAL = -2, -1, -4  # ListOffsets timestamps
_BATCH_LEN = struct.Struct(">qi")  # baseOffset, batchLength
_BACKOFF_ERRORS = frozenset(
    {
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.FENCED_LEADER_EPOCH,
        ErrorCode.UNKNOWN_LEADER_EPOCH,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.UNKNOWN_TOPIC_ID,
        ErrorCode.REPLICA_NOT_AVAILABLE,
        ErrorCode.LEADER_NOT_AVAILABLE,
    }
)
OFFSET_FOR_LEADER_EPOCH_MAX = 4


THROTTLE_RATE_FOLLOWER = "follower.replication.throttled.rate"
THROTTLE_RATE_LEADER = "leader.replication.throttled.rate"


def _listed(value: str | None, index: int, broker: int) -> bool:
    """Whether a `*.replication.throttled.replicas` value ("*" or "partition:broker,...") names this replica."""
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    return "*" in items or f"{index}:{broker}" in items


@dataclass(slots=True)
class TokenBucket:
    """Bytes/s allowance of throttled replica fetches; tokens go negative (debt) after a large fetch."""

    tokens: float = 0.0
    stamp: float = 0.0

    def refill(self, now: float, rate: float) -> None:
        self.tokens = min(rate, self.tokens + (now - self.stamp) * rate)  # at most one second of burst
        self.stamp = now

    def wait(self, rate: float) -> float:
        """Seconds until the debt is paid (0 when there is none)."""
        return -self.tokens / rate if self.tokens < 0 else 0.0


@dataclass(slots=True)
class FollowedPartition:
    topic: str
    index: int
    plog: PartitionLog
    leader_epoch: int
    truncating: bool = True
    backoff_until: float = 0.0  # loop time
    lag: int = 0  # the leader's high watermark in the last fetch answer - our log end (Kafka's ConsumerLag)


def complete_batches(buf: memoryview, start: int) -> tuple[int, int]:
    """(first, end) byte positions of the whole batches in `buf` ending after offset `start`.

    Batches wholly below `start` are skipped; a partial batch at the end
    (a fetch cut by max bytes) is left out.
    """
    n = len(buf)
    pos = first = 0
    skipping = True
    while pos + 12 <= n:
        base, length = _BATCH_LEN.unpack_from(buf, pos)
        end = pos + 12 + length
        if end > n or length < 49:
            break
        if skipping:
            (delta,) = struct.unpack_from(">i", buf, pos + 23)
            if base + delta < start:
                first = end
            else:
                skipping = False
        pos = end
    return first, max(first, pos)


class SourceFetcher:
    """Fetches the partitions this broker follows from one leader."""

    def __init__(self, manager: FetcherManager, leader: int, fetcher_id: int) -> None:
        self.manager = manager
        self.state = manager.state
        self.leader = leader
        self.fetcher_id = fetcher_id
        self.partitions: dict[tuple[str, int], FollowedPartition] = {}
        self._wake = asyncio.Event()
        self._conn: BrokerConnection | None = None
        self._ofle_version = OFFSET_FOR_LEADER_EPOCH_MAX
        self._closed = False
        # Kafka's FetcherStats of this fetcher: Fetch requests answered, record bytes they brought
        self.requests = 0
        self.bytes = 0
        self._task = asyncio.get_running_loop().create_task(self._run())

    # ------------------------------------------------------------ settings

    def _cfg(self, key: str, default: int) -> int:
        value = self.state.config.get(key)
        return default if value is None else int(value)

    @property
    def _backoff(self) -> float:
        return self._cfg("replica.fetch.backoff.ms", 1000) / 1000

    # ------------------------------------------------------------ membership

    def add(self, fp: FollowedPartition) -> None:
        self.partitions[(fp.topic, fp.index)] = fp
        self._wake.set()

    def remove(self, topic: str, index: int) -> None:
        self.partitions.pop((topic, index), None)

    async def close(self) -> None:
        self._closed = True
        # Python 3.11's wait_for drops a cancellation that races with its result; cancel until done.
        while not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task], timeout=0.5)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        await self._disconnect()

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    # ------------------------------------------------------------ loop

    async def _run(self) -> None:
        while not self._closed:
            if not self.partitions:
                await self._disconnect()
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                conn = await self._connection()
                await self._truncate(conn)
                if not await self._fetch(conn):
                    await self._idle()
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:
                log.warning("replica fetcher error", leader=self.leader, error=str(exc))
                await self._disconnect()
                await asyncio.sleep(self._backoff)
            except LogDirError:
                await asyncio.sleep(self._backoff)  # a truncation the disk refused: the log dir's state says why
            except Exception:
                log.exception("replica fetcher failed", leader=self.leader)
                await self._disconnect()
                await asyncio.sleep(self._backoff)

    async def _idle(self) -> None:
        """Nothing to fetch now: wait for a partition to leave backoff or be added."""
        loop = asyncio.get_running_loop()
        until = min((fp.backoff_until for fp in self.partitions.values()), default=loop.time() + self._backoff)
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(until - loop.time(), 0.001))

    async def _connection(self) -> BrokerConnection:
        info = self.state.metadata.broker_info(self.leader)
        if info is None:
            raise KafkaError(ErrorCode.BROKER_NOT_AVAILABLE, f"leader {self.leader} is not registered")
        conn = self._conn
        if (
            conn is not None
            and not conn.closed
            and not conn.expiring
            and (conn.host, conn.port) == (info.host, info.port)
        ):
            return conn
        await self._disconnect()
        wait_ms = self._cfg("replica.fetch.wait.max.ms", 500)
        timeout = max(self._cfg("replica.socket.timeout.ms", 30000), wait_ms + 5000) / 1000
        conn = BrokerConnection(  # host/port: the leader's inter-broker endpoint
            info.host,
            info.port,
            client_id=f"kafkapy-replica-fetcher-{self.state.node_id}-{self.fetcher_id}",
            request_timeout=timeout,
            security=self.manager.security(),
        )
        await conn.connect(timeout)
        self._conn = conn
        # BrokerConnection negotiates only the client's APIs; learn OffsetForLeaderEpoch's range too.
        resp: Any = await conn.request(
            ApiVersionsRequest(client_software_name="kafkapy", client_software_version=__version__), 3
        )
        for k in resp.api_keys:
            if k.api_key == ApiKey.OFFSET_FOR_LEADER_EPOCH:
                self._ofle_version = min(OFFSET_FOR_LEADER_EPOCH_MAX, k.max_version)
        log.info("replica fetcher connected", leader=self.leader, address=conn.address)
        return conn

    # ------------------------------------------------------------ truncation

    async def _truncate(self, conn: BrokerConnection) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        asking: dict[tuple[str, int], tuple[FollowedPartition, int]] = {}
        for key, fp in list(self.partitions.items()):
            if not fp.truncating or fp.backoff_until > now:
                continue
            plog = fp.plog
            epoch = plog.latest_epoch
            if epoch < 0:
                # No epoch history: keep what is known committed (Kafka's pre-epoch rule).
                if plog.log_end_offset > plog.high_watermark:
                    plog.truncate_to(plog.high_watermark)
                fp.truncating = False
                continue
            asking[key] = (fp, epoch)
        if not asking:
            return
        by_topic: dict[str, list[OffsetForLeaderPartition]] = {}
        for (topic, index), (fp, epoch) in asking.items():
            by_topic.setdefault(topic, []).append(
                OffsetForLeaderPartition(partition=index, current_leader_epoch=fp.leader_epoch, leader_epoch=epoch)
            )
        req = OffsetForLeaderEpochRequest(
            replica_id=self.state.node_id,
            topics=[OffsetForLeaderTopic(topic=t, partitions=ps) for t, ps in by_topic.items()],
        )
        resp: Any = await conn.request(req, self._ofle_version)
        for t in resp.topics:
            for p in t.partitions:
                entry = asking.get((t.topic, p.partition))
                if entry is None:
                    continue
                fp, asked = entry
                if self.partitions.get((fp.topic, fp.index)) is not fp:
                    continue  # reassigned meanwhile
                if p.error_code != ErrorCode.NONE:
                    log.info("truncation deferred", topic=fp.topic, partition=fp.index, error=p.error_code)
                    fp.backoff_until = loop.time() + self._backoff
                    continue
                self._truncate_to_leader(fp, asked, p.leader_epoch, p.end_offset)

    def _truncate_to_leader(self, fp: FollowedPartition, asked: int, leader_epoch: int, end_offset: int) -> None:
        plog = fp.plog
        leo = plog.log_end_offset
        if end_offset < 0:
            target = plog.high_watermark  # the leader knows no epoch at or below ours
        elif leader_epoch == asked:
            target = min(end_offset, leo)
        else:
            # The leader's largest epoch below ours: keep what our log holds of that epoch.
            _, ours = plog.end_offset_for_epoch(leader_epoch)
            target = min(end_offset, leo, ours if ours >= 0 else end_offset)
        if target < leo:
            log.info(
                "follower truncating",
                topic=fp.topic,
                partition=fp.index,
                from_offset=leo,
                to_offset=target,
                leader=self.leader,
                leader_epoch=fp.leader_epoch,
            )
            plog.truncate_to(target)
        fp.truncating = False

    # ------------------------------------------------------------ fetch

    async def _fetch(self, conn: BrokerConnection) -> bool:
        """One Fetch round; False when no partition was ready to fetch."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        ready = [fp for fp in self.partitions.values() if not fp.truncating and fp.backoff_until <= now]
        rates = {(fp.topic, fp.index): self.manager.throttle_rate(fp.topic, fp.index, self.leader) for fp in ready}
        limit = min((r for r in rates.values() if r > 0), default=0.0)
        if limit > 0:
            bucket = self.manager.bucket
            bucket.refill(now, limit)
            wait = min(bucket.wait(limit), 1.0)  # look again within a second: the rate may change
            if wait > 0:
                for fp in ready:
                    if rates[(fp.topic, fp.index)] > 0:
                        fp.backoff_until = now + wait
                ready = [fp for fp in ready if rates[(fp.topic, fp.index)] <= 0]
        if not ready:
            return False
        version = conn.version_for(ApiKey.FETCH)
        ids: dict[str, UUID] = {}
        for fp in ready:
            if fp.topic not in ids:
                info = self.state.metadata.topic(fp.topic)
                ids[fp.topic] = info.topic_id if info is not None else ZERO_UUID
        if version >= 13 and any(tid == ZERO_UUID for tid in ids.values()):
            version = 12  # topic ids unknown: names
        part_max = self._cfg("replica.fetch.max.bytes", 1048576)
        by_topic: dict[str, list[FetchPartition]] = {}
        sent: dict[tuple[str, int], tuple[FollowedPartition, int]] = {}
        for fp in ready:
            offset = fp.plog.log_end_offset
            sent[(fp.topic, fp.index)] = (fp, offset)
            throttled = rates[(fp.topic, fp.index)] > 0
            by_topic.setdefault(fp.topic, []).append(
                FetchPartition(
                    partition=fp.index,
                    current_leader_epoch=fp.leader_epoch,
                    fetch_offset=offset,
                    log_start_offset=fp.plog.log_start_offset,
                    partition_max_bytes=min(part_max, max(int(limit), 1)) if throttled else part_max,
                    high_watermark=fp.plog.high_watermark,  # v18 (KIP-1166): a leader ahead answers at once
                )
            )
        me = self.state.node_id
        req = FetchRequest(
            replica_id=me if version < 15 else -1,
            replica_state=ReplicaState(replica_id=me if version >= 15 else -1, replica_epoch=-1),
            max_wait_ms=self._cfg("replica.fetch.wait.max.ms", 500),
            min_bytes=self._cfg("replica.fetch.min.bytes", 1),
            max_bytes=self._cfg("replica.fetch.response.max.bytes", 10485760),
            isolation_level=0,
            session_id=0,
            session_epoch=-1,
            topics=[FetchTopic(topic=t, topic_id=ids[t], partitions=ps) for t, ps in by_topic.items()],
        )
        resp: Any = await conn.request(req, version)
        self.requests += 1
        if resp.error_code != ErrorCode.NONE:
            for fp in ready:
                fp.backoff_until = loop.time() + self._backoff
            log.warning("replica fetch refused", leader=self.leader, error=resp.error_code)
            return True
        names = {tid: name for name, tid in ids.items()}
        for t in resp.responses:
            topic = names.get(t.topic_id, t.topic) if version >= 13 else t.topic
            for pd in t.partitions:
                entry = sent.get((topic, pd.partition_index))
                if entry is None:
                    continue
                fp, offset = entry
                if pd.records is not None:
                    self.bytes += len(pd.records)
                    if rates[(fp.topic, fp.index)] > 0:
                        self.manager.bucket.tokens -= len(pd.records)
                if self.partitions.get((fp.topic, fp.index)) is not fp or fp.truncating:
                    continue  # role or epoch changed while the fetch was out
                if fp.plog.log_end_offset != offset or fp.plog.closed:
                    continue
                await self._handle_partition(conn, fp, pd, offset)
                if pd.high_watermark >= 0:
                    fp.lag = max(0, pd.high_watermark - fp.plog.log_end_offset)
        return True

    async def _handle_partition(self, conn: BrokerConnection, fp: FollowedPartition, pd: Any, offset: int) -> None:
        code = pd.error_code
        if code == ErrorCode.NONE:
            try:
                self._append(fp, pd, offset)
            except LogDirError:
                # a full or failing disk: nothing was written (the log dir's state is logged once);
                # fetch the same offset again after the backoff
                fp.backoff_until = asyncio.get_running_loop().time() + self._backoff
            except (StorageError, ProtocolError) as exc:
                log.error("follower append failed", topic=fp.topic, partition=fp.index, error=str(exc))
                fp.truncating = True
                fp.backoff_until = asyncio.get_running_loop().time() + self._backoff
        elif code == ErrorCode.OFFSET_OUT_OF_RANGE:
            await self._out_of_range(conn, fp)
        elif code == ErrorCode.OFFSET_MOVED_TO_TIERED_STORAGE:
            await self._moved_to_tiered(conn, fp)
        else:
            if code not in _BACKOFF_ERRORS:
                log.warning("replica fetch error", topic=fp.topic, partition=fp.index, leader=self.leader, error=code)
            fp.backoff_until = asyncio.get_running_loop().time() + self._backoff

    def _append(self, fp: FollowedPartition, pd: Any, offset: int) -> None:
        plog = fp.plog
        records = pd.records
        if records is not None and len(records) > 0:
            buf = memoryview(records)
            first, end = complete_batches(buf, offset)
            if end > first:
                chunk = buf[first:end]
                validate_records(chunk, None, strict_offsets=False)
                plog.append_as_follower(chunk)
        if pd.high_watermark >= 0:
            plog.high_watermark = min(pd.high_watermark, plog.log_end_offset)
        if pd.log_start_offset > plog.log_start_offset:
            with contextlib.suppress(OffsetOutOfRangeError):
                plog.delete_records_before(min(pd.log_start_offset, plog.high_watermark))

    async def _list_offset(self, conn: BrokerConnection, fp: FollowedPartition, timestamp: int) -> int | None:
        """The leader's offset for EARLIEST or LATEST (its log end, asked as a replica); None on an error."""
        req = ListOffsetsRequest(
            replica_id=self.state.node_id,
            isolation_level=0,
            topics=[
                ListOffsetsTopic(
                    name=fp.topic,
                    partitions=[
                        ListOffsetsPartition(
                            partition_index=fp.index, current_leader_epoch=fp.leader_epoch, timestamp=timestamp
                        )
                    ],
                )
            ],
        )
        resp: Any = await conn.request(req)
        for t in resp.topics:
            for r in t.partitions:
                if r.partition_index == fp.index and r.error_code == ErrorCode.NONE:
                    return int(r.offset)
        return None

    async def _out_of_range(self, conn: BrokerConnection, fp: FollowedPartition) -> None:
        start = await self._list_offset(conn, fp, EARLIEST)
        end = await self._list_offset(conn, fp, LATEST) if start is not None else None
        if self.partitions.get((fp.topic, fp.index)) is not fp:
            return
        if start is None or end is None:
            fp.backoff_until = asyncio.get_running_loop().time() + self._backoff
            return
        plog = fp.plog
        if start > plog.log_end_offset:
            log.info("follower restarting log", topic=fp.topic, partition=fp.index, at=start)
            plog.truncate_fully_and_start_at(start)
        elif plog.log_end_offset > end:
            # ahead of the leader (an unclean election): keep only what the leader has
            log.info(
                "follower truncating",
                topic=fp.topic,
                partition=fp.index,
                from_offset=plog.log_end_offset,
                to_offset=end,
                leader=self.leader,
                leader_epoch=fp.leader_epoch,
            )
            plog.truncate_to(end)
        else:
            fp.truncating = True

    async def _moved_to_tiered(self, conn: BrokerConnection, fp: FollowedPartition) -> None:
        """OFFSET_MOVED_TO_TIERED_STORAGE: our log end lies where the leader holds remote data only.
        KIP-405's follower path: restart the log at the leader's earliest local offset with the
        leader's log start offset, the leader epochs and the producer state rebuilt from the remote
        metadata and producer snapshot, then fetch on from there."""
        loop = asyncio.get_running_loop()
        restart = getattr(self.state, "tiered_follower", None)
        local = await self._list_offset(conn, fp, EARLIEST_LOCAL)
        start = await self._list_offset(conn, fp, EARLIEST) if local is not None else None
        if self.partitions.get((fp.topic, fp.index)) is not fp:
            return
        if local is None or start is None or restart is None:
            fp.backoff_until = loop.time() + self._backoff
            return
        plog = fp.plog
        log.info(
            "follower restarting log from remote storage",
            topic=fp.topic,
            partition=fp.index,
            from_offset=plog.log_end_offset,
            local_start=local,
            log_start=start,
            leader=self.leader,
        )
        try:
            await restart(fp.topic, fp.index, plog, local, start)
        except Exception as exc:  # the object or metadata store failed: ask again after the backoff
            log.warning(
                "follower rebuild from remote storage failed",
                topic=fp.topic,
                partition=fp.index,
                error=f"{type(exc).__name__}: {exc}",
            )
            fp.backoff_until = loop.time() + self._backoff


class FetcherHost(Protocol):
    """What the fetchers use of the broker (the replica manager provides it)."""

    config: BrokerConfig
    metadata: ClusterView
    node_id: int

    def partition_log(self, topic: str, index: int) -> PartitionLog | None: ...


@dataclass(slots=True)
class FetcherManager:
    """Routes followed partitions to one fetcher per (leader, fetcher id)."""

    state: FetcherHost
    fetchers: dict[tuple[int, int], SourceFetcher] = field(default_factory=dict)
    assigned: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    bucket: TokenBucket = field(default_factory=TokenBucket)
    _security: ConnectionSecurity | None = None

    def security(self) -> ConnectionSecurity:
        """TLS / SASL of the inter-broker listener, built once."""
        if self._security is None:
            from kafkapy.cluster.inter_broker import inter_broker_security

            self._security = inter_broker_security(self.state.config)
        return self._security

    def _broker_rate(self, broker: int, key: str) -> float:
        configs = getattr(self.state.metadata, "broker_configs", None)
        if configs is None:
            return 0.0
        value = configs(str(broker)).get(key) or configs("default").get(key)
        try:
            return max(float(value), 0.0) if value else 0.0
        except ValueError:
            return 0.0

    def throttle_rate(self, topic: str, index: int, leader: int) -> float:
        """Bytes/s limit of fetching this partition from `leader` (0: not throttled)."""
        info = self.state.metadata.topic(topic)
        if info is None or not 0 <= index < len(info.partitions):
            return 0.0
        me = self.state.node_id
        moving = me in info.partitions[index].adding_replicas
        rates = []
        if moving or _listed(info.configs.get("follower.replication.throttled.replicas"), index, me):
            rates.append(self._broker_rate(me, THROTTLE_RATE_FOLLOWER))
        if moving or _listed(info.configs.get("leader.replication.throttled.replicas"), index, leader):
            rates.append(self._broker_rate(leader, THROTTLE_RATE_LEADER))
        return min((r for r in rates if r > 0), default=0.0)

    def _fetcher_id(self, topic: str, index: int) -> int:
        n = max(int(self.state.config.get("num.replica.fetchers") or 1), 1)
        return (zlib.crc32(topic.encode()) * 31 + index) % n

    def add(self, topic: str, index: int, leader: int, leader_epoch: int) -> None:
        """Follow `leader` at `leader_epoch`: truncate first, then fetch."""
        self.remove(topic, index)
        plog = self.state.partition_log(topic, index)
        if plog is None:
            log.warning("follower without a log", topic=topic, partition=index)
            return
        key = (leader, self._fetcher_id(topic, index))
        fetcher = self.fetchers.get(key)
        if fetcher is None:
            fetcher = self.fetchers[key] = SourceFetcher(self, leader, key[1])
        fetcher.add(FollowedPartition(topic, index, plog, leader_epoch))
        self.assigned[(topic, index)] = key

    def remove(self, topic: str, index: int) -> None:
        key = self.assigned.pop((topic, index), None)
        if key is not None and key in self.fetchers:
            self.fetchers[key].remove(topic, index)

    def following(self, topic: str, index: int) -> FollowedPartition | None:
        key = self.assigned.get((topic, index))
        fetcher = self.fetchers.get(key) if key is not None else None
        return fetcher.partitions.get((topic, index)) if fetcher is not None else None

    async def close(self) -> None:
        fetchers, self.fetchers = list(self.fetchers.values()), {}
        self.assigned.clear()
        for f in fetchers:
            await f.close()
