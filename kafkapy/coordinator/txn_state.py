"""One transactional id as an explicit, sans-IO state machine (KIP-98, KIP-360, KIP-588).

Requests (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn) and
timer events are decided here from the current metadata and return either
an error code or the `TxnValue` record to write. Nothing here changes the
metadata: `TxnMetadata.apply` does, and the coordinator calls it only for
records it wrote (or replays while loading `__transaction_state`). Every
transition goes through the one table below.

Epochs: InitProducerId bumps the epoch (a new producer id when the epoch
is exhausted) and so fences older instances of the same transactional id.
An ongoing transaction is fenced first: epoch + 1 (PrepareEpochFence),
aborted with markers carrying the new epoch (PrepareAbort, CompleteAbort),
then the epoch is bumped again for the caller. Expired transactions are
aborted the same way. A KIP-360 retry (v3+: the request names the
producer id and epoch the last bump replaced) gets the current id and
epoch back without another bump.

Transactions v2 (KIP-890 part 2, EndTxn v5+): every EndTxn bumps the epoch.
PrepareCommit/PrepareAbort carry epoch + 1, the markers are written with it,
and the answer gives the producer the new epoch for its next transaction;
when the epoch is exhausted the PrepareX record names the next producer id,
which CompleteX switches to (epoch 0). A retried EndTxn (epoch one below
the current, or the replaced id after an overflow) gets the current id and
epoch back; an abort with no transaction open bumps the epoch too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from kafkapy.coordinator.txn_records import TopicPartition, TxnValue
from kafkapy.protocol.error_codes import ErrorCode

NO_PRODUCER_ID = -1
NO_EPOCH = -1
MAX_EPOCH = 32767 - 1  # Short.MAX_VALUE - 1: the last usable epoch before a new producer id


class TxnState(str, Enum):
    EMPTY = "Empty"
    ONGOING = "Ongoing"
    PREPARE_COMMIT = "PrepareCommit"
    PREPARE_ABORT = "PrepareAbort"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"
    DEAD = "Dead"
    PREPARE_EPOCH_FENCE = "PrepareEpochFence"


_S = TxnState

# Kafka's status bytes in __transaction_state values.
STATUS_CODES: Mapping[TxnState, int] = MappingProxyType(
    {
        _S.EMPTY: 0,
        _S.ONGOING: 1,
        _S.PREPARE_COMMIT: 2,
        _S.PREPARE_ABORT: 3,
        _S.COMPLETE_COMMIT: 4,
        _S.COMPLETE_ABORT: 5,
        _S.DEAD: 6,
        _S.PREPARE_EPOCH_FENCE: 7,
    }
)
STATES_BY_CODE: Mapping[int, TxnState] = MappingProxyType({v: k for k, v in STATUS_CODES.items()})

# The only transitions there are: state -> the states it may be entered from.
VALID_PREVIOUS: Mapping[TxnState, frozenset[TxnState]] = MappingProxyType(
    {
        _S.EMPTY: frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
        _S.ONGOING: frozenset({_S.ONGOING, _S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
        _S.PREPARE_COMMIT: frozenset({_S.ONGOING}),
        # Empty/Complete -> PrepareAbort: a transactions v2 abort with nothing open (an epoch bump)
        _S.PREPARE_ABORT: frozenset(
            {_S.ONGOING, _S.PREPARE_EPOCH_FENCE, _S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}
        ),
        _S.COMPLETE_COMMIT: frozenset({_S.PREPARE_COMMIT}),
        _S.COMPLETE_ABORT: frozenset({_S.PREPARE_ABORT}),
        _S.DEAD: frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
        _S.PREPARE_EPOCH_FENCE: frozenset({_S.ONGOING}),
    }
)

COMPLETED = frozenset({_S.COMPLETE_COMMIT, _S.COMPLETE_ABORT})
PREPARING = frozenset({_S.PREPARE_COMMIT, _S.PREPARE_ABORT})


class IllegalTransition(RuntimeError):
    """A bug: the machine tried a transition the table does not allow."""


def check_transition(frm: TxnState, to: TxnState) -> None:
    if frm not in VALID_PREVIOUS[to]:
        raise IllegalTransition(f"{frm.value} -> {to.value}")


def fenced_error(producer_fenced: bool) -> int:
    """PRODUCER_FENCED for request versions that know it (KIP-588), else INVALID_PRODUCER_EPOCH."""
    return ErrorCode.PRODUCER_FENCED if producer_fenced else ErrorCode.INVALID_PRODUCER_EPOCH


@dataclass(slots=True)
class Decision:
    """A request's outcome: an error, or records to write (in order) and the ids to answer."""

    error: int = ErrorCode.NONE
    records: list[TxnValue] = field(default_factory=list)
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_EPOCH
    fence_first: bool = False  # InitProducerId on an ongoing transaction: abort it, then decide again


