"""Incremental fetch sessions (KIP-227), sans IO.

A session remembers, per partition, what the client fetches and what it was
last told (high watermark, log start offset, ...). An incremental request
only names partitions that changed; an incremental response only carries
partitions with new data or changed metadata. The cache is bounded; the
least recently used session is evicted.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from uuid import UUID

from kafkapy.protocol.error_codes import ErrorCode

FINAL_EPOCH = -1
INITIAL_EPOCH = 0

TopicPartitionKey = tuple[str, int]


@dataclass(slots=True)
class SessionPartition:
    topic: str | None  # None: a topic id this broker does not know
    topic_id: UUID
    fetch_offset: int
    max_bytes: int
    log_start_offset: int = -1
    # What the client last saw, to decide whether to include the partition.
    high_watermark: int = -1
    last_stable_offset: int = -1
    last_log_start: int = -1


@dataclass(slots=True)
class FetchSession:
    session_id: int
    epoch: int  # the epoch the next request must carry
    partitions: dict[TopicPartitionKey, SessionPartition] = field(default_factory=dict)


class SessionError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(ErrorCode(code).name)
        self.code = code


def _random_id() -> int:
    """1 .. 2**31-1 from os.urandom (the secrets module costs the broker's start-up ~5 ms of imports)."""
    return int.from_bytes(os.urandom(4), "big") % 0x7FFFFFFF + 1


@dataclass(slots=True)
class FetchSessionCache:
    max_sessions: int = 1000
    _sessions: OrderedDict[int, FetchSession] = field(default_factory=OrderedDict)

    def new_session(self) -> FetchSession:
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)
        # random ids, as Kafka's: after a restart a client still holding an
        # old id must not land on another client's new session
        sid = _random_id()
        while sid in self._sessions:
            sid = _random_id()
        session = FetchSession(session_id=sid, epoch=1)
        self._sessions[sid] = session
        return session

    def get(self, session_id: int, epoch: int) -> FetchSession:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionError(ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
        if epoch != session.epoch:
            raise SessionError(ErrorCode.INVALID_FETCH_SESSION_EPOCH)
        self._sessions.move_to_end(session_id)
        return session

    def remove(self, session_id: int) -> None:
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)
