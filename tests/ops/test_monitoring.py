"""Monitoring with real parts: a real broker with reference authorities (push and pull) on
loopback, its /metrics as Prometheus reads it, the shipped dashboard and alert rules checked
against what it exports, and a real Prometheus (Debian's) that fires BrokerAuthorityDown when an
authority process is stopped — with deploy/prometheus/alerts.yml as shipped, `for` unchanged.

SQLite only: what is measured here is the wiring; the gauges' queries run on both databases in
tests/ops/test_metrics.py.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.adapters.conftest import AUTHORITY_BIN, Remote, _fresh_seeded
from tests.conftest import start_broker, stop_process
from tests.ops.monitoring import (
    PROMETHEUS_OWN,
    Prometheus,
    alert_rule,
    dashboard_expressions,
    duration_seconds,
    label_matchers,
    render_config,
    rule_expressions,
    series_names,
    tool,
    wait_for,
)
from tests.specimen import ERIKA_IDNR, GEBURT, GEWERBE, MELDE, request_body

PUSH = "melderegister-13004"
PULL = "standesamt-13004"
# The authority the alert test stops: a push authority of its own, so the others stay up.
STOPPED = "melderegister-130715001"
ENV = {
    "BROKER_SYNC_TIMEOUT_SECONDS": "3",
    "BROKER_TASK_LEASE_SECONDS": "2",
    "BROKER_BACKGROUND_INTERVAL_SECONDS": "0.3",
    # The breaker as in production (5 failures, 30 s open): the alert must work with it.
}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Monitored:
    remote: Remote
    metrics_token: str
    push_url: str

    def scrape(self) -> str:
        with self.remote.broker.client(self.metrics_token) as client:
            answer = client.get("/metrics")
        assert answer.status_code == 200, answer.text
        return answer.text


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def label_sets(text: str, name: str, *labels: str) -> set[tuple[str, ...]]:
    return {tuple(found[label] for label in labels) for n, found, _ in samples(text) if n == name}


def value(text: str, name: str, **labels: str) -> float:
    [found] = [v for n, found_labels, v in samples(text) if n == name and found_labels == labels]
    return found


@pytest.fixture(scope="module")
def monitored(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    directory = tmp_path_factory.mktemp("monitored")
    authority_db = f"sqlite:///{directory / 'registers.db'}"
    subprocess.run([AUTHORITY_BIN, "init", "--database", authority_db], check=True, capture_output=True, timeout=300)
    for url in _fresh_seeded("sqlite", request, directory):
        process, broker = start_broker(url, directory, ENV)
        remote = Remote(broker, process, directory, authority_db, broker.add_client("admin"), "", "")
        remote.requester_name = f"portal-{uuid.uuid4().hex[:8]}"
        remote.requester = remote.cli(
            "clients", "add", remote.requester_name, "--role", "requester",
            "--allow", MELDE, "--allow", GEBURT, "--allow", GEWERBE,
        ).strip().splitlines()[-1]  # fmt: skip
        try:
            push_url = remote.push_authority(PUSH, timeout=1.5)
            remote.pull_authority(PULL)
            yield Monitored(remote, broker.add_client("metrics"), push_url)
        finally:
            for child in remote.processes:
                stop_process(child)
            stop_process(process)


@pytest.fixture(scope="module")
def traffic(monitored: Monitored) -> str:
    """Exchanges of every kind, then /metrics once the log has caught up with them."""
    remote = monitored.remote
    for _ in range(2):
        delivered = remote.request(request_body(MELDE))
        assert delivered.status_code == 200 and delivered.json()["state"] == "delivered", delivered.text
    httpx.put(f"{monitored.push_url}/_faults", json={"fault": "server_error", "delay_seconds": 0}).raise_for_status()
    try:
        failed = remote.request(request_body(MELDE))
    finally:
        httpx.put(f"{monitored.push_url}/_faults", json={"fault": "none", "delay_seconds": 0}).raise_for_status()
    assert failed.status_code == 502 and failed.json()["reason"] == "authority.server_error", failed.text
    refused = remote.request(request_body(MELDE, explicit_request=False))
    assert refused.status_code == 422 and refused.json()["reason"] == "policy.basis_missing", refused.text
    pulled = remote.request(request_body(GEBURT, subject={"idnr": ERIKA_IDNR}))
    assert pulled.status_code in (200, 202), pulled.text
    assert remote.await_end(pulled.json()["id"])["state"] == "delivered"

    def settled() -> str | None:
        text = monitored.scrape()
        waiting = value(text, "broker_log_queue_depth") + value(text, "broker_pull_queue_depth", authority=PULL)
        return text if waiting == 0 and value(text, "broker_log_tree_size") > 0 else None

    found: str = wait_for(settled, 30, "the log integrated and the pull queue empty")
    return found


def test_metrics_need_a_metrics_or_admin_token(monitored: Monitored) -> None:
    broker = monitored.remote.broker
    with broker.client() as anonymous:
        assert anonymous.get("/metrics").status_code == 401
    with broker.client(monitored.remote.requester) as requester:
        assert requester.get("/metrics").status_code == 403
    with broker.client(monitored.remote.admin) as admin:
        assert admin.get("/metrics").status_code == 200


def test_exchanges_and_calls_carry_exactly_their_labels(traffic: str) -> None:
    ended = label_sets(traffic, "broker_exchanges_total", "evidence_type", "authority", "channel", "outcome", "reason")
    assert ended == {
        (MELDE, PUSH, "v1", "delivered", "none"),
        (MELDE, PUSH, "v1", "failed", "authority.server_error"),
        (MELDE, "none", "v1", "rejected", "policy.basis_missing"),
        (GEBURT, PULL, "v1", "delivered", "none"),
    }
    assert value(traffic, "broker_exchanges_total", evidence_type=MELDE, authority=PUSH, channel="v1",
                 outcome="delivered", reason="none") == 2  # fmt: skip
    calls = label_sets(traffic, "broker_authority_calls_total", "authority", "binding", "result")
    assert calls == {(PUSH, "http_push", "ok"), (PUSH, "http_push", "unavailable"), (PULL, "pull", "ok")}
    timed = {(PUSH, "http_push"), (PULL, "pull")}
    assert label_sets(traffic, "broker_authority_call_duration_seconds_count", "authority", "binding") == timed
    assert label_sets(traffic, "broker_exchange_duration_seconds_count", "authority", "binding") == timed
    assert value(traffic, "broker_exchange_duration_seconds_count", authority=PUSH, binding="http_push") == 3
    # The buckets span 5 ms to 30 s.
    buckets = {float(found["le"]) for n, found, _ in samples(traffic) if n == "broker_exchange_duration_seconds_bucket"}
    assert min(buckets) == 0.005 and max(b for b in buckets if b != float("inf")) == 30.0


def test_gauges_of_a_real_broker(traffic: str) -> None:
    breaker = "broker_authority_breaker_state"
    assert label_sets(traffic, breaker, "authority", "state") == {
        (PUSH, "closed"), (PUSH, "half_open"), (PUSH, "open")
    }  # fmt: skip
    assert value(traffic, breaker, authority=PUSH, state="closed") == 1
    assert value(traffic, "broker_pull_queue_depth", authority=PULL) == 0
    assert value(traffic, "broker_pull_queue_oldest_seconds", authority=PULL) == 0
    assert label_sets(traffic, "broker_pull_queue_depth", "authority") == {(PULL,)}
    assert value(traffic, "broker_callback_outbox_depth") == 0
    assert value(traffic, "broker_log_tree_size") > 0
    assert 0 <= value(traffic, "broker_log_checkpoint_age_seconds") < 60
    assert value(traffic, "broker_metrics_database_up") == 1


def test_no_id_no_name_no_free_text_in_metrics(traffic: str, monitored: Monitored) -> None:
    assert not UUID.search(traffic)
    for forbidden in ("Mustermann", "Erika", ERIKA_IDNR, monitored.remote.requester_name, "Wohngeld"):
        assert forbidden not in traffic


def test_dashboard_and_alert_rules_use_only_what_the_broker_exports(traffic: str) -> None:
    exported: dict[str, set[str]] = {}
    for name, found, _ in samples(traffic):
        exported.setdefault(name, set()).update(found)
    scraped = {"instance", "job"}  # added by Prometheus to every series it scrapes
    expressions = dashboard_expressions() + rule_expressions()
    assert len(dashboard_expressions()) >= 20
    for expression in expressions:
        names = series_names(expression)
        assert names, f"reads no series: {expression}"
        unknown = names - exported.keys() - PROMETHEUS_OWN
        assert not unknown, f"{expression} reads series the broker does not export: {unknown}"
        for name, matched in label_matchers(expression):
            if name in exported:
                assert matched <= exported[name] | scraped, f"{expression}: {name} lacks a label of {matched}"
        for grouping in re.findall(r"\bby\s*\(([^)]*)\)", expression):
            grouped = {label.strip() for label in grouping.split(",")}
            available = set().union(*(exported.get(name, set()) for name in names)) | scraped
            assert grouped <= available, f"{expression} groups by labels its series lack: {grouped - available}"
    # Every domain metric is on the dashboard.
    shown = {_family(name) for expression in dashboard_expressions() for name in series_names(expression)}
    domain = {_family(name) for name in exported if name.startswith("broker_") and not name.endswith("_created")}
    assert domain - shown == set(), "exported but on no panel"


def _family(name: str) -> str:
    return re.sub(r"_(bucket|count|sum|total)$", "", name)


def _moment(text: str) -> float:
    """Prometheus' RFC 3339 time (nanoseconds, Z) as a Unix time."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{whole}.{(fraction or '0')[:6]:0<6}+00:00").timestamp()


