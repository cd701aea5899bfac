"""S3ObjectStore: the ObjectStore on an S3-compatible server (AWS S3, SeaweedFS, MinIO, ...), via aiobotocore.

Keys are stored under the config's `prefix` (as a folder: "tiered" -> "tiered/<key>"); `list` returns
them without it. Retries are the caller's business (the remote log manager backs off per partition):
botocore makes at most `_ATTEMPTS` tries per request, and every request has the config's timeout as
its deadline. Failures become ObjectStoreError with `retriable` set per the kind of failure, or
ObjectNotFoundError for a missing key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)

from kafkapy.logging import get_logger
from kafkapy.storage.remote.object_store import ObjectNotFoundError, ObjectStoreConfig, ObjectStoreError

log = get_logger(__name__)

T = TypeVar("T")

# Parts of a multipart upload: S3 wants >= 5 MiB (but the last) and <= 10,000 parts, so 16 MiB
# parts carry objects up to 160 GB while one part at a time stays in memory.
DEFAULT_PART_SIZE = 16 << 20
MIN_PART_SIZE = 5 << 20
# DeleteObjects takes at most 1000 keys a request.
DELETE_BATCH = 1000
# botocore's tries per request (the first included): one quick retry of a dropped connection.
_ATTEMPTS = 2

# Error codes that no retry will fix: credentials, permissions, the bucket.
_FATAL_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "NoSuchBucket",
        "InvalidBucketName",
        "AccountProblem",
        "InvalidToken",
        "ExpiredToken",
        "InvalidArgument",
        "InvalidRequest",
        "EntityTooLarge",
        "MethodNotAllowed",
        "NotImplemented",
    }
)
# Error codes worth another try later, whatever their HTTP status.
_RETRIABLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
    }
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


def _client_error(exc: ClientError, what: str, key: str | None) -> ObjectStoreError:
    err = exc.response.get("Error", {})
    code = str(err.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if key is not None and code in _NOT_FOUND_CODES:
        return ObjectNotFoundError(key)
    if code in _FATAL_CODES:
        retriable = False
    elif code in _RETRIABLE_CODES or status >= 500 or status in (408, 429):
        retriable = True
    else:
        # other 4xx: the request itself is wrong; sending it again changes nothing
        retriable = status == 0
    return ObjectStoreError(f"{what}: {code or status} {err.get('Message', '')}".rstrip(), retriable=retriable)


def _to_store_error(exc: BaseException, what: str, key: str | None) -> ObjectStoreError:
    if isinstance(exc, ObjectStoreError):
        return exc
    if isinstance(exc, ClientError):
        return _client_error(exc, what, key)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | ParamValidationError):
        return ObjectStoreError(f"{what}: {exc}", retriable=False)
    if isinstance(exc, TimeoutError):
        return ObjectStoreError(f"{what}: timed out", retriable=True)
    # connection refused / reset, read timeouts, truncated bodies (botocore's or aiohttp's)
    return ObjectStoreError(f"{what}: {type(exc).__name__}: {exc}", retriable=True)


_STORE_ERRORS: tuple[type[BaseException], ...] = (
    BotoCoreError,
    ClientError,
    aiohttp.ClientError,
    TimeoutError,
    ConnectionError,
)


def _read_exact(path: Path, offset: int, size: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
    except OSError as exc:
        raise ObjectStoreError(f"read {path}: {exc}") from exc
    if len(data) != size:
        raise ObjectStoreError(f"{path} is shorter than {offset + size} bytes", retriable=False)
    return data


class S3ObjectStore:
    """An ObjectStore on one bucket of an S3-compatible server (see the module docstring).

    The aiobotocore client is made on first use, in the event loop of that call; `close()` ends it.
    `part_size` and `list_page_size` are knobs for tests (defaults: 16 MiB parts, 1000 keys a page).
    """

    def __init__(
        self,
        config: ObjectStoreConfig,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        list_page_size: int = 1000,
    ) -> None:
        if (config.access_key_id is None) != (config.secret_access_key is None):
            raise ValueError("S3 object store: give both access_key_id and secret_access_key, or neither")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 multipart part size must be at least {MIN_PART_SIZE} bytes")
        self.config = config
        self.bucket = config.bucket
        prefix = config.prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.part_size = part_size
        self.list_page_size = max(1, min(list_page_size, 1000))
        self._timeout = max(config.request_timeout_ms, 1) / 1000.0
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"S3ObjectStore(endpoint={self.config.endpoint!r}, bucket={self.bucket!r}, prefix={self.prefix!r})"

    async def _get_client(self) -> Any:
        if self._client is not None:
            return self._client
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is None:
                cfg = self.config
                aio_config = AioConfig(
                    region_name=cfg.region,
                    signature_version="s3v4",
                    s3={"addressing_style": "path" if cfg.path_style else "auto"},
                    connect_timeout=min(self._timeout, 10.0),
                    read_timeout=self._timeout,
                    retries={"total_max_attempts": _ATTEMPTS, "mode": "standard"},
                    # CRC checksums only where the API demands them: not every S3-compatible
                    # server takes the newer default checksum headers
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                kwargs: dict[str, Any] = {"region_name": cfg.region, "config": aio_config}
                if cfg.endpoint:
                    kwargs["endpoint_url"] = cfg.endpoint
                if cfg.access_key_id is not None:
                    # None: botocore's chain (environment, shared files, container/instance roles)
                    kwargs["aws_access_key_id"] = cfg.access_key_id
                    kwargs["aws_secret_access_key"] = cfg.secret_access_key
                stack = contextlib.AsyncExitStack()
                try:
                    self._client = await stack.enter_async_context(get_session().create_client("s3", **kwargs))
                except Exception as exc:
                    await stack.aclose()
                    raise ObjectStoreError(f"S3 client for {cfg.endpoint}: {exc}", retriable=False) from exc
                self._stack = stack
        return self._client

    def _key(self, key: str) -> str:
        if not key:
            raise ObjectStoreError("empty object key", retriable=False)
        return self.prefix + key

    async def _call(self, what: str, key: str | None, fn: Callable[[Any], Awaitable[T]]) -> T:
        """One S3 request within the request timeout, its failure as an ObjectStoreError."""
        client = await self._get_client()
        try:
            async with asyncio.timeout(self._timeout):
                return await fn(client)
        except _STORE_ERRORS as exc:
            raise _to_store_error(exc, what, key) from exc

    async def _request(self, what: str, key: str | None, operation: str, **params: Any) -> Any:
        """`_call` of one client method (put_object, ...) with its parameters; Bucket is added."""
        return await self._call(what, key, lambda c: getattr(c, operation)(Bucket=self.bucket, **params))

    async def put_bytes(self, key: str, data: bytes) -> None:
        full = self._key(key)
        body = bytes(data)
        await self._request(f"put {full}", None, "put_object", Key=full, Body=body)

    async def put_file(self, key: str, path: Path, length: int) -> None:
        path = Path(path)
        if length <= self.part_size:
            data = await asyncio.to_thread(_read_exact, path, 0, length)
            await self.put_bytes(key, data)
            return
        full = self._key(key)
        created = await self._request(f"create multipart upload {full}", None, "create_multipart_upload", Key=full)
        upload_id: str = created["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            offset = 0
            number = 1
            while offset < length:
                size = min(self.part_size, length - offset)
                chunk = await asyncio.to_thread(_read_exact, path, offset, size)
                resp = await self._request(
                    f"upload part {number} of {full}",
                    None,
                    "upload_part",
                    Key=full,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                )
                del chunk
                parts.append({"PartNumber": number, "ETag": resp["ETag"]})
                offset += size
                number += 1
            await self._request(
                f"complete multipart upload {full}",
                None,
                "complete_multipart_upload",
                Key=full,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            # best effort: an upload left open only costs the server's space until its lifecycle rule
            try:
                await asyncio.shield(self._abort(full, upload_id))
            except Exception:
                pass
            raise

    async def _abort(self, full: str, upload_id: str) -> None:
        try:
            await self._request(
                f"abort multipart upload {full}", None, "abort_multipart_upload", Key=full, UploadId=upload_id
            )
        except ObjectStoreError as exc:
            log.warning("s3_abort_multipart_failed", key=full, error=str(exc))

    async def get_range(self, key: str, start: int, end: int | None = None) -> bytes:
        if start < 0 or (end is not None and end < start):
            raise ObjectStoreError(f"bad range [{start}, {end}) of {key}", retriable=False)
        full = self._key(key)
        if end == start:
            # a Range header cannot ask for nothing; still say whether the object exists
            await self._request(f"head {full}", key, "head_object", Key=full)
            return b""
        rng = f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"

        async def fetch(c: Any) -> tuple[bytes, str | None, int]:
            resp = await c.get_object(Bucket=self.bucket, Key=full, Range=rng)
            async with resp["Body"] as body:
                data: bytes = await body.read()
            status = int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 200))
            return data, resp.get("ContentRange"), status

        try:
            data, content_range, status = await self._call(f"get {full} {rng}", key, fetch)
        except ObjectStoreError as exc:
            if isinstance(exc.__cause__, ClientError) and _is_unsatisfiable(exc.__cause__):
                return b""  # `start` is at or past the end of the object
            raise
        if status == 200 and not content_range:
            # the server sent the whole object instead of the range
            return data[start:end]
        total = _total_size(content_range)
        if total is not None:
            want = (total if end is None else min(end, total)) - start
            if len(data) != want:
                raise ObjectStoreError(
                    f"get {full} {rng}: {len(data)} bytes instead of {want} (object size {total})", retriable=True
                )
        elif end is not None and len(data) > end - start:
            raise ObjectStoreError(f"get {full} {rng}: {len(data)} bytes, more than asked", retriable=True)
        return data

    async def delete(self, keys: Sequence[str]) -> None:
        full = [self._key(k) for k in keys]
        for i in range(0, len(full), DELETE_BATCH):
            batch = full[i : i + DELETE_BATCH]
            request = {"Objects": [{"Key": k} for k in batch], "Quiet": True}
            resp = await self._request(f"delete {len(batch)} objects", None, "delete_objects", Delete=request)
            errors = [e for e in resp.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if errors:
                first = errors[0]
                code = str(first.get("Code", ""))
                retriable = code not in _FATAL_CODES
                raise ObjectStoreError(
                    f"delete: {len(errors)} of {len(batch)} objects not deleted, "
                    f"e.g. {first.get('Key')}: {code} {first.get('Message', '')}".rstrip(),
                    retriable=retriable,
                )

    async def list(self, prefix: str) -> list[tuple[str, int]]:
        full_prefix = self.prefix + prefix
        out: list[tuple[str, int]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Prefix": full_prefix, "MaxKeys": self.list_page_size}
            if token is not None:
                params["ContinuationToken"] = token
            page = await self._request(f"list {full_prefix!r}", None, "list_objects_v2", **params)
            for item in page.get("Contents", []):
                key = str(item["Key"])
                if key.startswith(full_prefix):
                    out.append((key[len(self.prefix) :], int(item.get("Size", 0))))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
        out.sort()
        return out

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            try:
                await stack.aclose()
            except Exception as exc:
                log.debug("s3_close_failed", error=str(exc))


def _is_unsatisfiable(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code == "InvalidRange" or status == 416


def _total_size(content_range: str | None) -> int | None:
    """The object size from a Content-Range `bytes a-b/total` (None when absent or `*`)."""
    if not content_range or "/" not in content_range:
        return None
    total = content_range.rpartition("/")[2].strip()
    return int(total) if total.isdigit() else None
