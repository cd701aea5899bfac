"""End-to-end tests of the client and the topics/produce/consume CLI against a real broker process."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kafkapy.cli_consume import compile_format
from kafkapy.client import (
    EARLIEST,
    LATEST,
    FetchedRecord,
    KafkaClient,
    KafkaError,
    murmur2,
    parse_bootstrap,
    partition_for_key,
)
from kafkapy.protocol.error_codes import ErrorCode

ROOT = Path(__file__).resolve().parents[1]


@dataclass(slots=True)
class Broker:
    bootstrap: str
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A kafkapy broker subprocess on a free port, stopped by its PID."""
    port = _free_port()
    data = tmp_path_factory.mktemp("broker-data")
    log = (data / "broker.log").open("wb")  # closed after the broker stops
    proc = subprocess.Popen(
        [sys.executable, "-m", "kafkapy", "broker", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data / "logs")],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("broker did not start: " + (data / "broker.log").read_text()[-2000:])
            time.sleep(0.05)
    try:
        yield Broker(f"127.0.0.1:{port}", proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def kafkapy(broker: Broker, *args: str, stdin: bytes = b"", timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "kafkapy", *args, "--bootstrap-server", broker.bootstrap],
        input=stdin,
        capture_output=True,
        check=False,
        cwd=ROOT,
        timeout=timeout,
    )


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def new_topic(broker: Broker, partitions: int = 1, *extra: str) -> str:
    name = "t-" + uuid.uuid4().hex[:10]
    ok(kafkapy(broker, "topics", "create", name, "--partitions", str(partitions), "--replication-factor", "1", *extra))
    return name


# --- unit -------------------------------------------------------------------------


def test_murmur2_matches_java_client() -> None:
    # Values of the Java client's Utils.murmur2 for these inputs.
    assert murmur2(b"21") == -973932308
    assert murmur2(b"") == 275646681
    assert partition_for_key(b"21", 10) == (-973932308 & 0x7FFFFFFF) % 10


def test_parse_bootstrap() -> None:
    assert parse_bootstrap("a:1, b:2") == [("a", 1), ("b", 2)]
    assert parse_bootstrap("[::1]:9092") == [("::1", 9092)]
    with pytest.raises(ValueError):
        parse_bootstrap("nohost")


def test_compile_format() -> None:
    rec = FetchedRecord("t", 2, 7, 123, b"k", b"v", [("a", b"1"), ("b", None)])
    assert compile_format("%k:%v")(rec) == b"k:v\n"
    assert compile_format("%t|%p|%o|%T|%h\\n")(rec) == b"t|2|7|123|a=1,b=\n"
    assert compile_format("%K %S 100%%\\t")(rec) == b"1 1 100%\t\n"
    null = FetchedRecord("t", 0, 0, 0, None, None)
    assert compile_format("[%k][%v] %K")(null) == b"[][] -1\n"
    with pytest.raises(ValueError):
        compile_format("%q")


# --- a scripted fake broker (protocol layer only) -----------------------------------------


