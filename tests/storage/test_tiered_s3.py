"""RemoteLogManager against a real S3 server (SeaweedFS, the s3_server fixture): copy, local
retention, reads across remote and local, a restart, expiry and deletion."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from kafkapy.storage.log import PartitionLog
from kafkapy.storage.remote import open_object_store
from kafkapy.storage.remote.manager import RemoteLogManager
from kafkapy.storage.remote.metadata import FileRemoteLogMetadataStore
from kafkapy.testing import SeaweedS3Server
from tests.storage.test_tiered_manager import TID, fill, read_everything, tiered_config


def test_tiered_log_on_s3(tmp_path: Path, s3_server: SeaweedS3Server) -> None:
    config = s3_server.object_store_config(f"tiered-{uuid.uuid4().hex}/")
    log = PartitionLog(tmp_path / "data" / "t-0", tiered_config())
    batches = fill(log, 60)

    def manager() -> RemoteLogManager:
        return RemoteLogManager(
            open_object_store(config), FileRemoteLogMetadataStore(tmp_path / "data" / "remote-log-metadata"), 1
        )

    async def body() -> None:
        mgr = manager()
        try:
            nsegs = len(log.segments)
            assert await mgr.copy_once(log, TID) == nsegs - 1
            assert log.apply_retention() == nsegs - 1
            assert log.log_start_offset == 0 < log.local_log_start_offset
            assert await read_everything(log, mgr, 0) == batches
            found = await mgr.list_offset(log, TID, 1000 + 10 * 7)
            assert found is not None and found.offset == 35
        finally:
            await mgr.store.close()
        log.close()

    asyncio.run(body())
    log2 = PartitionLog(tmp_path / "data" / "t-0", tiered_config(), clean_shutdown=True)

    async def after_restart() -> None:
        mgr = manager()
        try:
            await mgr.sync_log(log2, TID)
            assert log2.log_start_offset == 0
            assert await read_everything(log2, mgr, 0, max_bytes=4000) == batches
            log2.delete_records_before(100)
            assert await mgr.expire_once(log2, TID) == 2
            assert await read_everything(log2, mgr, 100) == batches[20:]
            segs = await mgr.metadata.segments(TID, 0)
            assert await mgr.delete_all(TID, 0) == len(segs)
            assert await mgr.store.list("") == []
        finally:
            await mgr.store.close()
        log2.close()

    asyncio.run(after_restart())
