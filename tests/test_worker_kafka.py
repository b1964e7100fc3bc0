"""The faust worker against the real broker: every scenario round trip, dead
letters, and state that survives a SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
import uuid

import orjson
import pytest
from kafka import KafkaProducer

from monitor.event import EVENT_TYPES
from monitor.topics import ALERTS_TOPIC, DEADLETTER_TOPIC, EVENT_TOPICS
from tests.kafka_util import BOOTSTRAP, end_offsets, read_since

pytestmark = pytest.mark.usefixtures("kafka_broker")


class Worker:
    def __init__(self, tmp_path, app_id: str, name: str = "w", metrics_port: int = -1, rules=None):
        self.app_id, self.db = app_id, tmp_path / f"{app_id}.db"
        self.log_path = tmp_path / f"{app_id}-{name}.log"
        self.log = open(self.log_path, "ab")
        self.metrics_port = metrics_port
        self.rules = rules
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        rules = ["--rules", str(self.rules)] if self.rules else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "worker", "--app-id", self.app_id, "--db", f"sqlite:///{self.db}",
             "--metrics-port", str(self.metrics_port), "--batch-size", "500", "--loglevel", "info", *rules],
            stdout=self.log, stderr=self.log)  # info: a failing test's worker logs say what the group did

    def scored(self) -> float:
        import urllib.request

        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).read().decode()
        except OSError:
            return 0.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("riskwatch_events_in_total"))

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tickets(self) -> set[str]:
        with sqlite3.connect(self.db) as conn:
            return {row[0] for row in conn.execute("select dedup_key from tickets")}


@pytest.fixture()
def worker(tmp_path):
    w = Worker(tmp_path, f"rw-test-{uuid.uuid4().hex[:8]}")
    w.start()
    yield w
    w.stop()


def produce(events: list[dict]) -> None:
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True)
    for e in events:
        producer.send(EVENT_TOPICS[e["domain"]], key=e["org_id"].encode(), value=orjson.dumps(e))
    producer.flush()
    producer.close()


def alerts_for(orgs: set[str], since, expect: int = 0, timeout: float = 90.0, rules: set[str] = frozenset()) -> dict[str, dict]:
    """Latest alert per dedup key, for the given orgs, once ``expect`` keys
    have come and every rule in ``rules`` has alerted."""
    deadline = time.monotonic() + timeout
    latest: dict[str, dict] = {}
    while time.monotonic() < deadline:
        for record in read_since(ALERTS_TOPIC, since, expect=10**9, timeout=2.0):
            alert = orjson.loads(record.value)
            if alert["org_id"] in orgs:
                latest[alert["dedup_key"]] = alert
        if len(latest) >= expect and rules <= {a["rule_id"] for a in latest.values()}:
            break
    return latest


def event(org: str, n: int, **fields) -> dict:
    base = {"event_id": f"{org}-{n}", "source": "kafka-test", "occurred_at": "2026-03-02T10:00:00+08:00", "org_id": org}
    record = {**base, **fields}
    record["domain"] = EVENT_TYPES[record["type"]]
    return record


def test_every_default_rule_round_trips_through_kafka(default_pack, worker):
    run = uuid.uuid4().hex[:6]
    events, orgs = [], set()
    for i, rule in enumerate(default_pack.rules):
        case = next(c for c in rule.spec.tests if c.expect == "hit")
        org = f"T{run}-{i}"
        orgs.add(org)
        for n, partial in enumerate(case.events):
            fields = {k: v for k, v in partial.items() if k != "org_id"}
            fields.setdefault("occurred_at", f"2026-03-02T{9 + n:02d}:00:00+08:00")
            if not isinstance(fields["occurred_at"], str):
                fields["occurred_at"] = fields["occurred_at"].isoformat()
            fields.pop("event_id", None)
            events.append(event(org, n, **fields))
    since = end_offsets(ALERTS_TOPIC)
    produce(events)
    # a case may raise more than one alert of its rule: wait for every rule, not for a count
    alerts = alerts_for(orgs, since, rules={r.id for r in default_pack.rules})
    assert sorted({a["rule_id"] for a in alerts.values()}) == sorted(r.id for r in default_pack.rules)
    for alert in alerts.values():
        assert alert["event_ids"] and all(e.startswith(alert["org_id"]) for e in alert["event_ids"])
    deadline = time.monotonic() + 90  # a fresh group first reads what earlier tests left on the topics
    while not worker.tickets() >= set(alerts) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert worker.tickets() >= set(alerts)


def test_malformed_messages_are_dead_lettered_with_their_origin(worker):
    since = end_offsets(DEADLETTER_TOPIC)
    marker = uuid.uuid4().hex
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    producer.send(EVENT_TOPICS["finance"], key=b"ORG-X", value=f'{{"oops": "{marker}"'.encode())
    producer.send(EVENT_TOPICS["governance"], key=b"ORG-X", value=f'{{"event_id": "{marker}"}}'.encode())
    producer.flush()
    deadline = time.monotonic() + 90
    mine: list = []
    while len(mine) < 2 and time.monotonic() < deadline:
        mine = [r for r in read_since(DEADLETTER_TOPIC, since, expect=10**9, timeout=2.0) if marker.encode() in r.value]
    headers = sorted((dict((k, v.decode()) for k, v in r.headers) for r in mine), key=lambda h: h["riskwatch.source"])
    assert [(h["riskwatch.source"], h["riskwatch.reason"]) for h in headers] == [
        ("riskwatch.events.finance", "not_json"), ("riskwatch.events.governance", "missing_field")]
    assert all(":" in h["riskwatch.position"] for h in headers)


def test_state_survives_a_sigkill(tmp_path, default_pack):
    worker = Worker(tmp_path, f"rw-test-{uuid.uuid4().hex[:8]}")
    org = f"K{uuid.uuid4().hex[:6]}"
    since = end_offsets(ALERTS_TOPIC)
    worker.start()
    try:
        first_order = event(org, 1, type="purchase_order", amount=1_200_000, counterparty_id="S1",
                            attributes={"category": "goods", "method": "inquiry"})
        marker = event(org, 2, type="regulation_issued", attributes={"regulation_id": "Z1", "legal_review": "none"})
        produce([first_order, marker])
        assert len(alerts_for({org}, since, expect=1)) == 1  # the marker's alert: the first order is in the state
        worker.stop(signal.SIGKILL)
        worker.start()
        second_order = event(org, 3, type="purchase_order", amount=900_000, counterparty_id="S1",
                             occurred_at="2026-03-20T10:00:00+08:00", attributes={"category": "goods", "method": "inquiry"})
        produce([second_order])
        alerts = alerts_for({org}, since, expect=2)
        split = [a for a in alerts.values() if a["rule_id"] == "proc_split_purchase"]
        assert [sorted(a["event_ids"]) for a in split] == [[f"{org}-1", f"{org}-3"]]
    finally:
        worker.stop()


def split_orders(org: str, first: bool) -> list[dict]:
    """Half of a split purchase (first=True), or the order completing it."""
    if first:
        return [event(org, 1, type="purchase_order", amount=1_200_000, counterparty_id="S1",
                      attributes={"category": "goods", "method": "inquiry"}),
                event(org, 2, type="regulation_issued", attributes={"regulation_id": "Z1", "legal_review": "none"})]
    return [event(org, 3, type="purchase_order", amount=900_000, counterparty_id="S1",
                  occurred_at="2026-03-20T10:00:00+08:00", attributes={"category": "goods", "method": "inquiry"})]


def wait_for_members(app_id: str, count: int, timeout: float = 90.0) -> None:
    """Until the consumer group is stable with ``count`` members."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        deadline = time.monotonic() + timeout
        group: dict = {}
        while time.monotonic() < deadline:
            try:
                group = admin.describe_groups([app_id]).get(app_id, {})
            except KafkaError:  # the coordinator is still starting
                time.sleep(0.5)
                continue
            if group.get("group_state") == "Stable" and len(group.get("members", ())) == count:
                return
            time.sleep(0.5)
        raise AssertionError(f"group {app_id} never had {count} stable members: {group}")
    finally:
        admin.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_note(orgs: set[str], *workers: Worker) -> str:
    from monitor.changelog import org_partition

    where = sorted((org_partition(o.encode(), 8), o) for o in orgs)
    return f"no alert for (partition, org) {where}; worker logs: {[str(w.log_path) for w in workers]}"


