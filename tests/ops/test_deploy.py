"""The monitoring files under deploy/ and docker-compose.yml: promtool's checks and unit tests of
the alert rules, and the compose file read as Compose would (no Docker engine here)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_DIR
from tests.ops import monitoring
from tests.ops.monitoring import (
    ALERT_RULES,
    DASHBOARD,
    DEPLOY,
    PROMETHEUS_CONFIG,
    PROMETHEUS_DIR,
    alert_rule,
    duration_seconds,
    load_yaml,
    tool,
)

COMPOSE = REPO_DIR / "docker-compose.yml"
ALERTS = {
    "BrokerAuthorityDown",
    "BrokerPullQueueStalled",
    "BrokerExchangeErrorRateHigh",
    "BrokerCallbackOutboxStalled",
    "BrokerSignersFailing",
    "BrokerLogIntegratorBehind",
    "BrokerCheckpointStale",
    "BrokerMetricsDown",
}


def test_without_prometheus_the_tests_fail_where_it_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitoring.shutil, "which", lambda *args, **kwargs: None)
    monkeypatch.delenv("BROKER_TEST_REQUIRE_PROMETHEUS", raising=False)
    with pytest.raises(pytest.skip.Exception):
        tool("promtool")
    monkeypatch.setenv("BROKER_TEST_REQUIRE_PROMETHEUS", "1")
    with pytest.raises(pytest.fail.Exception, match="BROKER_TEST_REQUIRE_PROMETHEUS=1"):
        tool("prometheus")


def promtool(*args: str) -> str:
    done = subprocess.run([tool("promtool"), *args], capture_output=True, text=True, timeout=120, cwd=REPO_DIR)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_checks_the_alert_rules() -> None:
    assert f"SUCCESS: {len(ALERTS)} rules found" in promtool("check", "rules", str(ALERT_RULES))


def test_promtool_unit_tests_of_the_alert_rules_pass() -> None:
    tests = sorted(str(path) for path in (PROMETHEUS_DIR / "tests").glob("*.yml"))
    assert tests
    assert "SUCCESS" in promtool("test", "rules", *tests)


def test_every_alert_is_unit_tested_firing_and_has_a_production_for() -> None:
    tested: set[str] = set()
    for path in (PROMETHEUS_DIR / "tests").glob("*.yml"):
        for case in load_yaml(path)["tests"]:
            tested |= {check["alertname"] for check in case["alert_rule_test"] if check["exp_alerts"]}
    assert tested == ALERTS
    for name in ALERTS:
        rule = alert_rule(name)
        assert duration_seconds(rule["for"]) >= 60, f"{name}: a `for` under a minute pages on blips"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def _service(name: str) -> dict[str, Any]:
    return dict(load_yaml(COMPOSE)["services"][name])


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path → host path of the service's bind mounts (short syntax, as the file uses)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        found[target] = source
    return found


def test_compose_has_prometheus_and_grafana_with_healthchecks_and_the_deploy_files() -> None:
    compose = load_yaml(COMPOSE)
    services = compose["services"]
    assert {"postgres", "broker", "prometheus", "grafana"} <= services.keys()
    for name in services:
        for dependency in services[name].get("depends_on", {}):
            assert dependency in services, f"{name} depends on an unknown service {dependency}"

    prometheus = _service("prometheus")
    assert prometheus["image"].startswith("prom/prometheus:v") and prometheus["image"] != "prom/prometheus:latest"
    assert prometheus["depends_on"]["broker"]["condition"] == "service_healthy"
    assert "/-/ready" in " ".join(prometheus["healthcheck"]["test"])
    mounts = _mounts(prometheus)
    config = load_yaml(PROMETHEUS_CONFIG)
    assert Path(REPO_DIR / mounts["/etc/prometheus/prometheus.yml"]).resolve() == PROMETHEUS_CONFIG
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert Path(REPO_DIR / mounts["/etc/prometheus/alerts.yml"]).resolve() == ALERT_RULES
    # The token Prometheus sends is the compose secret, mounted where the scrape config reads it.
    [job] = config["scrape_configs"]
    assert job["job_name"] == "once-only-broker" and job["static_configs"] == [{"targets": ["broker:8000"]}]
    assert job["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
    assert "metrics_token" in prometheus["secrets"] and "metrics_token" in compose["secrets"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]

    grafana = _service("grafana")
    assert grafana["image"].startswith("grafana/grafana:") and not grafana["image"].endswith(":latest")
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert "/api/health" in " ".join(grafana["healthcheck"]["test"])
    mounts = _mounts(grafana)
    provisioning = Path(REPO_DIR / mounts["/etc/grafana/provisioning"]).resolve()
    assert provisioning == DEPLOY / "grafana" / "provisioning"
    [provider] = load_yaml(provisioning / "dashboards" / "broker.yml")["providers"]
    dashboards = Path(REPO_DIR / mounts[provider["options"]["path"]]).resolve()
    assert DASHBOARD.parent == dashboards, "the provider reads the directory the dashboard is mounted into"
    [datasource] = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["url"] == "http://prometheus:9090" and datasource["type"] == "prometheus"
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert "grafana_admin_password" in grafana["secrets"] and "grafana_admin_password" in compose["secrets"]
    # Monitoring answers on loopback only, like the broker.
    for service in (prometheus, grafana):
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    for volume in ("prometheus", "grafana"):
        assert volume in compose["volumes"]


def test_the_dashboard_is_grafana_json_on_the_provisioned_data_source() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    [datasource] = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert panel["targets"] and all(target["expr"].strip() for target in panel["targets"]), panel["title"]
        assert panel["gridPos"]["x"] >= 0 and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


@pytest.mark.parametrize("path", sorted(p.relative_to(DEPLOY) for p in DEPLOY.rglob("*.yml")), ids=str)
def test_every_yaml_file_under_deploy_parses(path: Path) -> None:
    assert load_yaml(DEPLOY / path)
