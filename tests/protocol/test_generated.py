"""The generated codecs: reproducible output, every message and version round-trips."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from kafkapy.protocol.api import APIS, ApiKey, api_spec
from kafkapy.protocol.errors import DecodeError, UnsupportedVersionError
from kafkapy.protocol.messages import MODULES
from kafkapy.protocol.primitives import Message

SPEC = Path(__file__).resolve().parents[3] / "shared" / "kafka-message-spec"


def message_classes() -> list[type[Message]]:
    out = []
    for name in MODULES:
        mod = importlib.import_module(f"kafkapy.protocol.messages.{name}")
        for obj in vars(mod).values():
            if isinstance(obj, type) and obj.__module__ == mod.__name__ and "_DECODERS" in vars(obj):
                out.append(obj)
    return out


@pytest.mark.skipif(not SPEC.is_dir(), reason="Kafka's message definitions are not beside the repository")
def test_generator_reproduces_committed_modules() -> None:
    from protocol.generate import main

    assert main(["--spec", str(SPEC), "--check"]) == 0


def test_every_api_has_both_directions() -> None:
    assert len(APIS) == 95  # 93 and 94: Kafka 4.4.0 messages from protocol/new_messages.py
    for spec in APIS:
        assert spec.max_version == spec.request_type().MAX_VERSION
        assert spec.min_version >= spec.response_type().MIN_VERSION


@pytest.mark.parametrize("cls", message_classes(), ids=lambda c: c.NAME)
def test_default_instance_round_trips_in_every_version(cls: type[Message]) -> None:
    for version in range(cls.MIN_VERSION, cls.MAX_VERSION + 1):
        obj = cls()
        data = obj.encode(version)
        assert cls.decode(data, version) == obj
        # Every proper prefix is malformed; only the typed error may come out.
        for cut in range(len(data)):
            try:
                cls.decode(data[:cut], version)
            except DecodeError:
                pass


def test_version_out_of_range() -> None:
    cls = api_spec(ApiKey.PRODUCE).request_type()
    with pytest.raises(UnsupportedVersionError):
        cls().encode(cls.MAX_VERSION + 1)
    with pytest.raises(UnsupportedVersionError):
        cls.decode(b"", -1)


def test_unknown_api_key() -> None:
    with pytest.raises(UnsupportedVersionError):
        api_spec(9999)