async def _fake_broker(old_api_versions: bool, reverse: bool) -> tuple[asyncio.Server, int]:
    """Answers ApiVersions (refusing v>2 like an old broker, if asked) and Metadata.

    With `reverse`, the first two Metadata requests are answered in reverse
    order, to prove responses are matched by correlation id.
    """
    from kafkapy.protocol.frames import decode_request, encode_response
    from kafkapy.protocol.messages.api_versions_response import (
        ApiVersion,
        ApiVersionsResponse,
    )
    from kafkapy.protocol.messages.metadata_response import (
        MetadataResponse,
        MetadataResponseBroker,
    )
    from kafkapy.protocol.primitives import INT32

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held: list[bytes] = []
        metadata_seen = 0
        port = writer.get_extra_info("sockname")[1]
        try:
            while True:
                (size,) = INT32.unpack(await reader.readexactly(4))
                req = decode_request(await reader.readexactly(size))
                if req.api.api_key == 18:
                    max_av = 2 if old_api_versions else 4
                    keys = [
                        ApiVersion(api_key=18, min_version=0, max_version=max_av),
                        ApiVersion(api_key=3, min_version=0, max_version=12),
                    ]
                    if req.version > max_av:
                        body = ApiVersionsResponse(error_code=35, api_keys=keys)
                        version = 0
                    else:
                        body, version = ApiVersionsResponse(api_keys=keys), req.version
                else:
                    names = [t.name for t in req.body.topics or []]  # type: ignore[attr-defined]
                    body = MetadataResponse(
                        brokers=[MetadataResponseBroker(node_id=1, host="127.0.0.1", port=port)],
                        cluster_id="fake-" + ",".join(n or "" for n in names),
                        controller_id=1,
                    )
                    version = req.version
                parts = encode_response(req.api, version, req.correlation_id, body)
                frame = b"".join(bytes(p) for p in parts)
                held.append(INT32.pack(len(frame)) + frame)
                if req.api.api_key == 3:
                    metadata_seen += 1
                    if reverse and metadata_seen == 1:
                        continue
                for out in reversed(held):
                    writer.write(out)
                held.clear()
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("old_api_versions", [False, True])
def test_negotiation_and_out_of_order_responses(old_api_versions: bool) -> None:
    async def scenario() -> None:
        server, port = await _fake_broker(old_api_versions, reverse=True)
        async with server:
            client = KafkaClient(f"127.0.0.1:{port}", retries=0)
            conn = await client._connection("127.0.0.1", port)
            assert conn.versions[18] == (2 if old_api_versions else 4)
            assert conn.versions[3] == 12  # min(ours 12, broker 12)
            assert 0 not in conn.versions  # the broker offers no Produce
            a, b = await asyncio.gather(client.refresh_metadata(["a"]), client.refresh_metadata(["b"]))
            assert (a.cluster_id, b.cluster_id) == ("fake-a", "fake-b")
            with pytest.raises(KafkaError) as info:
                await client.produce("a", 0, [(None, b"x", [], None)])
            assert info.value.code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            with pytest.raises(KafkaError) as info:
                conn.version_for(0)
            assert info.value.code == ErrorCode.UNSUPPORTED_VERSION
            await client.close()

    asyncio.run(scenario())


# --- topics -------------------------------------------------------------------------


def test_topics_create_list_describe_delete(broker: Broker) -> None:
    name = new_topic(broker, 3, "--config", "retention.ms=123456")
    assert name in ok(kafkapy(broker, "topics", "list")).split()
    out = ok(kafkapy(broker, "topics", "describe", name))
    assert f"Topic: {name}\t" in out and "PartitionCount: 3" in out and "retention.ms=123456" in out
    assert out.count("\tPartition: ") == 3
    assert "Deleted topic" in ok(kafkapy(broker, "topics", "delete", name))
    assert name not in ok(kafkapy(broker, "topics", "list")).split()


def test_topic_errors(broker: Broker) -> None:
    name = new_topic(broker)
    again = kafkapy(broker, "topics", "create", name)
    assert again.returncode == 1
    assert b"TOPIC_ALREADY_EXISTS" in again.stderr and b"Traceback" not in again.stderr
    assert kafkapy(broker, "topics", "create", name, "--if-not-exists").returncode == 0
    for args in (("topics", "delete", "no-such-topic"), ("topics", "describe", "no-such-topic")):
        missing = kafkapy(broker, *args)
        assert missing.returncode == 1
        assert b"UNKNOWN_TOPIC_OR_PARTITION" in missing.stderr and b"no-such-topic" in missing.stderr
    assert kafkapy(broker, "topics", "delete", "no-such-topic", "--if-exists").returncode == 0
    bad = kafkapy(broker, "topics", "create", "x", "--config", "novalue")
    assert bad.returncode == 2 and b"KEY=VALUE" in bad.stderr


def test_unreachable_broker_is_a_clear_error() -> None:
    dead = Broker(f"127.0.0.1:{_free_port()}", None)  # type: ignore[arg-type]
    result = kafkapy(dead, "topics", "list")
    assert result.returncode == 1
    assert b"NETWORK_EXCEPTION" in result.stderr and b"Traceback" not in result.stderr