def test_two_workers_split_the_partitions_and_one_takes_over_from_the_other(tmp_path):
    app_id = f"rw-test-{uuid.uuid4().hex[:8]}"
    a = Worker(tmp_path, app_id, "a", free_port())
    b = Worker(tmp_path, app_id, "b", free_port())
    run = uuid.uuid4().hex[:6]
    orgs = {f"P{run}-{i}" for i in range(24)}  # enough orgs to land in every partition
    since = end_offsets(ALERTS_TOPIC)
    a.start()
    b.start()
    try:
        wait_for_members(app_id, 2)  # both joined: the partitions are split between them
        produce([e for org in sorted(orgs) for e in split_orders(org, first=True)])
        alerted = {a_["org_id"] for a_ in alerts_for(orgs, since, expect=len(orgs)).values()}
        assert alerted == orgs, missing_note(orgs - alerted, a, b)  # every org's marker alert
        assert a.scored() > 0 and b.scored() > 0  # both took a share
        a.stop(signal.SIGKILL)
        produce([e for org in sorted(orgs) for e in split_orders(org, first=False)])
        alerts = alerts_for(orgs, since, expect=2 * len(orgs), timeout=120)
        splits = {a_["org_id"]: sorted(a_["event_ids"]) for a_ in alerts.values() if a_["rule_id"] == "proc_split_purchase"}
        assert splits == {org: [f"{org}-1", f"{org}-3"] for org in orgs}
    finally:
        a.stop()
        b.stop()


