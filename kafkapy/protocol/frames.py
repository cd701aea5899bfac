"""Request and response frames: headers plus bodies, sans IO.

A frame here is what follows the 4-byte size prefix on the wire. The server
decodes requests and encodes responses; clients (the CLI, replication, tests)
do the opposite. None of these functions touch a socket.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from kafkapy.protocol.api import ApiSpec, api_spec
from kafkapy.protocol.errors import DecodeError, UnsupportedVersionError
from kafkapy.protocol.messages.request_header import RequestHeader
from kafkapy.protocol.messages.response_header import ResponseHeader
from kafkapy.protocol.primitives import INT32, Message

_PEEK = struct.Struct(">hhi")


@dataclass(slots=True)
class Request:
    """A decoded request: its header, the API it belongs to, and its body."""

    header: RequestHeader
    api: ApiSpec
    body: Message

    @property
    def version(self) -> int:
        return self.header.request_api_version

    @property
    def correlation_id(self) -> int:
        return self.header.correlation_id


def peek_request_header(frame: bytes | memoryview) -> tuple[int, int, int]:
    """(api_key, api_version, correlation_id) from the first 8 bytes of a frame."""
    if len(frame) < 8:
        raise DecodeError(f"request frame of {len(frame)} bytes is shorter than a header", ["RequestHeader"])
    api_key, version, correlation_id = _PEEK.unpack_from(frame, 0)
    return api_key, version, correlation_id


def decode_request_header(frame: bytes | memoryview) -> tuple[RequestHeader, ApiSpec, int]:
    """Decode the header; return it, the API spec and where the body starts.

    Works for versions above the highest one known (the header layout follows
    the API's flexibility), so an ApiVersions request from a newer client can
    still be answered. Unknown api keys raise UnsupportedVersionError.
    """
    view = frame if isinstance(frame, memoryview) else memoryview(frame)
    api_key, version, _ = peek_request_header(view)
    api = api_spec(api_key)
    header, pos = RequestHeader.decode_from(view, 0, api.request_header_version(version))
    return header, api, pos


def decode_request(frame: bytes | memoryview) -> Request:
    """Decode a whole request frame; DecodeError (or UnsupportedVersionError) on bad input."""
    view = frame if isinstance(frame, memoryview) else memoryview(frame)
    header, api, pos = decode_request_header(view)
    version = header.request_api_version
    if not api.min_version <= version <= api.max_version:
        raise UnsupportedVersionError(
            f"{api.name} v{version} is outside {api.min_version}-{api.max_version}", [api.request_class]
        )
    body, _ = api.request_type().decode_from(view, pos, version)
    return Request(header, api, body)


def encode_response(api: ApiSpec, version: int, correlation_id: int, body: Message) -> list[Any]:
    """Header and body as a list of parts (without the size prefix).

    Parts are bytes-like, except `records` values that the caller put in the
    body as file regions; those pass through untouched for sendfile.
    """
    out: list[Any] = []
    ResponseHeader(correlation_id=correlation_id).encode_into(out, api.response_header_version(version))
    body.encode_into(out, version)
    return out


def encode_request(body: Message, version: int, correlation_id: int, client_id: str | None = "kafkapy") -> bytes:
    """A whole request, size prefix included (client side)."""
    api = api_spec(body.API_KEY)
    out: list[Any] = []
    RequestHeader(
        request_api_key=api.api_key,
        request_api_version=version,
        correlation_id=correlation_id,
        client_id=client_id,
    ).encode_into(out, api.request_header_version(version))
    body.encode_into(out, version)
    payload = b"".join(out)
    return INT32.pack(len(payload)) + payload


def decode_response(api_key: int, version: int, frame: bytes | memoryview) -> tuple[int, Message]:
    """(correlation_id, body) of a response frame (client side)."""
    view = frame if isinstance(frame, memoryview) else memoryview(frame)
    api = api_spec(api_key)
    header, pos = ResponseHeader.decode_from(view, 0, api.response_header_version(version))
    body, _ = api.response_type().decode_from(view, pos, version)
    return header.correlation_id, body
