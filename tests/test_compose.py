"""docker-compose.yml's kafkapy services: each health check asks /readyz on the port the
service's own `--metrics-listen` serves (docs/monitoring.md), never a bare TCP connect."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_every_kafkapy_service_checks_readyz_on_its_metrics_listener() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    brokers = {name: s for name, s in services.items() if s.get("image") == "kafkapy:local"}
    assert {"us", "eu", "broker1", "broker2", "broker3"} <= set(brokers)
    for name, service in brokers.items():
        command = service["command"]
        assert command[0] == "broker", name
        port = command[command.index("--metrics-listen") + 1].rsplit(":", 1)[1]
        check = " ".join(service["healthcheck"]["test"])
        assert re.search(rf"http://127\.0\.0\.1:{port}/readyz", check), (name, check)