def test_stopping_an_authority_fires_its_alert_in_a_real_prometheus(
    monitored: Monitored, traffic: str, tmp_path: Path
) -> None:
    tool("promtool")
    remote = monitored.remote
    rule = alert_rule("BrokerAuthorityDown")
    hold = duration_seconds(rule["for"])
    remote.push_authority(STOPPED, timeout=1.5)
    authority_process = remote.processes[-1]
    token_file = tmp_path / "metrics_token"
    token_file.write_text(monitored.metrics_token + "\n")
    config = render_config(remote.broker.base_url.removeprefix("http://"), token_file, tmp_path)
    check = subprocess.run([tool("promtool"), "check", "config", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    prometheus = Prometheus.start(config, tmp_path)
    try:
        closed = f'broker_authority_breaker_state{{authority="{STOPPED}",state="closed"}} == 1'
        wait_for(lambda: prometheus.query(closed), 30, "Prometheus scraping the broker")
        # Every query of the dashboard is PromQL this Prometheus accepts.
        for expression in dashboard_expressions():
            prometheus.query(expression.replace("$__rate_interval", "1m").replace("$authority", ".*"))

        answered = remote.request(request_body(MELDE, jurisdiction="130715001"))
        assert answered.status_code == 404 and answered.json()["reason"] == "subject.not_found", answered.text
        assert prometheus.alerts("BrokerAuthorityDown") == []

        stop_process(authority_process)
        stopped_at = time.time()
        deadline = stopped_at + hold + 30
        failures: list[str] = []
        firing: list[dict[str, Any]] = []
        while time.time() < deadline and not firing:
            # Requesters keep asking: calls fail, the breaker opens and stays open.
            answer = remote.request(request_body(MELDE, jurisdiction="130715001"))
            failures.append(answer.json().get("reason", ""))
            firing = [a for a in prometheus.alerts("BrokerAuthorityDown") if a["state"] == "firing"]
            time.sleep(1)
        assert firing, f"no alert within {hold + 30:g} s; reasons {failures}:\n{prometheus.logs()[-2000:]}"
        fired_at = time.time()
    finally:
        prometheus.stop()
    [alert] = firing
    assert alert["labels"] == {"alertname": "BrokerAuthorityDown", "authority": STOPPED, "severity": "critical"}
    assert "authority.unreachable" in failures and "authority.unavailable" in failures  # then the breaker opened
    active_at = _moment(alert["activeAt"])
    assert active_at - stopped_at < 15, "the condition holds within seconds of the stop"
    assert fired_at - active_at >= hold - 2, "firing only after the rule's `for`"
    assert fired_at - stopped_at <= hold + 30
