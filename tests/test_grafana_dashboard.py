"""The Grafana dashboard (deploy/grafana/kafkapy.json), its provisioning and the compose services
that run it: every panel queries Prometheus with PromQL that promtool accepts, using only the
metric names deploy/README.md lists (the names the exporter must serve), and the files that
docker-compose.yml mounts exist and agree with each other."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "kafkapy.json"

# PromQL words that are not metric names
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "topk", "bottomk", "rate", "irate", "increase", "deriv", "delta",
    "vector", "absent", "by", "without", "and", "or", "unless", "on", "ignoring", "group_left", "group_right",
    "bool", "offset",
}  # fmt: skip


def documented_metrics() -> set[str]:
    text = (DEPLOY / "README.md").read_text()
    block = re.search(r"<!-- metrics:start -->\n(.*?)<!-- metrics:end -->", text, re.S)
    assert block, "deploy/README.md lacks the <!-- metrics:start --> table"
    return set(re.findall(r"^\| `([a-z_]+)` \|", block.group(1), re.M))


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label matchers, grouping labels, strings,
    ranges and function names left out)."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr))
    return {n for n in names if n not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhd]?", n)}


def panels() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def exprs() -> list[str]:
    return [t["expr"] for p in panels() for t in p.get("targets", [])]


def as_query(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced as Grafana would for one job, all brokers."""
    return expr.replace("$__rate_interval", "1m").replace("$job", "kafkapy").replace("$instance", ".*")


def test_metric_names_of_an_expression() -> None:
    assert metric_names(
        'sum by (consumergroup, topic) (max by (job, partition) (kafka_consumergroup_lag{job="$job", a=~"x.*"}))'
    ) == {"kafka_consumergroup_lag"}
    assert metric_names("rate(process_cpu_seconds_total[5m]) / on (instance) up > 0.5 or vector(0)") == {
        "process_cpu_seconds_total",
        "up",
    }


def test_every_panel_queries_prometheus_with_documented_metrics() -> None:
    documented = documented_metrics()
    graphs = [p for p in panels() if p["type"] != "row"]
    assert len(graphs) >= 15
    for panel in graphs:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, f"{panel['title']!r}: no metric in {target['expr']!r}"
            assert names <= documented, f"{panel['title']!r} uses undocumented {names - documented}"


def test_rules_use_only_documented_metrics_and_every_documented_metric_is_used() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "kafkapy-alerts.yml").read_text())
    rule_metrics = {n for g in rules["groups"] for r in g["rules"] for n in metric_names(r["expr"])}
    dashboard_metrics = {n for e in exprs() for n in metric_names(e)}
    documented = documented_metrics()
    assert rule_metrics <= documented, rule_metrics - documented
    assert rule_metrics | dashboard_metrics == documented


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool has no query parser of its own: each query goes into a recording rule it checks."""
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"panel_query_{i}", "expr": as_query(e)} for i, e in enumerate(exprs())]}]}  # fmt: skip
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    exe = shutil.which("promtool")
    assert exe, "promtool not found: apt-get install prometheus (scripts/test does)"
    result = subprocess.run([exe, "check", "rules", str(path)], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # and a broken query is refused, so the check above can fail
    path.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [{"record": "y", "expr": "sum by (a (up)"}]}]}))
    result = subprocess.run([exe, "check", "rules", str(path)], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


def test_dashboard_layout_and_variables() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "kafkapy"
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: set[tuple[int, int]] = set()
    for panel in panels():
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"datasource", "job", "instance"}
    assert variables["job"]["current"]["value"] == "kafkapy"
    used = {v for e in exprs() for v in re.findall(r"\$(\w+)", e)}
    assert used <= {"job", "instance", "__rate_interval"}


def test_provisioning_and_compose_agree() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    prometheus_yml = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    [job] = prometheus_yml["scrape_configs"]
    assert job["job_name"] == "kafkapy"
    # every scraped broker is a compose service serving its metrics on the scraped port
    for target in job["static_configs"][0]["targets"]:
        host, port = target.split(":")
        command = services[host]["command"]
        assert command[command.index("--metrics-listen") + 1] == f"0.0.0.0:{port}", host
    # the mounted host paths exist, and the dashboard lands where the provider reads
    mounts = {m.split(":")[1]: m.split(":")[0] for s in ("prometheus", "grafana") for m in services[s]["volumes"]}
    for host_path in mounts.values():
        if host_path.startswith("./"):
            assert (ROOT / host_path).exists(), host_path
    assert mounts["/etc/prometheus"] == "./deploy/prometheus"
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "kafkapy.yml").read_text())
    dashboards_dir = provider["providers"][0]["options"]["path"]
    assert mounts[f"{dashboards_dir}/kafkapy.json"] == "./deploy/grafana/kafkapy.json"
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [source] = datasource["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    variables = {v["name"]: v for v in json.loads(DASHBOARD.read_text())["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] == source["uid"]


def test_prometheus_config_is_valid() -> None:
    exe = shutil.which("promtool")
    assert exe, "promtool not found: apt-get install prometheus (scripts/test does)"
    config = DEPLOY / "prometheus" / "prometheus.yml"
    result = subprocess.run(
        [exe, "check", "config", str(config)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