def test_alter_and_describe_configs_round_trip(broker: Broker) -> None:
    name = new_topic(broker)
    ok(kafkapy(broker, "topics", "alter", name, "--config", "retention.ms=5000", "--config", "cleanup.policy=compact"))
    configs = ok(kafkapy(broker, "topics", "describe", name, "--configs-only")).split()
    assert "retention.ms=5000" in configs and "cleanup.policy=compact" in configs
    ok(kafkapy(broker, "topics", "alter", name, "--delete-config", "retention.ms"))
    configs = ok(kafkapy(broker, "topics", "describe", name, "--configs-only")).split()
    assert "cleanup.policy=compact" in configs
    assert not any(c.startswith("retention.ms=") for c in configs)
    all_configs = ok(kafkapy(broker, "topics", "describe", name, "--configs-only", "--all-configs")).split()
    assert any(c.startswith("retention.ms=") for c in all_configs)  # back to the default
    missing = kafkapy(broker, "topics", "alter", "no-such-topic", "--config", "retention.ms=1")
    assert missing.returncode == 1 and b"UNKNOWN_TOPIC_OR_PARTITION" in missing.stderr
    assert kafkapy(broker, "topics", "alter", name).returncode == 2


# --- produce / consume ----------------------------------------------------------------


def test_produce_consume_keys_and_headers(broker: Broker) -> None:
    name = new_topic(broker, 3)
    lines = [f"key{i}:value {i}" for i in range(30)]
    result = kafkapy(
        broker,
        "produce",
        name,
        "--key-separator",
        ":",
        "--header",
        "app=test",
        "--header",
        "n=1",
        stdin=("\n".join(lines) + "\n").encode(),
    )
    ok(result)
    assert b"Produced 30 records" in result.stderr
    out = ok(kafkapy(broker, "consume", name, "--from-beginning", "-n", "30", "--format", "%p|%k|%v|%h"))
    rows = [line.split("|") for line in out.splitlines()]
    assert len(rows) == 30
    for p, key, value, headers in rows:
        assert int(p) == partition_for_key(key.encode(), 3)  # keyed records hash like the Java client
        assert value == "value " + key[3:]
        assert headers == "app=test,n=1"
    assert sorted(f"{k}:{v}" for _, k, v, _ in rows) == sorted(lines)
    # per partition, order is kept
    for p in range(3):
        mine = [int(k[3:]) for q, k, _, _ in rows if int(q) == p]
        assert mine == sorted(mine)


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_each_codec(broker: Broker, codec: str) -> None:
    name = new_topic(broker)
    values = [f"{codec} record {i} " + "x" * (i % 50) for i in range(200)]
    ok(kafkapy(broker, "produce", name, "--compression", codec, "--batch-size", "64", stdin="\n".join(values).encode()))
    out = ok(kafkapy(broker, "consume", name, "--from-beginning", "-n", "200", "--json"))
    got = [json.loads(line) for line in out.splitlines()]
    assert [g["value"] for g in got] == values
    assert [g["offset"] for g in got] == list(range(200))
    assert all(g["key"] is None and g["topic"] == name for g in got)


def test_consume_positions_partition_and_timeout(broker: Broker) -> None:
    name = new_topic(broker, 2)
    ok(kafkapy(broker, "produce", name, "--partition", "1", "--acks", "1", stdin=b"a\nb\nc\nd\ne\n"))
    assert ok(kafkapy(broker, "consume", name, "--partition", "1", "--offset", "3", "-e")) == "d\ne\n"
    assert ok(kafkapy(broker, "consume", name, "--partition", "1", "--offset", "-2", "-e")) == "d\ne\n"
    assert ok(kafkapy(broker, "consume", name, "--partition", "0", "--from-beginning", "-e")) == ""
    # default start is the end: nothing arrives, the timeout ends the command cleanly
    started = time.monotonic()
    assert ok(kafkapy(broker, "consume", name, "--timeout-ms", "700")) == ""
    assert time.monotonic() - started < 20
    # timestamps: records produced with explicit timestamps
    ts_topic = new_topic(broker)
    ok(kafkapy(broker, "produce", ts_topic, "--timestamp", "1000", stdin=b"old\n"))
    ok(kafkapy(broker, "produce", ts_topic, "--timestamp", "5000", stdin=b"new\n"))
    assert ok(kafkapy(broker, "consume", ts_topic, "--timestamp", "3000", "-e", "--format", "%T %v")) == "5000 new\n"
    assert ok(kafkapy(broker, "consume", ts_topic, "--timestamp", "9000", "-e")) == ""
    bad = kafkapy(broker, "consume", name, "--partition", "7", "-e")
    assert bad.returncode == 1 and b"no partition 7" in bad.stderr
    bad = kafkapy(broker, "produce", name, "--partition", "7", stdin=b"x\n")
    assert bad.returncode == 1 and b"no partition 7" in bad.stderr


