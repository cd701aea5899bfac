"""Golden frames captured from real clients (tests/protocol/golden/capture.py).

Every captured request decodes and re-encodes byte for byte (header and
body); Produce records come back as views of the frame; and each client's
record batches, for every compression codec it used, validate and hold the
messages the client was told to send.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from kafkapy.protocol.api import ApiKey
from kafkapy.protocol.frames import decode_request

GOLDEN = Path(__file__).resolve().parent / "golden"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

FRAMES = [(client, entry) for client, info in MANIFEST["clients"].items() for entry in info["frames"]]


def read_frame(client: str, entry: dict[str, Any]) -> bytes:
    return (GOLDEN / client / entry["file"]).read_bytes()


def test_manifest_lists_every_fixture() -> None:
    on_disk = {(p.parent.name, p.name) for p in GOLDEN.glob("*/*.bin")}
    listed = {(client, e["file"]) for client, e in FRAMES}
    assert on_disk == listed
    assert set(MANIFEST["clients"]) == {"confluent", "kafka-python", "aiokafka", "kcat", "kafkajs"}


@pytest.mark.parametrize(("client", "entry"), FRAMES, ids=[f"{c}/{e['file']}" for c, e in FRAMES])
def test_frame_round_trips(client: str, entry: dict[str, Any]) -> None:
    frame = read_frame(client, entry)
    assert hashlib.sha256(frame).hexdigest() == entry["sha256"]
    req = decode_request(frame)
    assert (req.api.api_key, req.version) == (entry["api_key"], entry["version"])
    out: list[Any] = []
    req.header.encode_into(out, req.api.request_header_version(req.version))
    req.body.encode_into(out, req.version)
    assert b"".join(out) == frame


def produce_records(client: str) -> list[tuple[str, int, memoryview, bytes]]:
    """(topic, partition, records view, frame) of every Produce frame of `client`."""
    out = []
    for entry in MANIFEST["clients"][client]["frames"]:
        if entry["api_key"] != ApiKey.PRODUCE:
            continue
        frame = read_frame(client, entry)
        body: Any = decode_request(frame).body
        for t in body.topic_data:
            for p in t.partition_data:
                out.append((t.name, p.index, p.records, frame))
    return out


CLIENTS = sorted(MANIFEST["clients"])


@pytest.mark.parametrize("client", CLIENTS)
def test_produce_records_are_views_of_the_frame(client: str) -> None:
    found = produce_records(client)
    assert found, f"{client} sent no Produce request"
    for _topic, _partition, records, frame in found:
        assert isinstance(records, memoryview)
        assert records.obj is frame


@pytest.mark.parametrize("client", CLIENTS)
def test_record_batches_hold_what_the_client_sent(client: str) -> None:
    records_mod = pytest.importorskip("kafkapy.protocol.records")
    produced = MANIFEST["clients"][client]["produced"]
    got: dict[str, list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]]] = defaultdict(list)
    codecs: dict[str, set[int]] = defaultdict(set)
    for topic, _partition, records, _frame in produce_records(client):
        headers = records_mod.validate_records(records)
        assert headers
        for batch, rec in records_mod.iter_all_records(records):
            codecs[topic].add(batch.compression)
            got[topic].append((rec.key, rec.value, [(k, None if v is None else bytes(v)) for k, v in rec.headers]))
    assert set(got) == set(produced)
    for topic, spec in produced.items():
        assert codecs[topic] == {CODEC_IDS[spec["codec"]]}, f"{client} {topic}"
        want = [
            (
                None if m["key"] is None else bytes.fromhex(m["key"]),
                bytes.fromhex(m["value"]),
                [(k, bytes.fromhex(v)) for k, v in m["headers"]],
            )
            for m in spec["messages"]
        ]
        assert got[topic] == want, f"{client} {topic}"
