"""S3ObjectStore against a real S3 server: SeaweedFS `weed mini` (the s3_server fixture), plus two
loopback fakes for what a healthy server never does (hang, send a short body)."""

from __future__ import annotations

import asyncio
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from kafkapy.storage.remote import open_object_store
from kafkapy.storage.remote import s3 as s3_module
from kafkapy.storage.remote.object_store import ObjectNotFoundError, ObjectStoreConfig, ObjectStoreError
from kafkapy.storage.remote.s3 import S3ObjectStore
from kafkapy.testing import SeaweedS3Server, free_port


def run(store: S3ObjectStore, body: Callable[[S3ObjectStore], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def store(s3_server: SeaweedS3Server, prefix: str) -> Iterator[S3ObjectStore]:
    yield S3ObjectStore(s3_server.object_store_config(prefix))


def test_put_file_stores_only_length_bytes_and_get_range(store: S3ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(10_000)
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(data + b"\0" * 5000)  # preallocated tail that must not be uploaded

    async def body(s: S3ObjectStore) -> None:
        await s.put_file("seg/0.log", path, len(data))
        assert await s.list("seg/") == [("seg/0.log", len(data))]
        assert await s.get_range("seg/0.log", 0) == data
        assert await s.get_range("seg/0.log", 0, None) == data
        assert await s.get_range("seg/0.log", 1234, 5678) == data[1234:5678]
        assert await s.get_range("seg/0.log", 9_990) == data[9_990:]
        # past the end: fewer bytes, or none
        assert await s.get_range("seg/0.log", 9_000, 20_000) == data[9_000:]
        assert await s.get_range("seg/0.log", 10_000) == b""
        assert await s.get_range("seg/0.log", 50_000, 60_000) == b""
        assert await s.get_range("seg/0.log", 5, 5) == b""
        with pytest.raises(ObjectNotFoundError):
            await s.get_range("seg/missing.log", 0, 10)
        with pytest.raises(ObjectNotFoundError):
            await s.get_range("seg/missing.log", 3, 3)
        with pytest.raises(ObjectStoreError) as info:
            await s.put_file("seg/1.log", path, 20_000)  # the file is shorter than that
        assert not info.value.retriable

    run(store, body)


def test_put_bytes_overwrite_and_empty_object(store: S3ObjectStore) -> None:
    async def body(s: S3ObjectStore) -> None:
        await s.put_bytes("a/meta.json", b'{"v": 1}')
        await s.put_bytes("a/meta.json", b'{"v": 22}')
        assert await s.get_range("a/meta.json", 0) == b'{"v": 22}'
        await s.put_bytes("a/empty", b"")
        assert await s.get_range("a/empty", 0) == b""
        assert await s.list("a/") == [("a/empty", 0), ("a/meta.json", 9)]

    run(store, body)


def test_list_prefix_pagination_and_store_prefix(s3_server: SeaweedS3Server, prefix: str) -> None:
    async def body(s: S3ObjectStore) -> None:
        keys = [f"topic-{t}/{i:05d}.log" for t in ("a", "b") for i in range(23)]
        await asyncio.gather(*(s.put_bytes(k, k.encode()) for k in keys))
        got = await s.list("topic-a/")
        assert got == [(k, len(k)) for k in sorted(keys) if k.startswith("topic-a/")]
        assert [k for k, _ in await s.list("")] == sorted(keys)
        assert await s.list("topic-a/0001") == [(f"topic-a/{i:05d}.log", 17) for i in range(10, 20)]
        assert await s.list("nothing/") == []
        # another prefix of the same bucket sees none of them
        other = S3ObjectStore(s3_server.object_store_config(prefix + "-other"))
        try:
            assert await other.list("") == []
        finally:
            await other.close()

    run(S3ObjectStore(s3_server.object_store_config(prefix), list_page_size=7), body)


def test_delete_in_batches_missing_keys_ok(store: S3ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_module, "DELETE_BATCH", 4)

    async def body(s: S3ObjectStore) -> None:
        keys = [f"d/{i}" for i in range(10)]
        await asyncio.gather(*(s.put_bytes(k, b"x") for k in keys))
        await s.delete([*keys[:7], "d/never-there", "d/nor-this"])
        assert await s.list("d/") == [(k, 1) for k in sorted(keys[7:])]
        await s.delete(keys)  # some gone already
        await s.delete([])
        assert await s.list("d/") == []

    run(store, body)


def test_multipart_upload_of_a_large_file(store: S3ObjectStore, tmp_path: Path) -> None:
    length = 40 * 1000 * 1000  # three 16 MiB parts, the last shorter
    path = tmp_path / "big.log"
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(length // len(block) + 2):
            f.write(block)
    calls: list[str] = []

    async def body(s: S3ObjectStore) -> None:
        real = s._request

        async def spy(what: str, key: str | None, operation: str, **params: Any) -> Any:
            calls.append(operation)
            return await real(what, key, operation, **params)

        s._request = spy  # type: ignore[method-assign]
        await s.put_file("big/0.log", path, length)
        assert await s.list("big/") == [("big/0.log", length)]
        with open(path, "rb") as f:
            f.seek(s.part_size - 100)
            across_parts = f.read(200)
            f.seek(length - 1000)
            tail = f.read(1000)
        assert await s.get_range("big/0.log", s.part_size - 100, s.part_size + 100) == across_parts
        assert await s.get_range("big/0.log", length - 1000) == tail
        assert await s.get_range("big/0.log", length - 1000, length + 5000) == tail

    run(store, body)
    assert calls.count("upload_part") == 3
    assert calls[0] == "create_multipart_upload" and "complete_multipart_upload" in calls


def test_wrong_credentials_are_not_retriable(s3_server: SeaweedS3Server, prefix: str) -> None:
    async def body(s: S3ObjectStore) -> None:
        for call in (lambda: s.put_bytes("x", b"1"), lambda: s.get_range("x", 0), lambda: s.list("")):
            with pytest.raises(ObjectStoreError) as info:
                await call()
            assert not info.value.retriable, info.value
            assert not isinstance(info.value, ObjectNotFoundError)

    run(S3ObjectStore(s3_server.object_store_config(prefix, secret_access_key="wrong-secret")), body)
    run(S3ObjectStore(s3_server.object_store_config(prefix, access_key_id="nobody")), body)


def test_anonymous_access_is_refused(s3_server: SeaweedS3Server) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{s3_server.endpoint}/{s3_server.bucket}?list-type=2", timeout=5)
    assert info.value.code == 403


def test_missing_bucket_is_not_retriable(s3_server: SeaweedS3Server, prefix: str) -> None:
    async def body(s: S3ObjectStore) -> None:
        for call in (lambda: s.put_bytes("x", b"1"), lambda: s.get_range("x", 0, 1), lambda: s.list("")):
            with pytest.raises(ObjectStoreError) as info:
                await call()
            assert not info.value.retriable, info.value
            assert not isinstance(info.value, ObjectNotFoundError), info.value

    run(S3ObjectStore(s3_server.object_store_config(prefix, bucket="no-such-bucket-here")), body)


def test_standard_credential_chain_when_keys_are_none(
    s3_server: SeaweedS3Server, prefix: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    async def body(s: S3ObjectStore) -> None:
        await s.put_bytes("chain", b"ok")
        assert await s.get_range("chain", 0) == b"ok"

    config = s3_server.object_store_config(prefix, access_key_id=None, secret_access_key=None)
    store = open_object_store(config)
    assert isinstance(store, S3ObjectStore)
    run(store, body)


def test_stopped_server_is_retriable_and_quick(s3_server_factory: Callable[..., SeaweedS3Server]) -> None:
    server = s3_server_factory()
    assert server.started_in < 30

    async def body(s: S3ObjectStore) -> None:
        await s.put_bytes("k", b"v")
        server.stop()
        for call in (lambda: s.put_bytes("k", b"v2"), lambda: s.get_range("k", 0), lambda: s.list("")):
            began = time.monotonic()
            with pytest.raises(ObjectStoreError) as info:
                await call()
            assert info.value.retriable, info.value
            assert time.monotonic() - began < 2.5

    run(S3ObjectStore(server.object_store_config("p", request_timeout_ms=2000)), body)


def test_silent_server_times_out_retriable() -> None:
    """A server that accepts connections and never answers: the request timeout ends the call."""

    async def main() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1 << 20)
            await asyncio.sleep(30)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        config = ObjectStoreConfig(
            endpoint=f"http://127.0.0.1:{port}",
            access_key_id="k",
            secret_access_key="s",
            request_timeout_ms=400,
        )
        s = S3ObjectStore(config)
        try:
            began = time.monotonic()
            with pytest.raises(ObjectStoreError) as info:
                await s.get_range("x", 0, 10)
            assert info.value.retriable
            assert time.monotonic() - began < 2.0
        finally:
            await s.close()
            server.close()

    asyncio.run(main())


@pytest.mark.parametrize("mode", ["content-range", "truncated"])
def test_short_body_is_retriable(mode: str) -> None:
    """A 206 with fewer bytes than its Content-Range promises (object longer than what came back),
    and a body cut off before its Content-Length: both retriable."""

    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            if mode == "content-range":
                head = "Content-Range: bytes 0-99/1000\r\nContent-Length: 50\r\n"
            else:
                head = "Content-Range: bytes 0-99/1000\r\nContent-Length: 100\r\n"
            writer.write(f"HTTP/1.1 206 Partial Content\r\n{head}Connection: close\r\n\r\n".encode() + b"x" * 50)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        s = S3ObjectStore(
            ObjectStoreConfig(endpoint=f"http://127.0.0.1:{port}", access_key_id="k", secret_access_key="s")
        )
        try:
            with pytest.raises(ObjectStoreError) as info:
                await s.get_range("x", 0, 100)
            assert info.value.retriable, info.value
        finally:
            await s.close()
            server.close()

    asyncio.run(main())


def test_whole_object_answer_to_a_range_is_sliced() -> None:
    """A server that ignores Range (200 with the whole object): the asked bytes all the same."""
    data = bytes(range(256)) * 4

    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + data)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        s = S3ObjectStore(
            ObjectStoreConfig(endpoint=f"http://127.0.0.1:{port}", access_key_id="k", secret_access_key="s")
        )
        try:
            assert await s.get_range("x", 100, 300) == data[100:300]
            assert await s.get_range("x", 1000) == data[1000:]
        finally:
            await s.close()
            server.close()

    asyncio.run(main())


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(
    ("code", "status", "retriable"),
    [
        ("SlowDown", 503, True),
        ("InternalError", 500, True),
        ("ServiceUnavailable", 503, True),
        ("", 502, True),
        ("Throttling", 400, True),
        ("RequestTimeout", 400, True),
        ("AccessDenied", 403, False),
        ("InvalidAccessKeyId", 403, False),
        ("SignatureDoesNotMatch", 403, False),
        ("NoSuchBucket", 404, False),
        ("MalformedXML", 400, False),
    ],
)
def test_error_mapping(code: str, status: int, retriable: bool) -> None:
    err = s3_module._to_store_error(_client_error(code, status), "op", "k")
    assert err.retriable is retriable
    assert not isinstance(err, ObjectNotFoundError)


def test_not_found_mapping() -> None:
    assert isinstance(s3_module._to_store_error(_client_error("NoSuchKey", 404), "get", "k"), ObjectNotFoundError)
    assert isinstance(s3_module._to_store_error(_client_error("404", 404), "head", "k"), ObjectNotFoundError)


def test_open_object_store_kinds(tmp_path: Path) -> None:
    from kafkapy.storage.remote.dir_store import DirObjectStore

    s3 = open_object_store(ObjectStoreConfig(kind="s3", endpoint=f"http://127.0.0.1:{free_port()}"))
    assert isinstance(s3, S3ObjectStore)
    d = open_object_store(ObjectStoreConfig(kind="dir", directory=str(tmp_path), prefix="cluster-1"))
    assert isinstance(d, DirObjectStore)
    assert d.directory == tmp_path / "cluster-1"
    with pytest.raises(ValueError):
        open_object_store(ObjectStoreConfig(kind="dir"))
    with pytest.raises(ValueError):
        open_object_store(ObjectStoreConfig(kind="gcs"))
    with pytest.raises(ValueError):
        S3ObjectStore(ObjectStoreConfig(access_key_id="only-one"))