def test_consume_waits_for_new_records(broker: Broker) -> None:
    """A consumer started at the end long-polls and prints what is produced later."""
    name = new_topic(broker)
    consumer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kafkapy",
            "consume",
            name,
            "-n",
            "2",
            "--timeout-ms",
            "20000",
            "--bootstrap-server",
            broker.bootstrap,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(1.5)  # let it resolve its start offset first
        ok(kafkapy(broker, "produce", name, stdin=b"late1\nlate2\n"))
        out, err = consumer.communicate(timeout=30)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert consumer.returncode == 0, err
    assert out == b"late1\nlate2\n"


def test_produce_null_values_and_acks_zero(broker: Broker) -> None:
    name = new_topic(broker)
    ok(kafkapy(broker, "produce", name, "--key-separator", "=", "--null-value", "NULL", stdin=b"k1=NULL\nk2=v\n"))
    assert ok(kafkapy(broker, "consume", name, "--from-beginning", "-n", "2", "--format", "%k %S")) == "k1 -1\nk2 1\n"
    ok(kafkapy(broker, "produce", name, "--acks", "0", stdin=b"fire\n"))
    out = ok(kafkapy(broker, "consume", name, "--offset", "2", "-n", "1", "--timeout-ms", "10000"))
    assert out == "fire\n"


# --- client API ---------------------------------------------------------------------------


def test_client_pipelining_watermarks_and_errors(broker: Broker) -> None:
    name = "t-" + uuid.uuid4().hex[:10]

    async def scenario() -> None:
        async with KafkaClient(broker.bootstrap) as client:
            await client.create_topic(name, 2, 1, {"retention.ms": "600000"})
            await client.wait_for_topic(name)
            # many requests in flight on the one connection at once
            results = await asyncio.gather(
                *(client.produce(name, i % 2, [(None, f"v{i}".encode(), [], None)]) for i in range(40))
            )
            assert sorted(r.base_offset for r in results if r.partition == 0) == list(range(20))
            assert len(client._connections) == 1  # one broker, one connection
            assert await client.watermarks(name) == {0: (0, 20), 1: (0, 20)}
            assert await client.list_offsets(name, {0: EARLIEST, 1: LATEST}) == {0: 0, 1: 20}
            fetched = await client.fetch(name, {0: 5, 1: 19})
            assert [r.value for r in fetched[0].records][:2] == [b"v10", b"v12"]
            assert fetched[0].high_watermark == 20 and fetched[0].next_offset == 20
            assert len(fetched[1].records) == 1
            # long poll at the end returns empty after about max_wait
            started = time.monotonic()
            empty = await client.fetch(name, {0: 20}, max_wait_ms=300)
            assert empty[0].records == [] and time.monotonic() - started >= 0.2
            with pytest.raises(KafkaError) as info:
                await client.create_topic(name, 1, 1)
            assert info.value.code == ErrorCode.TOPIC_ALREADY_EXISTS
            with pytest.raises(KafkaError) as info:
                await client.topic("no-such-topic-" + name)
            assert info.value.code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            versions = next(iter(client._connections.values())).versions
            assert versions[0] >= 3 and versions[1] >= 4  # negotiated Produce / Fetch
            await client.delete_topics([name])

    asyncio.run(scenario())


# --- interop with a real client ----------------------------------------------------------------


