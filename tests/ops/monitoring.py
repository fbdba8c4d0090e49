"""Helpers of the monitoring tests: Debian's Prometheus and promtool, run on loopback.

Without them the tests skip, unless ``BROKER_TEST_REQUIRE_PROMETHEUS=1`` (CI sets it): then they
fail, so that CI never passes without having fired an alert.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REPO_DIR, on_a_free_port, stop_process, wait_until_serving

DEPLOY = REPO_DIR / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
ALERT_RULES = PROMETHEUS_DIR / "alerts.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "broker.json"
# Series Prometheus makes itself, which the broker does not export.
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE"}


def tool(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``; skips (or fails, where required) without it."""
    # Debian installs them in /usr/bin, which a trimmed PATH may lack.
    found = shutil.which(name) or shutil.which(name, path="/usr/bin")
    if found is None:
        message = f"{name} is not installed (Debian package prometheus)"
        if os.environ.get("BROKER_TEST_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(f"BROKER_TEST_REQUIRE_PROMETHEUS=1 but {message}")
        pytest.skip(message)
    return found


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rule(name: str) -> dict[str, Any]:
    for group in load_yaml(ALERT_RULES)["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                return dict(rule)
    raise KeyError(name)


def duration_seconds(text: str) -> float:
    """A Prometheus duration such as ``1m``, ``90s`` or ``1m30s`` in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(int(n) * units[u] for n, u in parts)


def rule_expressions() -> list[str]:
    return [rule["expr"] for group in load_yaml(ALERT_RULES)["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    """Every query of the dashboard: panels' targets, the template variable, the annotation."""
    import json

    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    # A variable's label_values(series, label) is Grafana's, not PromQL: the series it reads.
    for variable in dashboard["templating"]["list"]:
        found += re.findall(r"label_values\((\w+),", variable["definition"])
    found += [annotation["expr"] for annotation in dashboard["annotations"]["list"] if "expr" in annotation]
    return found


# PromQL's binary operators and modifiers: words, but not series.
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def series_names(expression: str) -> set[str]:
    """The series a PromQL expression reads: identifiers that are not called (functions,
    aggregations), outside strings, label matchers, ranges and ``by (…)`` lists."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    text = re.sub(r"\{[^}]*\}", "{}", text)
    text = re.sub(r"\[[^\]]*\]", "[]", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        called = text[match.end() :].lstrip().startswith("(")
        if not called and match.group() not in _KEYWORDS:
            names.add(match.group())
    return names


def label_matchers(expression: str) -> list[tuple[str, set[str]]]:
    """(series, label names its matchers use) for every ``series{…}`` of an expression."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    return [
        (name, set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers)))
        for name, matchers in re.findall(r"([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}", text)
    ]


def render_config(target: str, token_file: Path, directory: Path, interval: str = "1s") -> Path:
    """deploy/prometheus/prometheus.yml as shipped, pointed at a broker on loopback: only the
    target, the token file, the rule file's path and the intervals differ."""
    config = load_yaml(PROMETHEUS_CONFIG)
    config["global"].update(scrape_interval=interval, evaluation_interval=interval, scrape_timeout=interval)
    config["rule_files"] = [str(ALERT_RULES)]
    [job] = config["scrape_configs"]
    job["authorization"]["credentials_file"] = str(token_file)
    job["static_configs"] = [{"targets": [target]}]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Prometheus:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(cls, config: Path, directory: Path) -> Prometheus:
        log_path = directory / "prometheus.log"

        def start(port: int) -> Prometheus:
            process = subprocess.Popen(
                [
                    tool("prometheus"),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={directory / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log_path.open("wb"),
                stderr=subprocess.STDOUT,
            )
            prometheus = cls(f"http://127.0.0.1:{port}", process, log_path)
            wait_until_serving(process, port, "/-/ready", prometheus.logs, "prometheus")
            return prometheus

        return on_a_free_port(start)

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def api(self, path: str, **params: str) -> Any:
        answer = httpx.get(f"{self.base_url}/api/v1/{path}", params=params, timeout=10)
        body = answer.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expression: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expression)["result"])

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name]

    def stop(self) -> None:
        stop_process(self.process)


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def names_in(exposition: Iterable[str]) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in exposition if line and not line.startswith("#")}
