"""Leader/follower replication: the leader's side and the per-partition roles.

`ReplicaManager` keeps, for every partition this broker holds a replica of,
its role from the metadata (`apply`). As leader it tracks each follower's
log end offset (the offset of its last fetch) and last caught-up time,
moves the high watermark to the minimum log end offset over the ISR, wakes
acks=all producers (`wait_replicated`) and long-polling fetches, shrinks the
ISR of followers lagging more than replica.lag.time.max.ms and expands it
when a follower catches up, always by compare-and-swap (`alter_isr`). As
follower it hands the partition to the fetchers (fetcher.py).

Caught up, as Kafka defines it: a follower whose fetch reaches the leader's
log end offset is caught up now; one whose fetch reaches the leader's log
end offset at its previous fetch was caught up at that previous fetch.

Everything runs on the broker's event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kafkapy.cluster.delayed import PartitionWatchers
from kafkapy.cluster.metadata import PartitionInfo
from kafkapy.cluster.partition import Partition
from kafkapy.cluster.view import ClusterView
from kafkapy.config import BrokerConfig
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.storage.log import PartitionLog
from kafkapy.storage.log_manager import LogManager

if TYPE_CHECKING:
    from kafkapy.cluster.fetcher import FetcherManager

log = get_logger(__name__)


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


def _copy(info: PartitionInfo) -> PartitionInfo:
    return dataclasses.replace(info, replicas=list(info.replicas), isr=list(info.isr))


def _assigned(info: PartitionInfo) -> list[int]:
    """Every broker that holds (or is being given) a replica: replicas plus a reassignment's additions."""
    adding = getattr(info, "adding_replicas", None) or []
    return [*info.replicas, *(n for n in adding if n not in info.replicas)]


@dataclass(slots=True)
class FollowerProgress:
    """What the leader knows of one follower (reset on every leader change)."""

    node_id: int
    log_end_offset: int = -1  # offset of its last fetch; -1 until it fetches in this epoch
    log_start_offset: int = -1
    last_caught_up_ms: int = 0
    last_fetch_ms: int = 0
    leader_end_at_last_fetch: int = 0


@dataclass(slots=True)
class _Waiter:
    end_offset: int
    min_isr: int
    future: asyncio.Future[int]


async def _wait(waiters: list[_Waiter], w: _Waiter, timeout_ms: int) -> int:
    """The error code `w` is completed with, or REQUEST_TIMED_OUT; `w` leaves `waiters` either way."""
    try:
        return await asyncio.wait_for(w.future, max(timeout_ms, 0) / 1000)
    except TimeoutError:
        return ErrorCode.REQUEST_TIMED_OUT
    finally:
        if w in waiters:
            waiters.remove(w)


@dataclass(slots=True)
class Replica:
    """This broker's replica of one partition."""

    topic: str
    index: int
    info: PartitionInfo  # the partition state last applied (a private copy)
    plog: PartitionLog
    is_leader: bool = False
    epoch_start: int = 0  # leader: log end offset when its epoch began
    followers: dict[int, FollowerProgress] = field(default_factory=dict)
    waiters: list[_Waiter] = field(default_factory=list)
    start_waiters: list[_Waiter] = field(default_factory=list)  # DeleteRecords: low watermark waits
    pending_isr: list[int] | None = None  # an alter_isr in flight
    partition: Partition | None = None  # the leader's handle, made once per leadership