@dataclass(slots=True)
class TxnMetadata:
    transactional_id: str
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_EPOCH
    last_producer_id: int = NO_PRODUCER_ID  # what the last InitProducerId bump replaced (KIP-360 retries)
    last_producer_epoch: int = NO_EPOCH
    timeout_ms: int = 60_000
    state: TxnState = TxnState.EMPTY
    partitions: frozenset[TopicPartition] = frozenset()
    start_ms: int = -1
    last_update_ms: int = -1
    previous_producer_id: int = NO_PRODUCER_ID  # transactions v2: the id an epoch overflow replaced
    next_producer_id: int = NO_PRODUCER_ID  # transactions v2: the id CompleteX switches to
    client_tv: int = 0  # the transaction version of the current (or last) transaction

    # ------------------------------------------------------------ records

    def value(self, state: TxnState, now_ms: int, **changes: object) -> TxnValue:
        """The record for a transition from the current metadata to `state`."""
        check_transition(self.state, state)
        v = TxnValue(
            producer_id=self.producer_id,
            producer_epoch=self.producer_epoch,
            timeout_ms=self.timeout_ms,
            status=STATUS_CODES[state],
            partitions=self.partitions,
            last_update_ms=now_ms,
            start_ms=self.start_ms,
            previous_producer_id=self.previous_producer_id,
            next_producer_id=NO_PRODUCER_ID,
            client_tv=self.client_tv,
        )
        for k, val in changes.items():
            setattr(v, k, val)
        return v

    def apply(self, v: TxnValue, *, loading: bool = False) -> None:
        """The one place the metadata changes: a record written or replayed."""
        state = STATES_BY_CODE.get(v.status)
        if state is None:
            raise ValueError(f"unknown transaction status {v.status}")
        if not loading:
            check_transition(self.state, state)
        if (v.producer_id, v.producer_epoch) != (self.producer_id, self.producer_epoch) and state is TxnState.EMPTY:
            self.last_producer_id, self.last_producer_epoch = self.producer_id, self.producer_epoch
        self.producer_id, self.producer_epoch = v.producer_id, v.producer_epoch
        self.timeout_ms = v.timeout_ms
        self.state = state
        self.partitions = v.partitions
        self.start_ms = v.start_ms
        self.last_update_ms = v.last_update_ms
        self.previous_producer_id = v.previous_producer_id
        self.next_producer_id = v.next_producer_id
        self.client_tv = v.client_tv

    @classmethod
    def from_value(cls, transactional_id: str, v: TxnValue) -> TxnMetadata:
        md = cls(transactional_id)
        md.apply(v, loading=True)
        return md

    # ------------------------------------------------------------ requests

    def _bumped(self, now_ms: int, timeout_ms: int, new_producer_id: Callable[[], int]) -> TxnValue:
        if self.producer_epoch >= MAX_EPOCH or self.producer_id == NO_PRODUCER_ID:
            pid, epoch = new_producer_id(), 0
        else:
            pid, epoch = self.producer_id, self.producer_epoch + 1
        return self.value(
            TxnState.EMPTY, now_ms, producer_id=pid, producer_epoch=epoch, timeout_ms=timeout_ms,
            partitions=frozenset(), start_ms=-1,
        )  # fmt: skip

    def init_producer_id(
        self,
        producer_id: int,
        producer_epoch: int,
        timeout_ms: int,
        now_ms: int,
        new_producer_id: Callable[[], int],
        *,
        producer_fenced: bool,
    ) -> Decision:
        """InitProducerId with this transactional id (the metadata exists)."""
        if producer_id != NO_PRODUCER_ID:
            current = (producer_id, producer_epoch) == (self.producer_id, self.producer_epoch)
            retry = (producer_id, producer_epoch) == (
                self.last_producer_id,
                self.last_producer_epoch,
            ) and self.state is TxnState.EMPTY
            if retry:
                return Decision(producer_id=self.producer_id, producer_epoch=self.producer_epoch)
            if not current:
                return Decision(fenced_error(producer_fenced))
        if self.state in PREPARING or self.state in (TxnState.DEAD, TxnState.PREPARE_EPOCH_FENCE):
            return Decision(ErrorCode.CONCURRENT_TRANSACTIONS)
        if self.state is TxnState.ONGOING:
            return Decision(fence_first=True)
        v = self._bumped(now_ms, timeout_ms, new_producer_id)
        return Decision(records=[v], producer_id=v.producer_id, producer_epoch=v.producer_epoch)

    def fence_and_abort(self, now_ms: int) -> TxnValue:
        """Abort the ongoing transaction under epoch + 1 (producer epoch fence)."""
        check_transition(self.state, TxnState.PREPARE_EPOCH_FENCE)
        check_transition(TxnState.PREPARE_EPOCH_FENCE, TxnState.PREPARE_ABORT)
        # one bump under transactions v2 too (Kafka 4.3.1: the late producer's abort at the old epoch
        # is then a retry of this end, answered with the new epoch; its commit INVALID_TXN_STATE)
        epoch = min(self.producer_epoch + 1, MAX_EPOCH + 1)
        return TxnValue(
            self.producer_id, epoch, self.timeout_ms, STATUS_CODES[TxnState.PREPARE_ABORT],
            self.partitions, now_ms, self.start_ms, self.previous_producer_id, client_tv=self.client_tv,
        )  # fmt: skip

    def _check_producer(self, producer_id: int, producer_epoch: int, producer_fenced: bool) -> int:
        if producer_id != self.producer_id:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        if producer_epoch != self.producer_epoch:
            return fenced_error(producer_fenced)
        return ErrorCode.NONE

    def add_partitions(
        self,
        producer_id: int,
        producer_epoch: int,
        partitions: Iterable[TopicPartition],
        now_ms: int,
        *,
        producer_fenced: bool,
        client_tv: int = 0,
    ) -> Decision:
        if self.state in PREPARING and client_tv >= 2 and producer_id == self.next_producer_id >= 0:
            return Decision(ErrorCode.CONCURRENT_TRANSACTIONS)  # the overflowed id, before CompleteX
        err = self._check_producer(producer_id, producer_epoch, producer_fenced)
        if err != ErrorCode.NONE:
            return Decision(err)
        if self.state in PREPARING:
            return Decision(ErrorCode.CONCURRENT_TRANSACTIONS)
        if self.state in (TxnState.DEAD, TxnState.PREPARE_EPOCH_FENCE):
            return Decision(ErrorCode.INVALID_TXN_STATE)
        wanted = frozenset(partitions)
        if self.state is TxnState.ONGOING and wanted <= self.partitions:
            return Decision()
        ongoing = self.state is TxnState.ONGOING
        start = self.start_ms if ongoing else now_ms
        base = self.partitions if ongoing else frozenset()
        tv = max(self.client_tv, client_tv) if ongoing else client_tv
        return Decision(
            records=[self.value(TxnState.ONGOING, now_ms, partitions=base | wanted, start_ms=start, client_tv=tv)]
        )

    def verify(self, producer_id: int, producer_epoch: int, tp: TopicPartition) -> int:
        """Is `tp` part of this producer's ongoing transaction? (Produce, AddPartitionsToTxn verify_only)."""
        if producer_id != self.producer_id:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        if producer_epoch < self.producer_epoch:
            return ErrorCode.INVALID_PRODUCER_EPOCH
        if producer_epoch != self.producer_epoch or self.state is not TxnState.ONGOING or tp not in self.partitions:
            return ErrorCode.INVALID_TXN_STATE
        return ErrorCode.NONE

    def end_txn(
        self, producer_id: int, producer_epoch: int, commit: bool, now_ms: int, *, producer_fenced: bool
    ) -> Decision:
        err = self._check_producer(producer_id, producer_epoch, producer_fenced)
        if err != ErrorCode.NONE:
            return Decision(err)
        state = self.state
        if state is TxnState.ONGOING:
            target = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
            # the ending request's version decides the markers' (a v2-started transaction ended by
            # EndTxn v4 gets classic markers at its own epoch, as in Kafka 4.3.1)
            return Decision(records=[self.value(target, now_ms, client_tv=0)])
        if state is TxnState.COMPLETE_COMMIT:
            return Decision(ErrorCode.NONE if commit else ErrorCode.INVALID_TXN_STATE)
        if state is TxnState.COMPLETE_ABORT:
            return Decision(ErrorCode.INVALID_TXN_STATE if commit else ErrorCode.NONE)
        if state is TxnState.PREPARE_COMMIT:
            return Decision(ErrorCode.CONCURRENT_TRANSACTIONS if commit else ErrorCode.INVALID_TXN_STATE)
        if state is TxnState.PREPARE_ABORT:
            return Decision(ErrorCode.INVALID_TXN_STATE if commit else ErrorCode.CONCURRENT_TRANSACTIONS)
        return Decision(ErrorCode.INVALID_TXN_STATE)

    def end_txn_v2(
        self,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        now_ms: int,
        new_producer_id: Callable[[], int],
    ) -> Decision:
        """EndTxn v5+ (transactions v2): the epoch is bumped at every end; retries get the current ids."""
        cur = self.producer_epoch
        retry_bump = cur == producer_epoch + 1
        retry_overflow = self.previous_producer_id == producer_id and producer_epoch == MAX_EPOCH and cur == 0
        if producer_id != self.producer_id and not retry_overflow:
            return Decision(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        state = self.state
        if state in PREPARING:
            valid = retry_bump
        elif state in COMPLETED:
            valid = retry_bump or retry_overflow or producer_epoch == cur
        else:
            valid = producer_epoch == cur
        if not valid:
            return Decision(ErrorCode.PRODUCER_FENCED)
        retry = retry_bump or retry_overflow
        same = Decision(producer_id=self.producer_id, producer_epoch=cur)
        if state is TxnState.ONGOING:
            return self._prepare_end(
                TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT, now_ms, new_producer_id
            )
        if state is TxnState.COMPLETE_COMMIT:
            if commit:
                return same if retry else Decision(ErrorCode.INVALID_TXN_STATE)
            return (
                Decision(ErrorCode.INVALID_TXN_STATE)
                if retry
                else self._prepare_end(TxnState.PREPARE_ABORT, now_ms, new_producer_id, empty=True)
            )
        if state is TxnState.COMPLETE_ABORT:
            if commit:
                return Decision(ErrorCode.INVALID_TXN_STATE)
            return same if retry else self._prepare_end(TxnState.PREPARE_ABORT, now_ms, new_producer_id, empty=True)
        if state is TxnState.PREPARE_COMMIT:
            return Decision(ErrorCode.CONCURRENT_TRANSACTIONS if commit else ErrorCode.INVALID_TXN_STATE)
        if state is TxnState.PREPARE_ABORT:
            return Decision(ErrorCode.INVALID_TXN_STATE if commit else ErrorCode.CONCURRENT_TRANSACTIONS)
        if state is TxnState.EMPTY and not commit:
            return self._prepare_end(TxnState.PREPARE_ABORT, now_ms, new_producer_id, empty=True)
        return Decision(ErrorCode.INVALID_TXN_STATE)

    def _prepare_end(
        self, target: TxnState, now_ms: int, new_producer_id: Callable[[], int], *, empty: bool = False
    ) -> Decision:
        """PrepareX under epoch + 1 (a next producer id when the epoch is exhausted); the answer's ids."""
        next_pid = new_producer_id() if self.producer_epoch >= MAX_EPOCH else NO_PRODUCER_ID
        epoch = self.producer_epoch + 1
        v = self.value(target, now_ms, producer_epoch=epoch, client_tv=2)
        v.next_producer_id = next_pid
        if empty:
            v.partitions = frozenset()
        if next_pid != NO_PRODUCER_ID:
            return Decision(records=[v], producer_id=next_pid, producer_epoch=0)
        return Decision(records=[v], producer_id=self.producer_id, producer_epoch=epoch)

    def complete(self, now_ms: int) -> TxnValue:
        """PrepareCommit/PrepareAbort -> CompleteCommit/CompleteAbort once every marker is written
        (onto the next producer id, epoch 0, after a transactions v2 epoch overflow)."""
        target = TxnState.COMPLETE_COMMIT if self.state is TxnState.PREPARE_COMMIT else TxnState.COMPLETE_ABORT
        if self.next_producer_id != NO_PRODUCER_ID:
            return self.value(
                target, now_ms, partitions=frozenset(), producer_id=self.next_producer_id, producer_epoch=0,
                previous_producer_id=self.producer_id,
            )  # fmt: skip
        return self.value(target, now_ms, partitions=frozenset())

    # ------------------------------------------------------------ timers

    def expired(self, now_ms: int) -> bool:
        """An ongoing transaction past its timeout (aborted with an epoch fence)."""
        return self.state is TxnState.ONGOING and self.start_ms >= 0 and now_ms > self.start_ms + self.timeout_ms

    def deadline(self) -> int | None:
        return self.start_ms + self.timeout_ms + 1 if self.state is TxnState.ONGOING and self.start_ms >= 0 else None

    def id_expired(self, now_ms: int, expiration_ms: int) -> bool:
        """transactional.id.expiration.ms: idle and not in a transaction."""
        return self.state in (TxnState.EMPTY, *COMPLETED) and now_ms - self.last_update_ms >= expiration_ms

    def tombstone_check(self) -> None:
        check_transition(self.state, TxnState.DEAD)