def test_cross_check_with_confluent_kafka(broker: Broker) -> None:
    ck = pytest.importorskip("confluent_kafka")
    name = new_topic(broker, 4)
    lines = [f"k{i}\tv{i}" for i in range(20)]
    ok(
        kafkapy(
            broker,
            "produce",
            name,
            "--key-separator",
            "\t",
            "--header",
            "src=kafkapy",
            "--compression",
            "lz4",
            stdin="\n".join(lines).encode(),
        )
    )
    consumer = ck.Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": "g-" + name, "enable.auto.commit": False}
    )
    try:
        consumer.assign([ck.TopicPartition(name, p, ck.OFFSET_BEGINNING) for p in range(4)])
        got: list[tuple[int, str, str, list[tuple[str, bytes]]]] = []
        deadline = time.monotonic() + 30
        while len(got) < 20 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            got.append((msg.partition(), msg.key().decode(), msg.value().decode(), msg.headers()))
    finally:
        consumer.close()
    assert sorted(f"{k}\t{v}" for _, k, v, _ in got) == sorted(lines)
    for p, k, _, headers in got:
        assert p == partition_for_key(k.encode(), 4)
        assert headers == [("src", b"kafkapy")]

    # and the other way: librdkafka's murmur2 partitioner agrees with ours
    other = new_topic(broker, 5)
    producer = ck.Producer(
        {"bootstrap.servers": broker.bootstrap, "partitioner": "murmur2_random", "compression.type": "zstd"}
    )
    for i in range(25):
        producer.produce(other, key=f"key-{i}".encode(), value=f"val-{i}".encode(), headers=[("i", str(i).encode())])
    assert producer.flush(30) == 0
    out = ok(kafkapy(broker, "consume", other, "--from-beginning", "-n", "25", "--format", "%p %k %v %h"))
    rows = [line.split(" ") for line in out.splitlines()]
    assert len(rows) == 25
    for p, k, v, h in rows:
        assert int(p) == partition_for_key(k.encode(), 5)
        assert v == "val-" + k[4:] and h == "i=" + k[4:]


@pytest.mark.skipif(os.environ.get("KAFKAPY_SKIP_SLOW") == "1", reason="slow")
def test_large_produce_is_batched(broker: Broker) -> None:
    name = new_topic(broker, 2)
    n = 20000
    ok(
        kafkapy(
            broker,
            "produce",
            name,
            "--batch-size",
            "500",
            "--compression",
            "zstd",
            stdin=b"".join(b"%d\n" % i for i in range(n)),
        )
    )
    out = ok(kafkapy(broker, "consume", name, "--from-beginning", "-n", str(n), "--format", "%v"))
    assert sorted(int(x) for x in out.split()) == list(range(n))


def test_cross_check_with_kcat(broker: Broker) -> None:
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.skip("kcat is not installed")
    name = new_topic(broker, 3)
    lines = [f"key{i}:val{i}" for i in range(15)]
    ok(
        kafkapy(
            broker,
            "produce",
            name,
            "--key-separator",
            ":",
            "--header",
            "h=1",
            "--compression",
            "snappy",
            stdin="\n".join(lines).encode(),
        )
    )
    out = subprocess.run(
        [kcat, "-C", "-b", broker.bootstrap, "-t", name, "-o", "beginning", "-e", "-q", "-f", "%p %k %s %h\\n"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout.decode()
    rows = [line.split(" ") for line in out.splitlines()]
    assert sorted(f"{k}:{v}" for _, k, v, _ in rows) == sorted(lines)
    assert all(int(p) == partition_for_key(k.encode(), 3) and h == "h=1" for p, k, _, h in rows)

    # kcat produces (gzip, keys, headers); the kafkapy consumer reads it back
    other = new_topic(broker)
    subprocess.run(
        [kcat, "-P", "-b", broker.bootstrap, "-t", other, "-K", ":", "-H", "from=kcat", "-z", "gzip"],
        input=b"a:1\nb:2\nc:3\n",
        timeout=60,
        check=True,
        capture_output=True,
    )
    out = ok(kafkapy(broker, "consume", other, "--from-beginning", "-n", "3", "--format", "%o %k=%v %h"))
    assert out == "0 a=1 from=kcat\n1 b=2 from=kcat\n2 c=3 from=kcat\n"