def test_a_broker_restart_mid_stream_loses_nothing(worker):
    """Stops and starts the broker (scripts/kafka-local.sh) while events flow."""
    import threading
    from pathlib import Path

    script = Path(__file__).parent.parent / "scripts" / "kafka-local.sh"
    run = uuid.uuid4().hex[:6]
    orgs = {f"B{run}-{i}" for i in range(6)}
    since = end_offsets(ALERTS_TOPIC)
    total = 400

    def stream() -> None:
        producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True,
                                 retries=2**31 - 1, delivery_timeout_ms=120_000, request_timeout_ms=10_000)
        for i in range(total):
            org = f"B{run}-{i % 6}"
            producer.send(EVENT_TOPICS["governance"], key=org.encode(), value=orjson.dumps(
                event(org, i, type="regulation_issued", attributes={"regulation_id": f"Z{i}", "legal_review": "none"})))
            time.sleep(0.02)
        producer.flush()
        producer.close()

    sender = threading.Thread(target=stream)
    sender.start()
    # mid-stream: once the worker has scored and committed some of it
    assert alerts_for(orgs, since, expect=1, timeout=60), "the worker never started scoring"
    stopped = subprocess.run([str(script), "stop"], capture_output=True, text=True)
    assert stopped.stdout.strip() == "kafka stopped", stopped
    time.sleep(2)
    started = subprocess.run([str(script), "start"], capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    sender.join(timeout=180)
    alerts = alerts_for(orgs, since, expect=total, timeout=120)
    assert len(alerts) == total and worker.proc.poll() is None


def test_the_worker_reloads_its_rules_on_sighup_and_rejects_a_broken_folder(tmp_path, rules_copy):
    from monitor.rulefiles import load_pack

    w = Worker(tmp_path, f"rw-reload-{uuid.uuid4().hex[:8]}", rules=rules_copy)
    w.start()
    try:
        run = uuid.uuid4().hex[:6]
        v1 = load_pack(rules_copy).version

        def pay(org: str, amount: float) -> dict:
            return event(org, 1, type="payment", amount=amount, counterparty_id="S1", attributes={"payment_no": f"{org}-FK"})

        since = end_offsets(ALERTS_TOPIC)
        produce([pay(f"A{run}", 60_000), pay(f"B{run}", 45_000)])
        first = alerts_for({f"A{run}", f"B{run}"}, since, expect=1)
        assert [(a["org_id"], a["pack_version"]) for a in first.values()] == [(f"A{run}", v1)]

        params = rules_copy / "params.yaml"
        params.write_text(params.read_text(encoding="utf-8").replace("no_contract_payment_limit: 50000",
                                                                     "no_contract_payment_limit: 40000"), encoding="utf-8")
        v2 = load_pack(rules_copy).version
        w.proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        since = end_offsets(ALERTS_TOPIC)
        produce([pay(f"C{run}", 45_000)])
        second = alerts_for({f"C{run}"}, since, expect=1)
        assert [a["pack_version"] for a in second.values()] == [v2]

        finance = rules_copy / "finance.yaml"
        finance.write_text(finance.read_text(encoding="utf-8").replace("- rule: fin_payment_without_contract",
                                                                       "- rule: fin_payment_without_contract\n  colour: red", 1),
                           encoding="utf-8")
        w.proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        since = end_offsets(ALERTS_TOPIC)
        produce([pay(f"D{run}", 45_000)])
        third = alerts_for({f"D{run}"}, since, expect=1)
        assert [a["pack_version"] for a in third.values()] == [v2]  # the running pack goes on
        log = w.log_path.read_text(encoding="utf-8", errors="replace")
        assert "rules reload rejected" in log and "finance.yaml:" in log and "unknown field 'colour'" in log
        with sqlite3.connect(w.db) as conn:
            assert {row[0] for row in conn.execute("select version from rule_pack_versions")} == {v1, v2}
    finally:
        w.stop()


def group_lag(app_id: str) -> int:
    """Messages of the event topics the group has not committed yet."""
    from kafka import KafkaAdminClient

    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        committed = admin.list_group_offsets(app_id).get(app_id, {})  # by group, then by partition
    except KafkaError:  # the group's coordinator is still starting: not caught up
        return 10**9
    finally:
        admin.close()
    ends = {}
    for topic in EVENT_TOPICS.values():
        ends.update(end_offsets(topic))
    return sum(end - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0)
               for tp, end in ends.items())


