"""The Prometheus alert rules in deploy/prometheus pass `promtool check rules` and their unit tests
(`promtool test rules`), every alert is tested both firing and not firing, and the unit tests catch
a rule that is broken (one that never fires, one that fires without waiting for its `for:`).

promtool comes from Debian's `prometheus` package (scripts/test installs it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "kafkapy-alerts.yml"
UNIT_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))


def promtool(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool not found: apt-get install prometheus (scripts/test does)"
    return subprocess.run([exe, *map(str, args)], check=False, cwd=cwd, capture_output=True, text=True, timeout=60)


def alert_rules(rules: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def load_rules() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return data


ALERTS = [rule["alert"] for rule in alert_rules(load_rules())]


def test_rules_file_is_valid() -> None:
    result = promtool("check", "rules", RULES, cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_rules_unit_tests_pass() -> None:
    assert UNIT_TESTS
    result = promtool("test", "rules", *UNIT_TESTS, cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS)


def test_the_issue_alerts_exist_with_severity_and_annotations() -> None:
    expected = {
        "KafkaBrokerDown",
        "KafkaUnderReplicatedPartitions",
        "KafkaUnderMinIsrPartitions",
        "KafkaOfflinePartitions",
        "KafkaActiveControllerCountNotOne",
        "KafkaConsumerGroupLagGrowing",
        "KafkaProduceLatencyHigh",
        "KafkaLogDirDiskUsageHigh",
    }
    assert expected <= set(ALERTS)
    for rule in alert_rules(load_rules()):
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert set(ALERTS) - firing == set(), "alerts never expected to fire"
    assert set(ALERTS) - silent == set(), "alerts never expected to stay silent"


def broken_copy(tmp_path: Path, alert: str, change: dict[str, str]) -> Path:
    """A copy of deploy/prometheus (rules and unit tests) with one alert rule changed."""
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS_DIR, copy)
    rules = load_rules()
    [rule] = [rule for rule in alert_rules(rules) if rule["alert"] == alert]
    rule.update(change)
    (copy / RULES.name).write_text(yaml.safe_dump(rules, sort_keys=False))
    return copy


@pytest.mark.parametrize("alert", ALERTS)
@pytest.mark.parametrize(
    "change",
    [{"expr": "vector(1) > 2"}, {"for": "0s"}],
    ids=["never-fires", "no-for"],
)
def test_unit_tests_fail_for_a_broken_rule(tmp_path: Path, alert: str, change: dict[str, str]) -> None:
    copy = broken_copy(tmp_path, alert, change)
    assert promtool("check", "rules", RULES.name, cwd=copy).returncode == 0
    result = promtool("test", "rules", *sorted((copy / "tests").glob("*.yml")), cwd=copy)
    assert result.returncode != 0, f"{alert} broken by {change} still passes:\n{result.stdout}"
    assert alert in result.stdout + result.stderr