class ReplicaManager:
    """Roles per partition, high watermarks, the ISR and acks=all waits. See the module docstring."""

    def __init__(self, config: BrokerConfig, metadata: ClusterView, logs: LogManager) -> None:
        self.config = config
        self.metadata = metadata
        self.logs = logs
        self.node_id: int = metadata.broker.node_id
        # Fetches waiting for a partition to move: consumers wake on its high watermark (or log start),
        # followers also on every leader append.
        self.consumer_waits = PartitionWatchers()
        self.follower_waits = PartitionWatchers()
        self._replicas: dict[tuple[str, int], Replica] = {}
        self._min_isr: dict[str, tuple[dict[str, str] | None, int]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._isr_tasks: set[asyncio.Task[None]] = set()
        self.fetchers: FetcherManager | None = None
        self._closed = False
        # ISR changes of partitions led here, by this leader or by the controller (Kafka's IsrShrinksPerSec /
        # IsrExpandsPerSec counts)
        self.isr_shrinks = 0
        self.isr_expands = 0
        # tiered storage (kafkapy.server.tiering): restart a follower's log at the leader's local start
        # from the remote metadata (topic, partition, log, local start, log start); None without it
        self.tiered_follower: Callable[[str, int, PartitionLog, int, int], Awaitable[None]] | None = None

    # ------------------------------------------------------------ lifecycle

    def _lag_ms(self) -> int:
        return int(self.config.get("replica.lag.time.max.ms") or 30000)

    def partition_log(self, topic: str, index: int) -> PartitionLog | None:
        """The local log of a partition, whatever this broker's role in it."""
        return self.logs.get(topic, index)

    async def start(self, *, replicating: bool = True) -> None:
        """Start ISR maintenance and, when other brokers may hold replicas, the replica fetchers."""
        if not replicating:
            return
        from kafkapy.cluster.fetcher import FetcherManager

        if self.fetchers is None:
            self.fetchers = FetcherManager(self)
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._isr_maintenance()))
        # partitions applied before start() are followed from now on
        for r in self._replicas.values():
            if not r.is_leader and r.info.leader >= 0 and r.info.leader != self.node_id:
                self.fetchers.add(r.topic, r.index, r.info.leader, r.info.leader_epoch)

    async def close(self) -> None:
        self._closed = True
        for t in [*self._tasks, *self._isr_tasks]:
            t.cancel()
        for t in [*self._tasks, *self._isr_tasks]:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        self._isr_tasks.clear()
        if self.fetchers is not None:
            await self.fetchers.close()
        for r in self._replicas.values():
            self._fail_waiters(r, ErrorCode.NOT_LEADER_OR_FOLLOWER)
            r.plog.append_listener = None

    # ------------------------------------------------------------ metadata

    def apply(self, topic: str, info: PartitionInfo) -> None:
        """A partition's state from the metadata, in metadata order (see the contract in the module)."""
        key = (topic, info.index)
        me = self.node_id
        current = self._replicas.get(key)
        if me not in _assigned(info):
            if current is not None:
                self.forget(topic, info.index)
            return
        if current is not None and (info.leader_epoch, info.partition_epoch) < (
            current.info.leader_epoch,
            current.info.partition_epoch,
        ):
            return  # older than what an alter_isr already told us
        plog = self.logs.get(topic, info.index)
        if plog is None:
            log.warning("replica without a log", topic=topic, partition=info.index)
            return
        new = _copy(info)
        if current is not None and current.plog is not plog:
            self.forget(topic, info.index)  # the log was recreated (topic deleted and made again)
            current = None
        if current is None:
            current = self._replicas[key] = Replica(topic, info.index, new, plog)
            changed_epoch = True
        else:
            changed_epoch = (info.leader, info.leader_epoch) != (current.info.leader, current.info.leader_epoch)
        if info.leader == me and me in getattr(self.metadata, "dir_changed", ()):
            # our data dir is new (emptied): a state naming us leader predates it; the controller is
            # about to elect another leader or none (docs/cluster.md, "A broker back with an empty data dir")
            if current.is_leader or changed_epoch:
                log.warning("not leading: this broker's data dir is new", topic=topic, partition=info.index)
            return
        if info.leader == me:
            if changed_epoch or not current.is_leader:
                current.info = new
                self._become_leader(current)
            else:
                self._count_isr_change(current.info.isr, new.isr)
                current.info = new  # same epoch: the ISR (or partition epoch, or assignment) changed
                now = _now_ms()
                current.followers = {
                    n: current.followers.get(n) or FollowerProgress(n, last_caught_up_ms=now)
                    for n in _assigned(new)
                    if n != me
                }
                if current.pending_isr is not None and new.isr == current.pending_isr:
                    current.pending_isr = None
            self._maybe_advance_hw(current)
        else:
            was_leader = current.is_leader
            current.info = new
            if changed_epoch or was_leader:
                self._become_follower(current)

    def forget(self, topic: str, index: int) -> None:
        r = self._replicas.pop((topic, index), None)
        if self.fetchers is not None:
            self.fetchers.remove(topic, index)
        if r is not None:
            self._fail_waiters(r, ErrorCode.NOT_LEADER_OR_FOLLOWER)
            r.partition = None
            if r.plog.append_listener == self._on_append:
                r.plog.append_listener = None
            self._wake((topic, index))
            log.info("replica forgotten", topic=topic, partition=index)

    def _become_leader(self, r: Replica) -> None:
        if self.fetchers is not None:
            self.fetchers.remove(r.topic, r.index)
        plog = r.plog
        epoch = r.info.leader_epoch
        leo = plog.log_end_offset
        if epoch > plog.latest_epoch and not plog.auto_high_watermark:
            # A new leader records its epoch at the log end (followers truncate against it). A single
            # broker's epoch never changes: its first append records it, and opening a hundred
            # partitions does not write a hundred checkpoints.
            plog.epoch_cache.assign(epoch, leo)
        r.is_leader = True
        r.epoch_start = leo
        r.pending_isr = None
        r.partition = Partition(r.topic, r.index, plog, epoch, self)
        now = _now_ms()
        # Followers in the ISR keep their place for a lag period; their offsets are unknown until they fetch.
        r.followers = {n: FollowerProgress(n, last_caught_up_ms=now) for n in _assigned(r.info) if n != self.node_id}
        plog.append_listener = self._on_append
        log.info(
            "became leader",
            topic=r.topic,
            partition=r.index,
            leader_epoch=epoch,
            log_end_offset=leo,
            high_watermark=plog.high_watermark,
            isr=r.info.isr,
        )

    def _become_follower(self, r: Replica) -> None:
        self._fail_waiters(r, ErrorCode.NOT_LEADER_OR_FOLLOWER)
        r.is_leader = False
        r.partition = None
        r.followers = {}
        r.pending_isr = None
        if r.plog.append_listener == self._on_append:
            r.plog.append_listener = None
        self._wake((r.topic, r.index))  # waiting fetches answer NOT_LEADER_OR_FOLLOWER now
        if self.fetchers is not None and not self._closed:
            if r.info.leader >= 0:
                self.fetchers.add(r.topic, r.index, r.info.leader, r.info.leader_epoch)
            else:
                self.fetchers.remove(r.topic, r.index)
        log.info(
            "became follower", topic=r.topic, partition=r.index, leader=r.info.leader, leader_epoch=r.info.leader_epoch
        )

    # ------------------------------------------------------------ queries

    def replica(self, topic: str, index: int) -> Replica | None:
        return self._replicas.get((topic, index))

    def all_replicas(self) -> list[Replica]:
        """Every replica hosted here (metrics read roles and ISRs from them)."""
        return list(self._replicas.values())

    def partition(self, topic: str, index: int, current_leader_epoch: int = -1) -> Partition | int:
        """The partition if this broker leads it at `current_leader_epoch` (-1: any epoch), else
        the Kafka error code: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH
        (the caller's epoch is older) or UNKNOWN_LEADER_EPOCH (newer)."""
        r = self._replicas.get((topic, index))
        if (
            r is not None
            and r.partition is not None
            and (current_leader_epoch < 0 or current_leader_epoch == r.partition.leader_epoch)
        ):
            return r.partition
        return self.leader_check(topic, index, current_leader_epoch)

    def leader_check(self, topic: str, index: int, current_leader_epoch: int = -1) -> int:
        r = self._replicas.get((topic, index))
        if r is None:
            info = self.metadata.topic(topic)
            if info is None or index >= len(info.partitions) or index < 0:
                return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        epoch = r.info.leader_epoch
        if current_leader_epoch >= 0 and current_leader_epoch != epoch:
            return ErrorCode.FENCED_LEADER_EPOCH if current_leader_epoch < epoch else ErrorCode.UNKNOWN_LEADER_EPOCH
        return ErrorCode.NONE if r.is_leader else ErrorCode.NOT_LEADER_OR_FOLLOWER

    def leader_epoch(self, topic: str, index: int) -> int:
        """The partition's leader epoch in the metadata (-1: unknown partition)."""
        info = self.metadata.topic(topic)
        if info is None or not 0 <= index < len(info.partitions):
            return -1
        return info.partitions[index].leader_epoch

    def isr(self, topic: str, index: int) -> list[int]:
        r = self._replicas.get((topic, index))
        if r is not None:
            return list(r.info.isr)
        info = self.metadata.topic(topic)
        if info is None or not 0 <= index < len(info.partitions):
            return []
        return list(info.partitions[index].isr)

    def min_isr(self, topic: str) -> int:
        """min.insync.replicas of a topic: its override, else the broker's (asked on every acks=all
        produce: kept per topic until the stores hand in a new configs dict)."""
        info = self.metadata.topic(topic)
        configs = info.configs if info is not None else None
        cached = self._min_isr.get(topic)
        if cached is not None and cached[0] is configs:
            return cached[1]
        value = int(self.config.get("min.insync.replicas") or 1)
        raw = configs.get("min.insync.replicas") if configs is not None else None
        if raw is not None:
            try:
                value = int(raw)
            except ValueError:
                pass
        self._min_isr[topic] = (configs, value)
        return value

    # ------------------------------------------------------------ leader side

    def on_follower_fetch(
        self,
        topic: str,
        index: int,
        replica_id: int,
        fetch_offset: int,
        current_leader_epoch: int = -1,
        log_start_offset: int = -1,
    ) -> int:
        """A follower's fetch reached the leader: validate it and record the follower's progress.

        Offsets outside [log start, log end] are not recorded (the read answers OFFSET_OUT_OF_RANGE).
        """
        code = self.leader_check(topic, index, current_leader_epoch)
        if code != ErrorCode.NONE:
            return code
        r = self._replicas[(topic, index)]
        f = r.followers.get(replica_id)
        if f is None:  # not an assigned replica of this partition
            # A single broker is the whole ISR of its partitions: it serves a replica fetch from outside
            # (a broker copying its log) read-only, with nothing to track.
            return ErrorCode.NONE if r.plog.auto_high_watermark else ErrorCode.NOT_LEADER_OR_FOLLOWER
        plog = r.plog
        leo = plog.log_end_offset
        if not plog.log_start_offset <= fetch_offset <= leo:
            return ErrorCode.NONE
        now = _now_ms()
        if fetch_offset >= leo:
            f.last_caught_up_ms = now
        elif fetch_offset >= f.leader_end_at_last_fetch:
            f.last_caught_up_ms = max(f.last_caught_up_ms, f.last_fetch_ms)
        f.leader_end_at_last_fetch = leo
        f.last_fetch_ms = now
        f.log_end_offset = fetch_offset
        if log_start_offset >= 0:
            f.log_start_offset = log_start_offset
            if r.start_waiters:
                self._complete_start_waiters(r)
        self._maybe_expand_isr(r, f)
        self._maybe_advance_hw(r)
        return ErrorCode.NONE

    # ------------------------------------------------------------ DeleteRecords

    def low_watermark(self, topic: str, index: int) -> int:
        """Kafka's low watermark: the smallest log start offset of the leader and its live followers
        (-1 while a live follower has not reported one in this epoch)."""
        r = self._replicas.get((topic, index))
        if r is None or not r.is_leader:
            return -1
        return self._low_watermark(r)

    def _low_watermark(self, r: Replica) -> int:
        low = r.plog.log_start_offset
        for f in r.followers.values():
            if self.metadata.broker_info(f.node_id) is not None:
                low = min(low, f.log_start_offset)
        return low

    def _complete_start_waiters(self, r: Replica) -> None:
        low = self._low_watermark(r)
        keep: list[_Waiter] = []
        for w in r.start_waiters:
            if w.future.done():
                continue
            if low >= w.end_offset:
                w.future.set_result(ErrorCode.NONE)
            else:
                keep.append(w)
        r.start_waiters = keep

    async def wait_low_watermark(self, topic: str, index: int, offset: int, timeout_ms: int) -> int:
        """DeleteRecords: wait until every live replica's log start reached `offset`."""
        r = self._replicas.get((topic, index))
        if r is None or not r.is_leader:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        if self._low_watermark(r) >= offset:
            return ErrorCode.NONE
        w = _Waiter(offset, 0, asyncio.get_running_loop().create_future())
        r.start_waiters.append(w)
        self.follower_waits.wake((topic, index))  # parked follower fetches answer with the new log start
        return await _wait(r.start_waiters, w, timeout_ms)

    def _wake(self, key: tuple[str, int]) -> None:
        self.consumer_waits.wake(key)
        self.follower_waits.wake(key)

    def _on_append(self, plog: PartitionLog) -> None:
        key = (plog.topic, plog.partition)
        if plog.auto_high_watermark:  # the whole ISR is this broker: the append moved the high watermark
            self.consumer_waits.wake(key)
            return
        self.follower_waits.wake(key)
        r = self._replicas.get(key)
        if r is not None and r.plog is plog:
            self._maybe_advance_hw(r)

    def _maybe_advance_hw(self, r: Replica) -> bool:
        """HW = min log end offset over the ISR (and a pending expansion), forward only."""
        if not r.is_leader:
            return False
        plog = r.plog
        if plog.latest_epoch < r.info.leader_epoch:
            return False  # the log has no record of the current epoch yet
        candidate = plog.log_end_offset
        members = set(r.info.isr)
        if r.pending_isr is not None:
            members.update(r.pending_isr)
        for n in members:
            if n == self.node_id:
                continue
            f = r.followers.get(n)
            if f is None:
                continue  # an ISR member that is no longer a replica: a reassignment in flight
            candidate = min(candidate, f.log_end_offset)
        if candidate <= plog.high_watermark:
            return False
        plog.high_watermark = candidate
        self._complete_waiters(r)
        self._wake((r.topic, r.index))
        return True

    def _complete_waiters(self, r: Replica) -> None:
        if not r.waiters:
            return
        hw = r.plog.high_watermark
        isr_size = len(r.info.isr)
        keep: list[_Waiter] = []
        for w in r.waiters:
            if w.future.done():
                continue
            if w.end_offset <= hw:
                w.future.set_result(
                    ErrorCode.NONE if isr_size >= w.min_isr else ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
                )
            else:
                keep.append(w)
        r.waiters = keep

    def _fail_waiters(self, r: Replica, code: int) -> None:
        for w in [*r.waiters, *r.start_waiters]:
            if not w.future.done():
                w.future.set_result(code)
        r.waiters = []
        r.start_waiters = []

    async def wait_replicated(self, topic: str, index: int, end_offset: int, timeout_ms: int, min_isr: int) -> int:
        """acks=all: wait until the high watermark reaches `end_offset`."""
        r = self._replicas.get((topic, index))
        if r is None or not r.is_leader:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        self._maybe_advance_hw(r)
        if r.plog.high_watermark >= end_offset:
            return ErrorCode.NONE if len(r.info.isr) >= min_isr else ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
        w = _Waiter(end_offset, min_isr, asyncio.get_running_loop().create_future())
        r.waiters.append(w)
        return await _wait(r.waiters, w, timeout_ms)

    # ------------------------------------------------------------ ISR changes

    def _maybe_expand_isr(self, r: Replica, f: FollowerProgress) -> None:
        if r.pending_isr is not None or f.node_id in r.info.isr:
            return
        if f.node_id in getattr(self.metadata, "log_dir_offline", ()):
            return  # its disk refuses writes (KIP-841: no ISR for a replica whose log dir is offline)
        if f.node_id in getattr(self.metadata, "dir_changed", ()):
            return  # back with a new data dir: the controller takes it out of every ISR first
        if f.log_end_offset >= r.plog.high_watermark and f.log_end_offset >= r.epoch_start:
            self._alter_isr(r, [*r.info.isr, f.node_id], "expand")

    def shrink_isr(self, now_ms: int | None = None) -> None:
        """Drop followers out of sync for longer than replica.lag.time.max.ms (one pass)."""
        now = _now_ms() if now_ms is None else now_ms
        lag = self._lag_ms()
        for r in list(self._replicas.values()):
            if not r.is_leader or r.pending_isr is not None:
                continue
            leo = r.plog.log_end_offset
            out = [
                n
                for n in r.info.isr
                if n != self.node_id
                and (f := r.followers.get(n)) is not None
                and f.log_end_offset < leo
                and now - f.last_caught_up_ms > lag
            ]
            if out:
                self._alter_isr(r, [n for n in r.info.isr if n not in out], "shrink")

    def _alter_isr(self, r: Replica, isr: list[int], why: str) -> None:
        if self._closed:
            return
        if self.node_id not in isr:
            isr = [self.node_id, *isr]
        r.pending_isr = isr
        task = asyncio.get_running_loop().create_task(self._send_alter_isr(r, isr, why))
        self._isr_tasks.add(task)
        task.add_done_callback(self._isr_tasks.discard)

    async def _send_alter_isr(self, r: Replica, isr: list[int], why: str) -> None:
        base = r.info.partition_epoch
        leader_epoch = r.info.leader_epoch
        result: PartitionInfo | None = None
        try:
            result = await self.metadata.alter_isr(r.topic, r.index, isr, base)
        except Exception as exc:  # the store is unreachable: retry on the next pass
            log.warning("alter_isr failed", topic=r.topic, partition=r.index, error=repr(exc))
        if r.pending_isr is isr:
            r.pending_isr = None
        if self._replicas.get((r.topic, r.index)) is not r:
            return
        if result is None:
            log.info("alter_isr lost", topic=r.topic, partition=r.index, isr=isr, partition_epoch=base)
            return
        log.info(
            "isr changed",
            topic=r.topic,
            partition=r.index,
            change=why,
            isr=result.isr,
            partition_epoch=result.partition_epoch,
        )
        if r.is_leader and result.leader_epoch == leader_epoch and (result.partition_epoch > r.info.partition_epoch):
            self._count_isr_change(r.info.isr, result.isr)
            r.info = _copy(result)
            self._maybe_advance_hw(r)

    def _count_isr_change(self, before: list[int], after: list[int]) -> None:
        if len(after) < len(before):
            self.isr_shrinks += 1
        elif len(after) > len(before):
            self.isr_expands += 1

    async def _isr_maintenance(self) -> None:
        while True:
            await asyncio.sleep(max(self._lag_ms(), 2) / 2000)
            try:
                self.shrink_isr()
            except Exception:
                log.exception("isr maintenance failed")
