"""kafkajs adapter: interop/node/kjs.js run under node, one JSON request per call.

kafkajs's Consumer always joins a consumer group, so consumption goes
through kafkajs's own Cluster/Broker Fetch path with explicit offsets (see
kjs.js). Codecs: gzip built in, snappy and lz4 through the kafkajs-snappy and
kafkajs-lz4 plugins; zstd's plugin (@kafkajs/zstd) needs a native module
that does not build on Node 20."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, ClassVar

from interop._common import In, Out

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
SCRIPT = NODE_DIR / "kjs.js"
NODE = shutil.which("node") or "node"


def _b64(b: bytes | None) -> str | None:
    return None if b is None else base64.b64encode(b).decode()


def _unb64(s: str | None) -> bytes | None:
    return None if s is None else base64.b64decode(s)


def available() -> str | None:
    """Why kafkajs can't run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "kafkajs").is_dir():
        return "kafkajs is not installed: run `npm install` in interop/node (scripts/test does)"
    return None


def call(op: str, bootstrap: str, timeout_s: float = 90.0, **args: Any) -> dict[str, Any]:
    request = json.dumps({"op": op, "bootstrap": bootstrap, **args}).encode()
    proc = subprocess.run(
        [NODE, str(SCRIPT)], input=request, capture_output=True, cwd=NODE_DIR, timeout=timeout_s, check=False
    )
    try:
        result: dict[str, Any] = json.loads(proc.stdout or b"{}")
    except ValueError:
        result = {"error": proc.stdout.decode(errors="replace")[-500:]}
    if proc.returncode != 0 or "error" in result:
        raise RuntimeError(f"kafkajs {op}: {result.get('error')} {proc.stderr.decode(errors='replace')[-500:]}".strip())
    return result


class KafkajsClient:
    name = "kafkajs"
    codecs = ("none", "gzip", "snappy", "lz4")
    has_admin = True
    sets_timestamps = True
    none_offset_is_high = True  # fetchTopicOffsetsByTimestamp answers "none" with the high watermark
    not_applicable: ClassVar[dict[str, str]] = {
        "codec-zstd": "kafkajs has no zstd codec that builds on Node 20 (@kafkajs/zstd is native)"
    }

    def create_topic(self, bootstrap: str, topic: str, partitions: int, configs: dict[str, str] | None = None) -> None:
        res = call("create_topic", bootstrap, topic=topic, partitions=partitions, configs=configs or {})
        assert res["created"] is True, f"createTopics returned {res['created']!r}"

    def list_topics(self, bootstrap: str) -> dict[str, int]:
        return {k: int(v) for k, v in call("list_topics", bootstrap)["topics"].items()}

    def trigger_auto_create(self, bootstrap: str, topic: str) -> None:
        # kafkajs's clusters ask for auto-creation in their Metadata requests
        # (allowAutoTopicCreation defaults to true): admin.fetchTopicMetadata.
        call("auto_create", bootstrap, topic=topic)

    def produce(
        self,
        bootstrap: str,
        topic: str,
        records: list[Out],
        *,
        codec: str = "none",
        max_message_bytes: int | None = None,
    ) -> None:
        payload = [
            {
                "key": _b64(r.key),
                "value": _b64(r.value),
                "headers": [[k, _b64(v)] for k, v in r.headers],
                "partition": r.partition,
                "timestamp": r.timestamp_ms,
            }
            for r in records
        ]
        # kafkajs puts a send()'s messages for one partition in one batch, and
        # the broker's limit is per batch: large messages go one per send().
        chunk = 1 if max_message_bytes else 2000
        res = call("produce", bootstrap, topic=topic, codec=codec, records=payload, chunk=chunk)
        errors = [b for b in res["batches"] if b[2] != 0]
        assert not errors, f"produce errors: {errors[:5]}"

    def produce_with_defaults(self, bootstrap: str, topic: str, values: list[bytes]) -> None:
        call("produce_defaults", bootstrap, topic=topic, values=[_b64(v) for v in values])

    def consume(
        self,
        bootstrap: str,
        topic: str,
        starts: dict[int, int],
        count: int,
        *,
        timeout_s: float = 30.0,
        max_message_bytes: int | None = None,
    ) -> list[In]:
        res = call(
            "consume",
            bootstrap,
            timeout_s=timeout_s + 30,
            topic=topic,
            starts={str(p): o for p, o in starts.items()},
            count=count,
            timeout_ms=int(timeout_s * 1000),
            max_bytes=(max_message_bytes or 1_048_576) * 2,
        )
        return [
            In(
                m["partition"],
                m["offset"],
                _unb64(m["key"]),
                _unb64(m["value"]),
                tuple((k, _unb64(v) or b"") for k, v in m["headers"]),
                m["timestamp"],
            )
            for m in res["records"]
        ]

    def group_consume(self, bootstrap: str, topic: str, group: str, count: int, timeout_s: float = 40.0) -> list[In]:
        res = call(
            "group_consume",
            bootstrap,
            timeout_s=timeout_s + 30,
            topic=topic,
            group=group,
            count=count,
            timeout_ms=int(timeout_s * 1000),
        )
        return [In(m["partition"], m["offset"], None, _unb64(m["value"]), (), 0) for m in res["records"]]

    def watermarks(self, bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
        res = call("watermarks", bootstrap, topic=topic, partition=partition)
        return int(res["low"]), int(res["high"])

    def offset_for_time(self, bootstrap: str, topic: str, partition: int, timestamp_ms: int) -> int:
        return int(
            call("offset_for_time", bootstrap, topic=topic, partition=partition, timestamp=timestamp_ms)["offset"]
        )

    def describe_topic_configs(self, bootstrap: str, topic: str) -> dict[str, str]:
        return dict(call("describe_configs", bootstrap, topic=topic)["configs"])

    def alter_topic_configs(self, bootstrap: str, topic: str, configs: dict[str, str]) -> None:
        call("alter_configs", bootstrap, topic=topic, configs=configs)
