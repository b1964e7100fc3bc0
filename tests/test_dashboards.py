"""Dashboards, alert rules, Alertmanager routes and the compose file, checked with
the real tools: promtool, amtool, and a real Prometheus scraping a real worker."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import orjson
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"
PANELS = sorted((DASHBOARDS / "grafana" / "dashboards").glob("*.json"))


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: scripts/test installs Debian's prometheus and prometheus-alertmanager")
    return path


def test_alert_rules_pass_their_unit_tests():
    out = subprocess.run([tool("promtool"), "test", "rules", "alerts_test.yml"], cwd=DASHBOARDS / "prometheus",
                         capture_output=True, text=True)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr
    names = {r["alert"] for g in yaml.safe_load((DASHBOARDS / "prometheus" / "alerts.yml").read_text())["groups"]
             for r in g["rules"]}
    tested = (DASHBOARDS / "prometheus" / "alerts_test.yml").read_text()
    assert {n for n in names if f"alertname: {n}" not in tested} == set()  # every alert has a test
    assert {"RiskwatchEngineDown", "RiskwatchConsumerLagGrowing", "RiskwatchDeadLetterRateHigh", "RiskwatchScoringLatencyHigh",
            "RiskwatchTicketsOverdue", "RiskwatchHighSeverityAlertBurst"} <= names


def test_prometheus_and_alertmanager_configs_are_valid():
    out = subprocess.run([tool("promtool"), "check", "config", str(DASHBOARDS / "prometheus" / "prometheus.yml")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    out = subprocess.run([tool("amtool"), "check-config", str(DASHBOARDS / "alertmanager" / "alertmanager.yml")],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr
    routes = yaml.safe_load((DASHBOARDS / "alertmanager" / "alertmanager.yml").read_text())["route"]["routes"]
    assert {m for r in routes for m in r["matchers"] if m.startswith("team")} == {'team="ops"', 'team="compliance"'}


def test_the_compose_file_holds_together():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "postgres", "prometheus", "alertmanager", "grafana", "riskwatch-worker-1", "riskwatch-worker-2",
            "riskwatch-connect-http", "riskwatch-serve"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    for name, svc in services.items():
        image = svc.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image ({image})"
        if svc.get("restart") != "no":
            assert "healthcheck" in svc or name.startswith("riskwatch-topics"), f"{name}: no healthcheck"
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"
    assert (ROOT / "Dockerfile").exists() and all(s.get("build") in (None, ".") for s in services.values())
    # Prometheus scrapes every worker on the port the worker serves /metrics on
    scrape = yaml.safe_load((DASHBOARDS / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] if job["job_name"] == "riskwatch"
               for sc in job["static_configs"] for t in sc["targets"]}
    workers = {n: s for n, s in services.items() if n.startswith("riskwatch-worker")}
    assert targets == {f"{n}:{s['command'][s['command'].index('--metrics-port') + 1]}" for n, s in workers.items()}
    assert all(t.split(":")[1] in workers[t.split(":")[0]]["expose"] for t in targets)
    serve = services["riskwatch-serve"]["command"]
    assert {t for job in scrape["scrape_configs"] if job["job_name"] == "riskwatch-serve" for sc in job["static_configs"]
            for t in sc["targets"]} == {f"riskwatch-serve:{serve[serve.index('--metrics-port') + 1]}"}
    # Grafana's provisioned datasources are the ones the dashboards use
    datasources = yaml.safe_load((DASHBOARDS / "grafana" / "provisioning" / "datasources" / "riskwatch.yml").read_text())
    uids = {d["uid"] for d in datasources["datasources"]}
    used = {t["datasource"]["uid"] for p in PANELS for panel in json.loads(p.read_text())["panels"] for t in panel["targets"]}
    assert used <= uids
    provider = yaml.safe_load((DASHBOARDS / "grafana" / "provisioning" / "dashboards" / "riskwatch.yml").read_text())
    mounts = [v for v in services["grafana"]["volumes"] if v.startswith("./dashboards/grafana/dashboards:")]
    assert mounts and mounts[0].split(":")[1] == provider["providers"][0]["options"]["path"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prom_query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def panel_targets():
    for path in PANELS:
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            for target in panel["targets"]:
                yield path.stem, panel["title"], target


def test_every_panel_query_returns_data(kafka_broker, postgres_url, tmp_path):
    """A worker scores a generated stream from Kafka into PostgreSQL; a real
    Prometheus scrapes it; every panel's query must return something."""
    from kafka import KafkaProducer
    from sqlalchemy import create_engine, text

    from monitor.analyst.generator import generate
    from monitor.runners.topics import EVENT_TOPICS
    from tests.kafka_util import BOOTSTRAP

    import os

    from monitor.cases.auth import UserStore
    from monitor.cases.tickets import SqlTicketStore

    from tests.test_tickets import pg_schema_url

    postgres_url = pg_schema_url(postgres_url)  # a fresh schema: every ticket of this stream is new here
    metrics_port, prom_port, serve_port, serve_metrics = free_port(), free_port(), free_port(), free_port()
    # notices go to a port nobody listens on: the notification-failure panels need failures
    notify = tmp_path / "notify.yaml"
    notify.write_text(f"channels:\n  - {{name: ops-hook, type: webhook, url: 'http://127.0.0.1:{free_port()}/x', timeout: 1}}\n"
                      "routes:\n  - {channels: [ops-hook]}\n", encoding="utf-8")
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", "monitor.cli", "worker", "--app-id", f"rw-dash-{uuid.uuid4().hex[:8]}",
                               "--db", postgres_url, "--metrics-port", str(metrics_port), "--batch-size", "500",
                               "--notify", str(notify)], stdout=log, stderr=log)
    users = UserStore(SqlTicketStore(postgres_url).engine)
    users.add("dash-head", "dash-head-pass", "head", [])
    token = users.new_token("dash-head")
    serve = subprocess.Popen([sys.executable, "-m", "monitor.cli", "serve", "--db", postgres_url, "--port", str(serve_port),
                              "--metrics-port", str(serve_metrics)], stdout=log, stderr=log,
                             env={**os.environ, "RISKWATCH_SESSION_SECRET": "dashboards"})
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DASHBOARDS / "prometheus" / "alerts.yml")],
        "scrape_configs": [{"job_name": "riskwatch", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]},
                           {"job_name": "riskwatch-serve", "static_configs": [{"targets": [f"127.0.0.1:{serve_metrics}"]}]}],
    }))
    prometheus = subprocess.Popen([tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                   f"--web.listen-address=127.0.0.1:{prom_port}"],
                                  stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "wb"))
    base = f"http://127.0.0.1:{prom_port}"
    try:
        stream = generate(events=4_000, seed=31)  # small: later worker tests read every topic from the start
        producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
        for raw in stream.lines:
            try:
                record = orjson.loads(raw)
                topic, key = EVENT_TOPICS[record["domain"]], str(record["org_id"]).encode()
            except (orjson.JSONDecodeError, KeyError, TypeError):
                topic, key = EVENT_TOPICS["finance"], b"bad"  # malformed lines: the dead-letter panels need them
            producer.send(topic, key=key, value=raw.rstrip(b"\n"))
        producer.flush()
        producer.close()

        def ready() -> bool:
            try:
                scored = prom_query(base, "sum(riskwatch_events_in_total)")["data"]["result"]
                tickets = prom_query(base, "sum(riskwatch_tickets_open)")["data"]["result"]
                lag = prom_query(base, "riskwatch_consumer_lag")["data"]["result"]
            except OSError:
                return False
            return bool(scored and float(scored[0]["value"][1]) >= 3_900 and tickets and lag)

        deadline = time.monotonic() + 150
        while not ready() and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
            time.sleep(2)
        assert ready(), (tmp_path / "worker.log").read_text(errors="replace")[-3000:]

        def api(method: str, path: str, body: dict | None = None) -> dict:
            request = urllib.request.Request(f"http://127.0.0.1:{serve_port}{path}", method=method,
                                             data=json.dumps(body).encode() if body is not None else None,
                                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as r:
                return json.loads(r.read())

        ticket = api("GET", "/api/tickets?status=open")[0]["id"]  # a compliance manager disposes of one
        api("POST", f"/api/tickets/{ticket}/move", {"to": "resolved", "outcome": "remediated", "reason": "dashboards"})
        api("POST", f"/api/tickets/{ticket}/move", {"to": "closed"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                prom_query(base, "riskwatch_tickets_closed_total")["data"]["result"]
                and prom_query(base, "riskwatch_notification_failures_total")["data"]["result"]):
            time.sleep(1)
        time.sleep(5)  # a few more scrapes, so every rate has two samples in its window

        empty, checked = [], 0
        engine = create_engine(postgres_url)
        for dashboard, title, target in panel_targets():
            checked += 1
            if "rawSql" in target:
                with engine.connect() as conn:
                    rows = conn.execute(text(target["rawSql"])).all()
                if not rows:
                    empty.append((dashboard, title))
                continue
            result = prom_query(base, target["expr"])
            assert result["status"] == "success", (dashboard, title, result)
            if not result["data"]["result"]:
                empty.append((dashboard, title, target["expr"]))
        assert empty == [] and checked >= 26
        groups = json.loads(urllib.request.urlopen(f"{base}/api/v1/rules", timeout=10).read())["data"]["groups"]
        assert {g["name"] for g in groups} == {"riskwatch-engine", "riskwatch-risk"}
        assert all(r["health"] == "ok" for g in groups for r in g["rules"])
    finally:
        for proc in (prometheus, worker, serve):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
