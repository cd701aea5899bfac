"""kcat adapter: the kcat command line (librdkafka inside), driven by subprocess.

kcat has no admin API (topics are created by auto-creation or, for the
scenarios' fixtures, by confluent-kafka's admin client), cannot set a record's
timestamp, and works on text lines: keys and values here are printable
ASCII without tabs or newlines."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from typing import ClassVar

from interop._common import In, Out

KCAT = shutil.which("kcat") or shutil.which("kafkacat") or "kcat"


def kcat_version() -> str | None:
    try:
        out = subprocess.run([KCAT, "-V"], capture_output=True, text=True, timeout=10, check=False).stdout
    except OSError:
        return None
    match = re.search(r"Version (\S+)", out)
    return match.group(1) if match else None


def _run(bootstrap: str, args: list[str], stdin: bytes | None = None, timeout_s: float = 60.0) -> str:
    proc = subprocess.run(
        [KCAT, "-b", bootstrap, *args], input=stdin, capture_output=True, timeout=timeout_s, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"kcat {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-800:]}"
        )
    return proc.stdout.decode()


def _check_text(b: bytes | None) -> None:
    if b is not None:
        assert b"\n" not in b and b"\t" not in b, "kcat adapter takes single-line text"


class KcatClient:
    name = "kcat"
    codecs = ("none", "gzip", "snappy", "lz4", "zstd")
    has_admin = False
    sets_timestamps = False
    not_applicable: ClassVar[dict[str, str]] = {"configs": "kcat has no config API (DescribeConfigs/AlterConfigs)"}

    def create_topic(self, bootstrap: str, topic: str, partitions: int, configs: dict[str, str] | None = None) -> None:
        raise NotImplementedError("kcat cannot create topics explicitly")

    def list_topics(self, bootstrap: str) -> dict[str, int]:
        md = json.loads(_run(bootstrap, ["-L", "-J", "-m", "10"]))
        return {t["topic"]: len(t["partitions"]) for t in md["topics"] if not t.get("error")}

    def trigger_auto_create(self, bootstrap: str, topic: str) -> None:
        # A producer's metadata request for the topic asks the broker to create it.
        _run(bootstrap, ["-L", "-J", "-t", topic, "-m", "10", "-X", "allow.auto.create.topics=true"])

    def produce(
        self,
        bootstrap: str,
        topic: str,
        records: list[Out],
        *,
        codec: str = "none",
        max_message_bytes: int | None = None,
    ) -> None:
        # -H applies to a whole invocation: one kcat run per run of records
        # sharing headers and partition. With -K, a line without the key
        # delimiter is a record with a NULL key.
        def group(r: Out) -> tuple[object, ...]:
            return (r.headers, r.partition)

        for (headers, partition), chunk in itertools.groupby(records, key=group):
            args = ["-P", "-t", topic, "-Z", "-X", "acks=all", "-X", "enable.idempotence=false"]
            if codec != "none":
                args += ["-z", codec]
            if max_message_bytes:
                args += ["-X", f"message.max.bytes={max_message_bytes}"]
            args += ["-K", "\t"]
            if partition is not None:
                args += ["-p", str(partition)]
            for name, value in headers:  # type: ignore[union-attr]
                args += ["-H", f"{name}={value.decode()}"]
            lines = []
            for r in chunk:
                _check_text(r.key)
                _check_text(r.value)
                value = r.value or b""  # -Z: an empty value is sent as NULL
                lines.append(value if r.key is None else r.key + b"\t" + value)
            _run(bootstrap, args, b"\n".join(lines) + b"\n")

    def produce_with_defaults(self, bootstrap: str, topic: str, values: list[bytes]) -> None:
        for v in values:
            _check_text(v)
        _run(bootstrap, ["-P", "-t", topic], b"\n".join(values) + b"\n")

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
        extra: list[str] = []
        if max_message_bytes:
            extra += [
                "-X", f"fetch.message.max.bytes={max_message_bytes * 2}",
                "-X", f"fetch.max.bytes={max_message_bytes * 4}",
                "-X", f"receive.message.max.bytes={max_message_bytes * 4 + 1_000_000}",
            ]  # fmt: skip
        out: list[In] = []
        for partition, start in starts.items():
            text = _run(
                bootstrap,
                ["-C", "-t", topic, "-p", str(partition), "-o", str(start), "-e", "-J", "-c", str(count), *extra],
                timeout_s=timeout_s,
            )
            for line in text.splitlines():
                m = json.loads(line)
                flat = m.get("headers") or []
                headers = tuple((flat[i], (flat[i + 1] or "").encode()) for i in range(0, len(flat), 2))
                key = None if m["key"] is None else m["key"].encode()
                value = None if m["payload"] is None else m["payload"].encode()
                out.append(In(m["partition"], m["offset"], key, value, headers, m["ts"]))
        return out

    def group_consume(self, bootstrap: str, topic: str, group: str, count: int, timeout_s: float = 40.0) -> list[In]:
        # -G: balanced consumer group; offsets are auto-committed, and on exit
        # after -c COUNT messages kcat commits what it consumed.
        text = _run(
            bootstrap,
            ["-G", group, "-J", "-c", str(count), "-X", "auto.offset.reset=earliest", topic],
            timeout_s=timeout_s,
        )
        out = []
        for line in text.splitlines():
            m = json.loads(line)
            value = None if m["payload"] is None else m["payload"].encode()
            out.append(In(m["partition"], m["offset"], None, value, (), m["ts"]))
        return out

    def _query(self, bootstrap: str, topic: str, partition: int, timestamp: int) -> int:
        res = json.loads(_run(bootstrap, ["-Q", "-J", "-t", f"{topic}:{partition}:{timestamp}"]))
        return int(res[topic][str(partition)]["offset"])

    def watermarks(self, bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
        # ListOffsets with the special timestamps -2 (earliest) and -1 (latest)
        return self._query(bootstrap, topic, partition, -2), self._query(bootstrap, topic, partition, -1)

    def offset_for_time(self, bootstrap: str, topic: str, partition: int, timestamp_ms: int) -> int:
        return self._query(bootstrap, topic, partition, timestamp_ms)

    def describe_topic_configs(self, bootstrap: str, topic: str) -> dict[str, str]:
        raise NotImplementedError

    def alter_topic_configs(self, bootstrap: str, topic: str, configs: dict[str, str]) -> None:
        raise NotImplementedError
