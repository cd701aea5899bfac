"""InitProducerId (22): producer ids for idempotent producers.

Ids come from a counter persisted in `<data dir>/producer-id-block.checkpoint`.
The file holds the end of the block handed out so far; ids are taken from
that block in memory and a new block (BLOCK_SIZE ids) is written, atomically
and fsynced, before its first id is used. A restart starts after the last
persisted block end, so an id is never handed out twice (a restart may skip
the unused rest of a block, as Kafka does).

Non-transactional requests (transactional_id null) always get a fresh id
with epoch 0, also at v3+ when they carry their current id and epoch
(KIP-360): this is what Kafka's coordinator does for them. Idempotent
clients bump their epoch themselves; only a transactional id has a durable
record against which an epoch bump could be checked.

A transactional id goes to the transaction coordinator
(handlers/transactions.py, coordinator/transactions.py), which takes its
producer ids from the same manager. An empty transactional id is
INVALID_REQUEST, as in Kafka.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.init_producer_id_request import InitProducerIdRequest
from kafkapy.protocol.messages.init_producer_id_response import InitProducerIdResponse
from kafkapy.server.handler import RequestContext
from kafkapy.server.state import BrokerState
from kafkapy.storage.checkpoint import read_checkpoint, write_checkpoint

log = get_logger(__name__)

ID_FILE = "producer-id-block.checkpoint"
BLOCK_SIZE = 1000
EXTRAS_KEY = "producer_ids"


@dataclass(slots=True)
class ProducerIdManager:
    """Hands out producer ids from durably reserved blocks."""

    path: Path
    block_size: int = BLOCK_SIZE
    sync: bool = True
    next_id: int = 0
    block_end: int = 0  # exclusive; what the file says

    @classmethod
    def load(cls, path: Path, *, block_size: int = BLOCK_SIZE, sync: bool = True) -> ProducerIdManager:
        entries = read_checkpoint(path)  # CorruptLogError if damaged: never guess and reuse ids
        end = int(entries[0]) if entries else 0
        return cls(path, block_size, sync, end, end)

    def generate(self) -> int:
        if self.next_id >= self.block_end:
            end = self.next_id + self.block_size
            write_checkpoint(self.path, [str(end)], sync=self.sync)
            self.block_end = end
            log.info("producer id block reserved", first=self.next_id, end=end)
        pid = self.next_id
        self.next_id += 1
        return pid


def producer_id_manager(state: BrokerState) -> ProducerIdManager:
    if state.cluster is not None:  # blocks reserved in etcd, unique across the cluster
        return state.cluster  # type: ignore[no-any-return]
    mgr = state.extras.get(EXTRAS_KEY)
    if mgr is None:
        mgr = state.extras[EXTRAS_KEY] = ProducerIdManager.load(state.data_dir / ID_FILE)
    assert isinstance(mgr, ProducerIdManager)
    return mgr


async def handle(ctx: RequestContext, req: InitProducerIdRequest) -> InitProducerIdResponse:
    if req.transactional_id is not None:
        if req.transactional_id == "":
            return InitProducerIdResponse(error_code=ErrorCode.INVALID_REQUEST, producer_id=-1, producer_epoch=-1)
        from kafkapy.server.handlers.transactions import init_transactional

        pid, epoch = (req.producer_id, req.producer_epoch) if ctx.version >= 3 else (-1, -1)
        return await init_transactional(ctx, req.transactional_id, req.transaction_timeout_ms, pid, epoch)
    pid = producer_id_manager(ctx.state).generate()
    return InitProducerIdResponse(error_code=ErrorCode.NONE, producer_id=pid, producer_epoch=0)
