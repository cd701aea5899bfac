#!/usr/bin/env python3
"""`scripts/bench_scram.py`: SCRAM-SHA-256 and SCRAM-SHA-512 authentications per second.

Against a kafkapy broker (SASL_PLAINTEXT listener, credentials set through
AlterUserScramCredentials) and, unless --no-kafka, Apache Kafka 4.3.1 (the
interop/ reference broker, credentials added at format time with
`--add-scram`), in the same run. Each authentication is a new TCP connection:
SaslHandshake v1, the two SaslAuthenticate rounds (client-first, client-final
with the proof, the server signature checked), close. --concurrency clients
loop for --seconds per mechanism. The client caches SaltedPassword per salt
(as a real client can), so its PBKDF2 does not dominate: what is measured is
the broker's side of the exchange plus one connection set-up each.
The client runs on the same machine (2 cores shared with the broker).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from kafkapy.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from kafkapy.security import scram

USER, PASSWORD = "bench", "bench-password"
MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")

# a client keeps SaltedPassword for a salt it has seen: PBKDF2 once, not per connection
scram.salted_password = functools.lru_cache(maxsize=16)(scram.salted_password)  # type: ignore[assignment]


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: object, version: int, cid: int
) -> object:
    writer.write(encode_request(body, version, cid, client_id="bench-scram"))  # type: ignore[arg-type]
    size = struct.unpack(">i", await reader.readexactly(4))[0]
    _, resp = decode_response(body.API_KEY, version, await reader.readexactly(size))  # type: ignore[attr-defined]
    return resp


async def authenticate(host: str, port: int, mechanism: str) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        hs: object = await _request(reader, writer, SaslHandshakeRequest(mechanism=mechanism), 1, 1)
        assert hs.error_code == 0, hs
        client = scram.ScramClient(mechanism, USER, PASSWORD)
        first: object = await _request(reader, writer, SaslAuthenticateRequest(auth_bytes=client.first()), 2, 2)
        assert first.error_code == 0, first
        final_token = client.final(bytes(first.auth_bytes))
        final: object = await _request(reader, writer, SaslAuthenticateRequest(auth_bytes=final_token), 2, 3)
        assert final.error_code == 0, final.error_message
        client.verify(bytes(final.auth_bytes))
    finally:
        writer.close()


async def measure(host: str, port: int, mechanism: str, seconds: float, concurrency: int) -> tuple[float, float]:
    """(authentications per second, median latency ms)"""
    await authenticate(host, port, mechanism)  # warm-up
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await authenticate(host, port, mechanism)
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return len(latencies) / elapsed, latencies[len(latencies) // 2] * 1000


def start_kafkapy(workdir: Path) -> tuple[object, int]:
    from interop._common import start_broker

    settings = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0",
        "listener.security.protocol.map": "INTERNAL:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL",
        "sasl.enabled.mechanisms": ",".join(MECHANISMS),
    }
    broker = start_broker(workdir / "kafkapy", settings)
    internal = None
    for line in broker.log_path.read_text().splitlines():
        if '"broker_ready"' in line:
            internal = int(line.split("INTERNAL://127.0.0.1:")[1].split('"')[0].split(",")[0])
    assert internal is not None
    cmd = [sys.executable, "-m", "kafkapy", "users", "add", USER, "--password", PASSWORD, "-b", f"127.0.0.1:{internal}"]
    subprocess.run(cmd, check=True, cwd=REPO, capture_output=True)
    return broker, broker.port


def start_apache_kafka(workdir: Path) -> tuple[object, int]:
    from interop import apache_kafka as ak

    workdir.mkdir(parents=True, exist_ok=True)
    port, controller, sasl = ak.free_port(), ak.free_port(), ak.free_port()
    jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    settings = {
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller},SASL_PLAINTEXT://127.0.0.1:{sasl}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": ",".join(MECHANISMS),
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": jaas,
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": jaas,
    }
    config = ak.write_config(workdir, port, controller, settings)
    log4j = workdir / "log4j2.properties"
    log4j.write_text(ak.LOG4J2.format(log=workdir / "server.log"))
    jvm = ("-Xmx512m", "-Xms512m", f"-Dlog4j2.configurationFile={log4j}", "-Djava.awt.headless=true")
    scram_args: list[str] = []
    for m in MECHANISMS:
        scram_args += ["--add-scram", f"{m}=[name={USER},password={PASSWORD}]"]
    cluster = ak.random_cluster_id()
    fmt = ak.java_command(ak.STORAGE_TOOL, "format", "-t", cluster, "-c", str(config), *scram_args, jvm_args=jvm)
    subprocess.run(fmt, check=True, capture_output=True, timeout=120)
    out = open(workdir / "stdout.log", "wb")  # noqa: SIM115 - kept open for the process's life
    proc = subprocess.Popen(
        ak.java_command(ak.KAFKA_MAIN, str(config), jvm_args=jvm),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    kafka = ak.KafkaProcess(proc, "127.0.0.1", port, controller, workdir, cluster, ak.kafka_version(), 0.0, settings)
    deadline = time.monotonic() + 90
    while not ak._metadata_lists_broker("127.0.0.1", port):
        if time.monotonic() > deadline or proc.poll() is not None:
            kafka.stop()
            raise RuntimeError(f"Apache Kafka did not start:\n{kafka.log_tail(40)}")
        time.sleep(0.2)
    return kafka, sasl


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench_scram.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="per mechanism and broker (default 5)")
    ap.add_argument("--concurrency", type=int, default=8, help="concurrent clients (default 8)")
    ap.add_argument("--no-kafka", action="store_true", help="skip Apache Kafka")
    args = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-scram-"))
    print(f"python {platform.python_version()}, {args.concurrency} clients, {args.seconds:g} s per figure")
    print(f"{'broker':<14}{'mechanism':<16}{'auth/s':>10}{'p50 ms':>10}")
    brokers = [("kafkapy", start_kafkapy)] + ([] if args.no_kafka else [("apache-kafka", start_apache_kafka)])
    try:
        for name, start in brokers:
            proc, port = start(workdir)
            try:
                for mechanism in MECHANISMS:
                    rate, p50 = asyncio.run(measure("127.0.0.1", port, mechanism, args.seconds, args.concurrency))
                    print(f"{name:<14}{mechanism:<16}{rate:>10.0f}{p50:>10.2f}", flush=True)
            finally:
                proc.stop()  # type: ignore[attr-defined]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
