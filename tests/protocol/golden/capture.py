"""Capture the request frames real Kafka clients send, as golden fixtures.

    python tests/protocol/golden/capture.py [--clients a,b,...] [--out DIR]

Starts a tiny broker at 127.0.0.1 (answers built with kafkapy's codec) that
pretends to be a one-node cluster: ApiVersions, Metadata (any topic exists,
one partition led by itself), FindCoordinator, the classic group protocol
(JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetFetch, OffsetCommit),
InitProducerId, Produce, Fetch (empty), ListOffsets. Then drives each client
in turn (confluent-kafka, kafka-python, aiokafka, kcat, kafkajs): each produces
a few messages per compression codec it supports, to the topic
`golden-<codec>`, and runs a group consumer on `golden` briefly. Every request
frame (after the size prefix) is saved as
`<client>/<nnn>_<ApiName>_v<version>.bin`; `manifest.json` lists the frames
and the messages each client sent. At most a few frames per (API, version)
are kept per client, Produce frames all.

Needs: pip install confluent-kafka kafka-python aiokafka python-snappy lz4 zstandard;
apt-get install kcat; npm install (in tests/protocol/golden/node).
The python clients run as `capture.py --drive <client> --port N` subprocesses.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import kafkapy.protocol.messages.api_versions_response as av
import kafkapy.protocol.messages.fetch_response as fr
import kafkapy.protocol.messages.find_coordinator_response as fc
import kafkapy.protocol.messages.init_producer_id_response as ipi
import kafkapy.protocol.messages.join_group_response as jg
import kafkapy.protocol.messages.leave_group_response as lg
import kafkapy.protocol.messages.list_offsets_response as lo
import kafkapy.protocol.messages.metadata_response as md
import kafkapy.protocol.messages.offset_commit_response as oc
import kafkapy.protocol.messages.offset_fetch_response as of
import kafkapy.protocol.messages.produce_response as pr
from kafkapy.protocol.api import APIS, ApiKey, ApiSpec, api_spec
from kafkapy.protocol.errors import DecodeError
from kafkapy.protocol.frames import decode_request, encode_response, peek_request_header
from kafkapy.protocol.messages.api_versions_response import ApiVersionsResponse
from kafkapy.protocol.primitives import INT32

CLIENTS = ("confluent", "kafka-python", "aiokafka", "kcat", "kafkajs")
CODECS: dict[str, tuple[str, ...]] = {
    "confluent": ("none", "gzip", "snappy", "lz4", "zstd"),
    "kafka-python": ("none", "gzip", "snappy", "lz4", "zstd"),
    "aiokafka": ("none", "gzip", "snappy", "lz4", "zstd"),
    "kcat": ("none", "gzip", "snappy", "lz4", "zstd"),
    "kafkajs": ("none", "gzip", "snappy"),
}
KEEP_SAME = 3  # frames kept per (client, api, version), Produce excepted
NODE_ID = 1
CLUSTER_ID = "golden-cluster-0001"
UNSUPPORTED_VERSION = 35
MEMBER_ID_REQUIRED = 79
CONSUME_TOPIC = "golden"


def messages_for(client: str, codec: str) -> list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]:
    """What `client` produces with `codec`: (key, value, headers)."""
    out: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []
    for i in range(3):
        if client == "kcat":  # kcat gives every message of a run the same headers
            headers = [("h", b"golden"), ("codec", codec.encode())]
        else:
            headers = [("h", b"golden"), ("i", str(i).encode())]
        key = None if (i == 2 and client != "kcat") else f"key-{i}".encode()
        value = f"{client} {codec} message {i} ".encode() * (1 + 10 * i)
        out.append((key, value, headers))
    return out


def topic_id(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, "kafkapy-golden/" + name)


# ------------------------------------------------------------------ broker


@dataclass
class Captured:
    client: str
    api_key: int
    api_name: str
    version: int
    frame: bytes


@dataclass
class Group:
    generation: int = 0
    assignments: dict[str, bytes] = field(default_factory=dict)


class CaptureBroker:
    """A one-node fake cluster that records every request frame."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.client = "unknown"
        self.captured: list[Captured] = []
        self.topics: set[str] = {CONSUME_TOPIC}
        self.groups: dict[str, Group] = {}
        self.offsets: dict[tuple[str, int], int] = {}
        self.producer_ids = 1000
        self.errors: list[str] = []
        self.stopped = False

    def start(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self.stopped = True
        self.sock.close()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while True:
                head = _recv_exact(conn, 4)
                if head is None:
                    return
                (size,) = INT32.unpack(head)
                frame = _recv_exact(conn, size)
                if frame is None:
                    return
                try:
                    reply = self.handle(frame)
                except Exception as e:
                    with self.lock:
                        self.errors.append(f"{self.client}: {type(e).__name__}: {e}")
                    return
                if reply is not None:
                    try:
                        conn.sendall(INT32.pack(len(reply)) + reply)
                    except OSError:  # the client went away
                        return

    def record(self, frame: bytes, api: ApiSpec, version: int) -> None:
        with self.lock:
            same = sum(
                1
                for c in self.captured
                if c.client == self.client and c.api_key == api.api_key and c.version == version
            )
            if api.api_key == ApiKey.PRODUCE or same < KEEP_SAME:
                self.captured.append(Captured(self.client, api.api_key, api.name, version, frame))

    def handle(self, frame: bytes) -> bytes | None:
        api_key, version, correlation_id = peek_request_header(frame)
        api = api_spec(api_key)
        if api_key == ApiKey.API_VERSIONS and version > api.max_version:
            # Answer in v0 with the error, so the client retries with a version we know.
            body = ApiVersionsResponse(error_code=UNSUPPORTED_VERSION, api_keys=advertised())
            return _join(encode_response(api, 0, correlation_id, body))
        req = decode_request(frame)
        self.record(frame, api, version)
        handler = getattr(self, "on_" + api.request_module.removesuffix("_request"), None)
        if handler is None:
            raise DecodeError(f"no answer for {api.name}")
        body = handler(req.body, version, req.header.client_id or "")
        if body is None:
            return None
        return _join(encode_response(api, version, correlation_id, body))

    # ---- answers

    def on_api_versions(self, req: Any, version: int, client: str) -> Any:
        return av.ApiVersionsResponse(api_keys=advertised())

    def _broker(self) -> md.MetadataResponseBroker:
        return md.MetadataResponseBroker(node_id=NODE_ID, host="127.0.0.1", port=self.port)

    def on_metadata(self, req: Any, version: int, client: str) -> Any:
        with self.lock:
            if req.topics is None or (version == 0 and not req.topics):
                names = sorted(self.topics)
            else:
                by_id = {topic_id(t): t for t in self.topics}
                names = [t.name if t.name is not None else by_id.get(t.topic_id, "") for t in req.topics]
                self.topics.update(n for n in names if n)
        topics = [
            md.MetadataResponseTopic(
                name=n,
                topic_id=topic_id(n),
                partitions=[
                    md.MetadataResponsePartition(
                        partition_index=0,
                        leader_id=NODE_ID,
                        leader_epoch=0,
                        replica_nodes=[NODE_ID],
                        isr_nodes=[NODE_ID],
                    )
                ],
            )
            for n in names
        ]
        return md.MetadataResponse(
            brokers=[self._broker()], cluster_id=CLUSTER_ID, controller_id=NODE_ID, topics=topics
        )

    def on_find_coordinator(self, req: Any, version: int, client: str) -> Any:
        if version < 4:
            return fc.FindCoordinatorResponse(node_id=NODE_ID, host="127.0.0.1", port=self.port)
        return fc.FindCoordinatorResponse(
            coordinators=[
                fc.Coordinator(key=k, node_id=NODE_ID, host="127.0.0.1", port=self.port) for k in req.coordinator_keys
            ]
        )

    def on_init_producer_id(self, req: Any, version: int, client: str) -> Any:
        with self.lock:
            self.producer_ids += 1
            pid = self.producer_ids
        return ipi.InitProducerIdResponse(producer_id=pid, producer_epoch=0)

    def on_produce(self, req: Any, version: int, client: str) -> Any:
        responses = []
        for t in req.topic_data:
            parts = []
            for p in t.partition_data:
                with self.lock:
                    base = self.offsets.get((t.name, p.index), 0)
                    self.offsets[(t.name, p.index)] = base + _count_records(p.records)
                parts.append(pr.PartitionProduceResponse(index=p.index, base_offset=base))
            responses.append(pr.TopicProduceResponse(name=t.name, partition_responses=parts))
        if req.acks == 0:
            return None  # acks=0: the client expects no answer
        return pr.ProduceResponse(responses=responses)

    def on_fetch(self, req: Any, version: int, client: str) -> Any:
        # Nothing to return: wait a little (not the full max wait) to keep the capture short.
        time.sleep(min(req.max_wait_ms, 200) / 1000)
        responses = []
        for t in req.topics:
            parts = [
                fr.PartitionData(
                    partition_index=p.partition,
                    high_watermark=0,
                    last_stable_offset=0,
                    log_start_offset=0,
                    aborted_transactions=[],
                    records=b"",
                )
                for p in t.partitions
            ]
            responses.append(fr.FetchableTopicResponse(topic=t.topic, topic_id=t.topic_id, partitions=parts))
        return fr.FetchResponse(responses=responses)

    def on_list_offsets(self, req: Any, version: int, client: str) -> Any:
        topics = []
        for t in req.topics:
            parts = []
            for p in t.partitions:
                with self.lock:
                    end = self.offsets.get((t.name, p.partition_index), 0)
                offset = 0 if p.timestamp == -2 else end
                parts.append(
                    lo.ListOffsetsPartitionResponse(
                        partition_index=p.partition_index,
                        old_style_offsets=[offset],
                        timestamp=-1,
                        offset=offset,
                        leader_epoch=0,
                    )
                )
            topics.append(lo.ListOffsetsTopicResponse(name=t.name, partitions=parts))
        return lo.ListOffsetsResponse(topics=topics)

    def on_join_group(self, req: Any, version: int, client: str) -> Any:
        member = req.member_id or f"{client or 'member'}-{uuid.uuid4()}"
        if version >= 4 and not req.member_id:
            # As Kafka does: hand out a member id and ask the client to join again with it.
            return jg.JoinGroupResponse(
                error_code=MEMBER_ID_REQUIRED, member_id=member, protocol_name=None if version >= 7 else ""
            )
        with self.lock:
            group = self.groups.setdefault(req.group_id, Group())
            group.generation += 1
            generation = group.generation
        proto = req.protocols[0]
        return jg.JoinGroupResponse(
            generation_id=generation,
            protocol_type=req.protocol_type,
            protocol_name=proto.name,
            leader=member,
            member_id=member,
            members=[
                jg.JoinGroupResponseMember(
                    member_id=member, group_instance_id=req.group_instance_id, metadata=proto.metadata
                )
            ],
        )

    def on_sync_group(self, req: Any, version: int, client: str) -> Any:
        from kafkapy.protocol.messages.sync_group_response import SyncGroupResponse

        with self.lock:
            group = self.groups.setdefault(req.group_id, Group())
            for a in req.assignments:
                group.assignments[a.member_id] = a.assignment
            assignment = group.assignments.get(req.member_id, b"")
        return SyncGroupResponse(
            protocol_type=req.protocol_type, protocol_name=req.protocol_name, assignment=assignment
        )

    def on_heartbeat(self, req: Any, version: int, client: str) -> Any:
        from kafkapy.protocol.messages.heartbeat_response import HeartbeatResponse

        return HeartbeatResponse()

    def on_leave_group(self, req: Any, version: int, client: str) -> Any:
        members = [lg.MemberResponse(member_id=m.member_id, group_instance_id=m.group_instance_id) for m in req.members]
        return lg.LeaveGroupResponse(members=members)

    def on_offset_fetch(self, req: Any, version: int, client: str) -> Any:
        if version < 8:
            topics = [
                of.OffsetFetchResponseTopic(
                    name=t.name,
                    partitions=[
                        of.OffsetFetchResponsePartition(partition_index=i, committed_offset=-1, metadata="")
                        for i in t.partition_indexes
                    ],
                )
                for t in req.topics or []
            ]
            return of.OffsetFetchResponse(topics=topics)
        groups = [
            of.OffsetFetchResponseGroup(
                group_id=g.group_id,
                topics=[
                    of.OffsetFetchResponseTopics(
                        name=t.name,
                        partitions=[
                            of.OffsetFetchResponsePartitions(partition_index=i, committed_offset=-1, metadata="")
                            for i in t.partition_indexes
                        ],
                    )
                    for t in g.topics or []
                ],
            )
            for g in req.groups
        ]
        return of.OffsetFetchResponse(groups=groups)

    def on_offset_commit(self, req: Any, version: int, client: str) -> Any:
        topics = [
            oc.OffsetCommitResponseTopic(
                name=t.name,
                partitions=[oc.OffsetCommitResponsePartition(partition_index=p.partition_index) for p in t.partitions],
            )
            for t in req.topics
        ]
        return oc.OffsetCommitResponse(topics=topics)


def advertised() -> list[av.ApiVersion]:
    """What a broker listener offers: broker APIs, stable versions, minus client telemetry."""
    out = []
    for a in APIS:
        if "broker" not in a.listeners or a.api_key in (ApiKey.GET_TELEMETRY_SUBSCRIPTIONS, ApiKey.PUSH_TELEMETRY):
            continue
        hi = a.max_version - 1 if a.latest_unstable else a.max_version
        if hi >= a.min_version:
            out.append(av.ApiVersion(api_key=a.api_key, min_version=a.min_version, max_version=hi))
    return out


def _count_records(records: Any) -> int:
    """Records in a v2 batch blob (the count field of each batch header)."""
    if not records:
        return 0
    view = memoryview(records)
    n, pos = 0, 0
    while pos + 61 <= len(view):
        (length,) = struct.unpack_from(">i", view, pos + 8)
        (count,) = struct.unpack_from(">i", view, pos + 57)
        n += count
        pos += 12 + length
    return n


def _join(parts: list[Any]) -> bytes:
    return b"".join(bytes(p) for p in parts)


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = conn.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


# ------------------------------------------------------------------ drivers


def drive_confluent(port: int) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    boot = f"127.0.0.1:{port}"
    for codec in CODECS["confluent"]:
        p = Producer(
            {"bootstrap.servers": boot, "compression.type": codec, "linger.ms": 20, "enable.idempotence": True}
        )
        for key, value, headers in messages_for("confluent", codec):
            p.produce(f"golden-{codec}", value=value, key=key, headers=headers, partition=0)
        assert p.flush(15) == 0, "confluent: messages left unsent"
    c = Consumer(
        {
            "bootstrap.servers": boot,
            "group.id": "golden-confluent",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([CONSUME_TOPIC])
    end = time.time() + 6
    while time.time() < end and not c.assignment():
        c.poll(0.2)
    c.poll(0.5)
    c.commit(offsets=[TopicPartition(CONSUME_TOPIC, 0, 0)], asynchronous=False)
    c.close()


def drive_kafka_python(port: int) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    boot = f"127.0.0.1:{port}"
    for codec in CODECS["kafka-python"]:
        p = KafkaProducer(bootstrap_servers=boot, compression_type=None if codec == "none" else codec, linger_ms=20)
        for key, value, headers in messages_for("kafka-python", codec):
            p.send(f"golden-{codec}", value=value, key=key, headers=headers, partition=0)
        p.flush(15)
        p.close()
    c = KafkaConsumer(
        bootstrap_servers=boot, group_id="golden-kafka-python", auto_offset_reset="earliest", enable_auto_commit=False
    )
    c.subscribe([CONSUME_TOPIC])
    end = time.time() + 6
    while time.time() < end and not c.assignment():
        c.poll(200)
    c.poll(500)
    c.commit({TopicPartition(CONSUME_TOPIC, 0): OffsetAndMetadata(0, "", -1)})
    c.close()


def drive_aiokafka(port: int) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    boot = f"127.0.0.1:{port}"

    async def run() -> None:
        for codec in CODECS["aiokafka"]:
            p = AIOKafkaProducer(
                bootstrap_servers=boot, compression_type=None if codec == "none" else codec, linger_ms=20
            )
            await p.start()
            try:
                futs = [
                    await p.send(f"golden-{codec}", value=value, key=key, headers=headers, partition=0)
                    for key, value, headers in messages_for("aiokafka", codec)
                ]
                await asyncio.gather(*futs)
            finally:
                await p.stop()
        c = AIOKafkaConsumer(
            CONSUME_TOPIC,
            bootstrap_servers=boot,
            group_id="golden-aiokafka",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await c.start()
        try:
            end = time.time() + 6
            while time.time() < end and not c.assignment():
                await c.getmany(timeout_ms=200)
            await c.getmany(timeout_ms=500)
            await c.commit({TopicPartition(CONSUME_TOPIC, 0): 0})
        finally:
            await c.stop()

    asyncio.run(run())


def drive_kcat(port: int) -> None:
    boot = f"127.0.0.1:{port}"
    for codec in CODECS["kcat"]:
        msgs = messages_for("kcat", codec)
        headers = [a for k, v in msgs[0][2] for a in ("-H", f"{k}={v.decode()}")]
        lines = b"".join((key or b"") + b"\t" + value + b"\n" for key, value, _ in msgs)
        subprocess.run(
            ["kcat", "-b", boot, "-P", "-t", f"golden-{codec}", "-p", "0", "-z", codec, "-K", "\t", *headers],
            input=lines,
            check=True,
            timeout=30,
        )
    subprocess.run(
        [
            "kcat",
            "-b",
            boot,
            "-G",
            "golden-kcat",
            "-o",
            "beginning",
            "-e",
            "-X",
            "enable.auto.commit=true",
            CONSUME_TOPIC,
        ],
        check=False,
        timeout=30,
        stdout=subprocess.DEVNULL,
    )


def drive_kafkajs(port: int) -> None:
    node = HERE / "node"
    if not (node / "node_modules" / "kafkajs").is_dir():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=node, check=True)
    spec = {
        c: [
            [k.hex() if k is not None else None, v.hex(), [[hk, hv.hex()] for hk, hv in h]]
            for k, v, h in messages_for("kafkajs", c)
        ]
        for c in CODECS["kafkajs"]
    }
    env = dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1")
    subprocess.run(["node", str(node / "drive.js"), str(port), json.dumps(spec)], check=True, timeout=90, env=env)


DRIVERS = {
    "confluent": drive_confluent,
    "kafka-python": drive_kafka_python,
    "aiokafka": drive_aiokafka,
    "kcat": drive_kcat,
    "kafkajs": drive_kafkajs,
}


# ------------------------------------------------------------------ harness


def capture(clients: list[str], out: Path) -> int:
    broker = CaptureBroker()
    broker.start()
    manifest: dict[str, Any] = {"clients": {}}
    manifest_path = out / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
    status = 0
    for client in clients:
        with broker.lock:
            broker.client = client
        print(f"--- {client} (port {broker.port})", flush=True)
        t0 = time.time()
        if client in ("kcat", "kafkajs"):

            def run(c=client):
                return DRIVERS[c](broker.port)

            try:
                run()
                ok = True
            except (subprocess.SubprocessError, OSError) as e:
                print(f"{client} failed: {e}", file=sys.stderr)
                ok = False
        else:
            proc = subprocess.run(
                [sys.executable, __file__, "--drive", client, "--port", str(broker.port)], timeout=180, check=False
            )
            ok = proc.returncode == 0
        time.sleep(0.5)  # let in-flight requests land
        with broker.lock:
            frames = [c for c in broker.captured if c.client == client]
            errors = [e for e in broker.errors if e.startswith(client + ":")]
        print(f"{client}: {len(frames)} frames in {time.time() - t0:.1f}s, ok={ok}, broker errors={errors}", flush=True)
        if not ok or errors:
            status = 1
            continue
        folder = out / client
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        entries = []
        for i, c in enumerate(frames):
            name = f"{i:03d}_{c.api_name}_v{c.version}.bin"
            (folder / name).write_bytes(c.frame)
            entries.append(
                {
                    "file": name,
                    "api_key": c.api_key,
                    "api": c.api_name,
                    "version": c.version,
                    "size": len(c.frame),
                    "sha256": hashlib.sha256(c.frame).hexdigest(),
                }
            )
        manifest["clients"][client] = {
            "version": client_version(client),
            "frames": entries,
            "produced": {
                f"golden-{codec}": {
                    "codec": codec,
                    "messages": [
                        {
                            "key": None if k is None else k.hex(),
                            "value": v.hex(),
                            "headers": [[hk, hv.hex()] for hk, hv in h],
                        }
                        for k, v, h in messages_for(client, codec)
                    ],
                }
                for codec in CODECS[client]
            },
        }
    broker.stop()
    manifest["clients"] = dict(sorted(manifest["clients"].items()))
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return status


def client_version(client: str) -> str:
    try:
        if client == "confluent":
            import confluent_kafka

            return f"confluent-kafka {confluent_kafka.version()}, librdkafka {confluent_kafka.libversion()[0]}"
        if client == "kafka-python":
            import kafka

            return f"kafka-python {kafka.__version__}"
        if client == "aiokafka":
            import aiokafka

            return f"aiokafka {aiokafka.__version__}"
        if client == "kcat":
            out = subprocess.run(["kcat", "-V"], capture_output=True, text=True, check=False)
            line = next(x for x in (out.stdout + out.stderr).splitlines() if x.startswith("Version"))
            return "kcat " + line.removeprefix("Version ")
        if client == "kafkajs":
            pkg = json.loads((HERE / "node" / "node_modules" / "kafkajs" / "package.json").read_text())
            return f"kafkajs {pkg['version']}"
    except Exception as e:
        return f"unknown ({e})"
    return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", default=",".join(CLIENTS))
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--drive", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.drive:
        DRIVERS[args.drive](args.port)
        return 0
    clients = [c for c in args.clients.split(",") if c]
    unknown = set(clients) - set(CLIENTS)
    if unknown:
        ap.error(f"unknown clients: {sorted(unknown)}")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return capture(clients, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