def drain(worker: Worker, deadline: float, kills: int = 0, seed: int = 0) -> int:
    """Run ``worker`` until its group has no lag. With ``kills``, SIGKILL and
    restart it that many times, each when the (committed) lag first falls
    below a random share of what it was, so every kill lands mid-stream,
    wherever the batches and checkpoints are; returns how many kills there were.

    The shares are above one half: a checkpoint commits at most 50,000 events
    (half of the 100,000), so the lag is always seen below each share before
    it reaches zero."""
    import random

    rng = random.Random(seed)
    thresholds = sorted((rng.uniform(0.55, 0.95) for _ in range(kills)), reverse=True)
    start_lag, done = None, 0
    while time.monotonic() < deadline:
        time.sleep(0.2)
        lag = group_lag(worker.app_id)
        if lag == 0:
            return done
        if start_lag is None and lag < 10**9:
            start_lag = lag
        if start_lag and done < len(thresholds) and lag <= thresholds[done] * start_lag:
            worker.stop(signal.SIGKILL)
            worker.start()
            done += 1
    raise AssertionError(f"{worker.app_id} did not catch up")


def tickets_with_events(worker: Worker) -> dict[str, list[str]]:
    with sqlite3.connect(worker.db) as conn:
        return {k: sorted(orjson.loads(ids)) for k, ids in conn.execute("select dedup_key, event_ids from tickets")}


def test_sigkill_at_random_moments_ends_with_the_alerts_and_tickets_of_a_clean_run(tmp_path):
    """100k events of the demo stream; one worker runs clean, another is killed three times mid-stream.

    (This found a real bug: state was written before the batch's alerts and tickets
    were durable, so a kill between the two lost a finding for good.)"""
    from connectors.file import JSONL_CONTRACT, run_file_connector
    from connectors.sink import KafkaSink
    from monitor.generator import generate

    path = tmp_path / "stream.jsonl"
    generate(events=100_000, seed=99, malformed=0).write(path)
    sink = KafkaSink("kafka://127.0.0.1:9092")
    try:
        assert run_file_connector(path, JSONL_CONTRACT, sink).sent >= 100_000
    finally:
        sink.close()
    clean = Worker(tmp_path, f"rw-clean-{uuid.uuid4().hex[:6]}")
    killed = Worker(tmp_path, f"rw-killed-{uuid.uuid4().hex[:6]}")
    clean.start()
    try:
        drain(clean, time.monotonic() + 600)
    finally:
        clean.stop()
    killed.start()
    try:
        assert drain(killed, time.monotonic() + 900, kills=3, seed=7) == 3
    finally:
        killed.stop()
    expected = tickets_with_events(clean)
    assert len(expected) > 80
    got = tickets_with_events(killed)
    assert got == expected, ticket_differences(got, expected)


def ticket_differences(got: dict[str, list[str]], expected: dict[str, list[str]]) -> str:
    """Which tickets differ, and by which events."""
    lines = [f"only after kills: {sorted(got.keys() - expected.keys())}",
             f"only in the clean run: {sorted(expected.keys() - got.keys())}"]
    for key in sorted(got.keys() & expected.keys()):
        if got[key] != expected[key]:
            extra, missing = sorted(set(got[key]) - set(expected[key])), sorted(set(expected[key]) - set(got[key]))
            lines.append(f"{key}: {len(got[key])} events against {len(expected[key])}; extra {extra}, missing {missing}")
    return "\n".join(lines)
