"""A blocking one-connection client over kafkapy's codec, for raw-request tests."""

from __future__ import annotations

import socket
import struct
from typing import Any

from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.protocol.primitives import Message


class RawClient:
    def __init__(self, bootstrap: str, timeout: float = 10.0) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.correlation_id = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self) -> bytes:
        size = struct.unpack(">i", self._read_exact(4))[0]
        return self._read_exact(size)

    def _read_exact(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(n)
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def request(self, body: Message, version: int) -> Any:
        self.correlation_id += 1
        self.send_raw(encode_request(body, version, self.correlation_id, client_id="rawclient"))
        cid, resp = decode_response(body.API_KEY, version, self.read_frame())
        assert cid == self.correlation_id
        return resp

    def is_closed_by_peer(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
