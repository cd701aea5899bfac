"""Connection limits: one scenario with raw sockets, recorded against Apache Kafka 4.3.1 (golden file)
and compared with kafkapy by interop/test_connections.py (docs/reliability.md, "Connections and memory").

- max.connections.per.ip=3: three connections from 127.0.0.3 (a loopback source address of its own,
  so no other connection of the test or the broker counts) are served, a fourth is closed without an
  answer; once one of the three closes, a new connection is served again.
- max.connections.per.ip.overrides lets 127.0.0.2 hold more (and 127.0.0.1, the probes and admin).
- socket.request.max.bytes: a size prefix one byte over the limit closes the connection.
- An IP quota (connection_creation_rate=2 on 127.0.0.2, KIP-612, set with AlterClientQuotas): of
  eight connections opened back to back the first is served, a later one is held unanswered and then
  closed (not at once: after the throttle time).

Shaped so timing noise does not matter: outcomes, not durations. Both brokers run with
quota.window.num=2 and quota.window.size.seconds=1.

    python -m interop.diff_connections record   # against Apache Kafka 4.3.1 (golden file)
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from interop._common import load_golden, record_golden
from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.protocol.messages.alter_client_quotas_request import (
    AlterClientQuotasRequest,
    EntityData,
    EntryData,
    OpData,
)
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest

GOLDEN = Path(__file__).resolve().parent / "golden_kafka" / "connections.json"
REQUEST_MAX = 200_000
SETTINGS = {
    "max.connections.per.ip": "3",
    "max.connections.per.ip.overrides": "127.0.0.1:100,127.0.0.2:50",
    "socket.request.max.bytes": str(REQUEST_MAX),
    "quota.window.num": "2",
    "quota.window.size.seconds": "1",
}
PER_IP_SOURCE = "127.0.0.3"  # held to the default max.connections.per.ip
SETTLE_S = 1.0  # Kafka applies a quota through its metadata log a moment after answering


def _connect(bootstrap: str, source: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect((host, int(port)))
    return sock


def _read(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def api_versions(sock: socket.socket, timeout: float = 5.0) -> str:
    """'answered', 'closed' (EOF or reset, no answer) or 'timeout'."""
    sock.settimeout(timeout)
    try:
        sock.sendall(encode_request(ApiVersionsRequest(), 0, 7, client_id="diff-connections"))
        size = struct.unpack(">i", _read(sock, 4))[0]
        cid, _ = decode_response(ApiVersionsRequest.API_KEY, 0, _read(sock, size))
        return "answered" if cid == 7 else "wrong correlation id"
    except TimeoutError:
        return "timeout"
    except (ConnectionError, OSError):
        return "closed"


def per_ip(bootstrap: str) -> dict[str, Any]:
    held = [_connect(bootstrap, PER_IP_SOURCE) for _ in range(3)]
    out: dict[str, Any] = {"per_ip_first_three": [api_versions(s) for s in held]}
    extra = _connect(bootstrap, PER_IP_SOURCE)
    out["per_ip_fourth"] = api_versions(extra)
    extra.close()
    others = [_connect(bootstrap, "127.0.0.2") for _ in range(5)]  # the override lets 127.0.0.2 hold 50
    out["per_ip_override_five"] = [api_versions(s) for s in others]
    for s in others:
        s.close()
    held.pop(0).close()
    outcome = "closed"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the broker frees the slot once it sees the close
        again = _connect(bootstrap, PER_IP_SOURCE)
        outcome = api_versions(again)
        again.close()
        if outcome == "answered":
            break
        time.sleep(0.2)
    out["per_ip_after_one_closed"] = outcome
    for s in held:
        s.close()
    return out


def too_large(bootstrap: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, size in (("request_at_limit", REQUEST_MAX), ("request_over_limit", REQUEST_MAX + 1)):
        sock = _connect(bootstrap)
        sock.sendall(struct.pack(">i", size) + b"\x00" * 64)
        sock.settimeout(5)
        try:
            out[name] = "closed" if sock.recv(1) == b"" else "answered"
        except TimeoutError:
            out[name] = "open"  # still reading the rest of the frame
        except OSError:
            out[name] = "closed"
        sock.close()
    return out


def ip_quota(bootstrap: str, settle: float) -> dict[str, Any]:
    admin = _connect(bootstrap)
    request = AlterClientQuotasRequest(
        entries=[
            EntryData(
                entity=[EntityData(entity_type="ip", entity_name="127.0.0.2")],
                ops=[OpData(key="connection_creation_rate", value=2.0, remove=False)],
            )
        ]
    )
    admin.sendall(encode_request(request, 1, 1, client_id="diff-connections"))
    size = struct.unpack(">i", _read(admin, 4))[0]
    _, response = decode_response(AlterClientQuotasRequest.API_KEY, 1, _read(admin, size))
    admin.close()
    time.sleep(settle)
    outcomes = []
    closed_late = False
    for _ in range(8):
        started = time.monotonic()
        sock = _connect(bootstrap, "127.0.0.2")
        outcome = api_versions(sock, timeout=5.0)
        if outcome == "closed" and time.monotonic() - started >= 0.05:
            closed_late = True
        outcomes.append(outcome)
        sock.close()
    return {
        "ip_quota_set": [e.error_code for e in response.entries],
        "ip_quota_first_served": outcomes[0],
        "ip_quota_some_closed": "closed" in outcomes,
        "ip_quota_closed_after_a_delay": closed_late,
        "ip_quota_never_timeout": "timeout" not in outcomes,
    }


def run(bootstrap: str, settle: float = SETTLE_S) -> dict[str, Any]:
    out = per_ip(bootstrap)
    out.update(too_large(bootstrap))
    out.update(ip_quota(bootstrap, settle))
    return out


def record() -> Path:
    return record_golden(GOLDEN, "connections-", run, SETTINGS)


def load() -> dict[str, Any]:
    return load_golden(GOLDEN, meta=False)


if __name__ == "__main__":
    if sys.argv[1:] == ["record"]:
        print(record())
    else:
        print(__doc__)
