"""The Prometheus config and alert rules shipped in deploy/prometheus/ parse, are complete, and name
only metrics that Tuneforge exports."""

import re
from pathlib import Path

import yaml
from prometheus_client import Counter, Gauge, Histogram

from common import metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"


def _exported_series() -> set[str]:
    names = {name for name in metrics.SCRAPE_TIME_GAUGES}
    for value in vars(metrics).values():
        if isinstance(value, Counter):
            names |= {f"{value._name}_total", f"{value._name}_created"}
        elif isinstance(value, Histogram):
            names |= {f"{value._name}_{suffix}" for suffix in ("bucket", "sum", "count", "created")}
        elif isinstance(value, Gauge):
            names.add(value._name)
    return names


def test_prometheus_config_scrapes_web_with_the_token_and_loads_the_rules():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
    assert job["static_configs"][0]["targets"] == ["web:8000"]


def test_every_alert_is_complete_and_uses_exported_metrics():
    rules = [
        rule
        for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    ]
    assert {rule["alert"] for rule in rules} == {
        "QueueBacklogGrowing",
        "NoWorkerForQueueWithJobs",
        "HighServerErrorRate",
        "QuotaRefusalSpike",
    }
    exported = _exported_series()
    for rule in rules:
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule.get("alert")
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert {"summary", "description"} <= set(rule["annotations"])
        used = set(re.findall(r"\btuneforge_[a-z0-9_]+", rule["expr"]))
        assert used, rule["alert"]
        assert used <= exported, f"{rule['alert']} uses unknown metrics {sorted(used - exported)}"


def test_compose_monitoring_profile_mounts_both_files():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    prometheus = compose["services"]["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    assert prometheus["image"].startswith("prom/prometheus")
    mounts = {volume.split(":")[1] for volume in prometheus["volumes"]}
    assert {"/etc/prometheus/prometheus.yml", "/etc/prometheus/alerts.yml"} <= mounts
    assert compose["services"]["web"]["environment"]["PROMETHEUS_MULTIPROC_DIR"]
