"""Listener security protocols: listener.security.protocol.map resolved as Kafka does,
and a broker never serves a listener in a protocol other than the one configured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kafkapy.config import BrokerConfig, ConfigError


def config(**pairs: str) -> BrokerConfig:
    return BrokerConfig.from_pairs([(k.replace("_", "."), v) for k, v in pairs.items()])


def test_default_map_names_the_four_protocols() -> None:
    cfg = config(listeners="PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0")
    assert cfg.listener_security_protocol("PLAINTEXT") == "PLAINTEXT"
    assert cfg.listener_security_protocol("ssl") == "SSL"
    assert cfg.security_protocol_map()["SASL_SSL"] == "SASL_SSL"


def test_named_listeners_take_their_protocol_from_the_map() -> None:
    cfg = BrokerConfig.from_pairs(
        [
            ("listeners", "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0"),
            ("listener.security.protocol.map", "INTERNAL:SASL_PLAINTEXT,EXTERNAL:SSL"),
        ]
    )
    assert cfg.listener_security_protocol("INTERNAL") == "SASL_PLAINTEXT"
    assert cfg.listener_security_protocol("EXTERNAL") == "SSL"


def test_a_listener_missing_from_the_map_is_refused_with_kafkas_message() -> None:
    with pytest.raises(ConfigError, match="No security protocol defined for listener INTERNAL"):
        config(listeners="INTERNAL://127.0.0.1:0")


def test_an_unknown_protocol_in_the_map_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown security protocol 'TLS'"):
        BrokerConfig.from_pairs([("listeners", "A://127.0.0.1:0"), ("listener.security.protocol.map", "A:TLS")])


def test_broker_refuses_to_start_rather_than_serve_another_protocol(tmp_path: Path) -> None:
    """A listener whose protocol is not served stops start-up with one error line and exit 1."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kafkapy",
            "broker",
            "--data-dir",
            str(tmp_path / "data"),
            "--log-format",
            "json",
            "--set",
            "listeners=PLAINTEXT://127.0.0.1:0,OUTSIDE://127.0.0.1:0",
            "--set",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,OUTSIDE:SASL_SSL",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    output = proc.stdout + proc.stderr
    assert "broker_start_failed" in output
    assert "OUTSIDE" in output and "SASL_SSL" in output
    assert "broker_ready" not in output


def test_controller_listeners_are_not_bound(tmp_path: Path) -> None:
    """A Kafka combined-mode file names a CONTROLLER listener in controller.listener.names: kafkapy has
    no KRaft controller, so it binds no socket there (it would serve every API unauthenticated)."""
    import json
    import socket

    from interop._common import start_broker

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        controller_port = s.getsockname()[1]
    cfg = BrokerConfig.from_pairs(
        [
            ("listeners", f"PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{controller_port}"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"),
            ("controller.listener.names", "CONTROLLER"),
        ]
    )
    assert [x.name for x in cfg.listener_list] == ["PLAINTEXT"]
    assert [x.name for x in cfg.advertised_listener_list] == ["PLAINTEXT"]
    with pytest.raises(ConfigError, match=r"controller\.listener\.names"):
        BrokerConfig.from_pairs(
            [
                ("listeners", "CONTROLLER://127.0.0.1:0"),
                ("listener.security.protocol.map", "CONTROLLER:PLAINTEXT"),
                ("controller.listener.names", "CONTROLLER"),
            ]
        )

    broker = start_broker(
        tmp_path / "data",
        {
            "listeners": f"PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{controller_port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "process.roles": "broker,controller",
        },
    )
    try:
        events = [json.loads(line) for line in broker.log_path.read_text().splitlines() if line.startswith("{")]
        skipped = [e for e in events if e.get("event") == "controller_listener_not_bound"]
        assert [e["listeners"] for e in skipped] == ["CONTROLLER"]
        with socket.socket() as c, pytest.raises(ConnectionRefusedError):
            c.connect(("127.0.0.1", controller_port))
        with socket.create_connection((broker.host, broker.port), timeout=5):
            pass
    finally:
        broker.stop()
