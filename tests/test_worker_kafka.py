"""The faust worker against the real broker: every scenario round trip, dead
letters, and state that survives a SIGKILL."""

from __future__ import annotations

import datetime as dt
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter

import orjson
import pytest
from kafka import KafkaProducer

from monitor.core.event import EVENT_TYPES
from monitor.core.parties import PROFILE_TYPES
from monitor.runners.topics import ALERTS_TOPIC, DEADLETTER_TOPIC, EVENT_TOPICS
from tests.kafka_util import BOOTSTRAP, end_offsets, read_since, start_group_at_end

pytestmark = pytest.mark.usefixtures("kafka_broker")


class Worker:
    def __init__(self, tmp_path, app_id: str, name: str = "w", metrics_port: int = -1, rules=None,
                 checkpoint_events: int = 50_000, db_url: str | None = None, extra: tuple[str, ...] = ()):
        self.app_id, self.db = app_id, tmp_path / f"{app_id}.db"
        self.db_url = db_url or f"sqlite:///{self.db}"
        self.log_path = tmp_path / f"{app_id}-{name}.log"
        self.log = open(self.log_path, "ab")
        self.metrics_port = metrics_port
        self.rules = rules
        self.checkpoint_events = checkpoint_events
        self.extra = list(extra)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        rules = ["--rules", str(self.rules)] if self.rules else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "worker", "--app-id", self.app_id, "--db", self.db_url,
             "--metrics-port", str(self.metrics_port), "--batch-size", "500",
             "--checkpoint-events", str(self.checkpoint_events), "--loglevel", "info", *rules, *self.extra],
            stdout=self.log, stderr=self.log)  # info: a failing test's worker logs say what the group did

    def scored(self, counters: tuple[str, ...] = ("riskwatch_events_in_total",)) -> float:
        import urllib.request

        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).read().decode()
        except OSError:
            return 0.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(counters))

    def taken_in(self) -> float:
        """Records the worker has scored or rejected, by its own counters."""
        return self.scored(("riskwatch_events_in_total", "riskwatch_events_rejected_total"))

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


@pytest.fixture()
def live_worker(tmp_path):
    """A worker of a new group that reads only what is sent after it starts."""
    w = Worker(tmp_path, f"rw-test-{uuid.uuid4().hex[:8]}")
    start_group_at_end(w.app_id, EVENT_TOPICS.values())
    w.start()
    yield w
    w.stop()


def test_every_default_rule_round_trips_through_kafka(default_pack, live_worker):
    # The worker reads from the topics' present ends: the cases' business times (March 2026)
    # lie before those of streams other tests left there, and a partition read past an event's
    # business time counts as caught up with it (see docs/master-data.md, "Out of order").
    worker = live_worker
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
    # Master data first, as it exists before the business it describes: a profile sent in
    # the same instant as a payment on another topic can reach the worker after it
    # (see docs/master-data.md, "Arriving together").
    produce([e for e in events if e["type"] in PROFILE_TYPES])
    produce([e for e in events if e["type"] not in PROFILE_TYPES])
    # a case may raise more than one alert of its rule: wait for every rule, not for a count
    alerts = alerts_for(orgs, since, rules={r.id for r in default_pack.rules})
    assert sorted({a["rule_id"] for a in alerts.values()}) == sorted(r.id for r in default_pack.rules)
    for alert in alerts.values():
        assert alert["event_ids"] and all(e.startswith(alert["org_id"]) for e in alert["event_ids"])
    deadline = time.monotonic() + 90
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


def test_a_batch_that_alerts_is_committed_within_alerts_within_not_at_the_checkpoint_interval(tmp_path):
    # Checkpoints a minute apart: only the alerts' own deadline can make them readable sooner.
    worker = Worker(tmp_path, f"rw-test-{uuid.uuid4().hex[:8]}", extra=("--checkpoint-every", "60", "--alerts-within", "0.1"))
    start_group_at_end(worker.app_id, EVENT_TOPICS.values())
    worker.start()
    try:
        org = f"A{uuid.uuid4().hex[:6]}"

        def alerting(n: int) -> dict:
            return event(org, n, type="regulation_issued", attributes={"regulation_id": f"R-{n}", "legal_review": "none"})

        since = end_offsets(ALERTS_TOPIC)
        produce([alerting(1)])  # the first also waits for the worker to join its group
        assert len(alerts_for({org}, since, expect=1, timeout=90)) == 1
        since = end_offsets(ALERTS_TOPIC)
        sent = time.monotonic()
        produce([alerting(2)])
        assert len(alerts_for({org}, since, expect=1, timeout=50)) == 1
        assert time.monotonic() - sent < 10, "the alert waited for the checkpoint interval"
        assert len(worker.tickets()) == 2
    finally:
        worker.stop()


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


def test_a_review_left_undone_fires_on_the_clock_at_its_limit_and_once_across_a_restart(tmp_path):
    """No event comes to say a step is late: the worker judges the quiet org by
    the clock. The submission's business time puts the limit (5 days and the
    day's grace for a nightly OA sync) about 45 s ahead; so does a foreign
    case's service (15 days and the day's grace), whose early warning comes at once."""
    # back-dated by 16 days: "live" widened to 17 days for this stream
    worker = Worker(tmp_path, f"rw-test-{uuid.uuid4().hex[:8]}", extra=("--quiet-after", "2", "--live-within", "1468800"))
    org, case_org = f"Q{uuid.uuid4().hex[:6]}", f"L{uuid.uuid4().hex[:6]}"
    since = end_offsets(ALERTS_TOPIC)
    due = time.time() + 45
    cst = dt.timezone(dt.timedelta(hours=8))
    submitted_at = dt.datetime.fromtimestamp(due - 6 * 86400, cst)
    served_at = dt.datetime.fromtimestamp(due - 16 * 86400, cst)
    worker.start()
    try:
        produce([event(org, 1, type="matter_submitted", occurred_at=submitted_at.isoformat(), amount=2_000_000,
                       attributes={"matter_id": "HT-Q1", "matter_kind": "contract", "drafter_id": "u1"}),
                 event(case_org, 1, type="legal_case", occurred_at=served_at.isoformat(), amount=20_000_000,
                       attributes={"case_id": "LC-Q1", "jurisdiction": "DE", "role": "defendant", "status": "served",
                                   "court": "Landgericht Hamburg"})])
        warned = alerts_for({case_org}, since, expect=1, timeout=30)
        assert [a["dedup_key"].rsplit("|", 1)[1] for a in warned.values()] == ["warning"]
        time.sleep(max(0.0, due - 8 - time.time()))
        assert alerts_for({org}, since, timeout=2) == {}  # not before the limit
        assert list(alerts_for({case_org}, since, timeout=1)) == list(warned)
        fired = alerts_for({org, case_org}, since, expect=3, timeout=max(5.0, due + 40 - time.time()))
        assert sorted((a["rule_id"], a["dedup_key"].rsplit("|", 1)[1], a["event_ids"][0]) for a in fired.values()) == [
            ("RC-CON-01", "silent:legal_review", f"{org}-1"), ("RC-LAW-01", "silent:response", f"{case_org}-1"),
            ("RC-LAW-01", "warning", f"{case_org}-1")]
        assert time.time() >= due - 2  # at the limit, give or take the timer's beat
        worker.stop(signal.SIGKILL)
        worker.start()
        time.sleep(25)  # recovered, quiet again, judged again
        records = [orjson.loads(r.value) for r in read_since(ALERTS_TOPIC, since, expect=10**9, timeout=5.0)]
        assert sorted(a["dedup_key"] for a in records if a["org_id"] in (org, case_org)) == sorted(fired)  # once each
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
    from monitor.runners.changelog import org_partition

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


def test_a_frozen_worker_whose_partitions_moved_on_cannot_commit_when_it_wakes(tmp_path, postgres_url):
    """Zombie fencing: worker a is frozen (SIGSTOP) mid-stream past its session
    timeout, b takes its partitions over, a is resumed (SIGCONT). Every event's
    alert is on the topic exactly once and every ticket was opened once: a's
    late commits were refused (it says so and stops), b applied nothing twice.
    (Two workers share PostgreSQL: a worker frozen inside a SQLite write would
    hold the file's lock.)"""
    from sqlalchemy import create_engine, text

    from tests.test_tickets import pg_schema_url

    app_id = f"rw-fence-{uuid.uuid4().hex[:8]}"
    db_url = pg_schema_url(postgres_url)
    a = Worker(tmp_path, app_id, "a", free_port(), db_url=db_url)
    b = Worker(tmp_path, app_id, "b", free_port(), db_url=db_url)
    run = uuid.uuid4().hex[:6]
    orgs = [f"Z{run}-{i}" for i in range(24)]  # enough orgs to land in every partition
    total = 720
    since = end_offsets(ALERTS_TOPIC)

    def stream() -> None:
        producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True)
        for i in range(total):
            org = orgs[i % len(orgs)]
            producer.send(EVENT_TOPICS["governance"], key=org.encode(), value=orjson.dumps(
                event(org, i, type="regulation_issued", attributes={"regulation_id": f"Z{i}", "legal_review": "none"})))
            time.sleep(0.03)
        producer.flush()
        producer.close()

    import threading

    a.start()
    b.start()
    sender = threading.Thread(target=stream)
    try:
        wait_for_members(app_id, 2)
        sender.start()
        deadline = time.monotonic() + 60
        while a.scored() < 20 and time.monotonic() < deadline:  # a is scoring its share, some of it not committed
            time.sleep(0.01)
        a.proc.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        wait_for_members(app_id, 1)  # a's session timed out: b owns every partition
        time.sleep(max(0.0, 15 - (time.monotonic() - frozen_at)))
        frozen_log = a.log_path.read_text(errors="replace")
        a.proc.send_signal(signal.SIGCONT)
        sender.join(timeout=120)
        alerts = alerts_for(set(orgs), since, expect=total, timeout=120)
        assert len(alerts) == total, missing_note(set(orgs) - {x["org_id"] for x in alerts.values()}, a, b)
        per_key = Counter(orjson.loads(r.value)["dedup_key"] for r in read_since(ALERTS_TOPIC, since, expect=10**9, timeout=3)
                          if orjson.loads(r.value)["org_id"] in set(orgs))
        assert set(per_key.values()) == {1}, {k: n for k, n in per_key.items() if n > 1}
        engine = create_engine(db_url)
        with engine.connect() as conn:  # the topics hold other tests' events too: this run's orgs only
            mine = {"orgs": f"Z{run}-%"}
            tickets = conn.execute(text("select count(*) from tickets where org_id like :orgs"), mine).scalar()
            opened = conn.execute(text("select count(*) from ticket_audit join tickets on tickets.id = ticket_audit.ticket_id"
                                       " where action = 'open' and org_id like :orgs"), mine).scalar()
        engine.dispose()
        assert tickets == opened == total
        # What a did on waking depends on which it noticed first: its overdue
        # checkpoint (refused: it logs "fenced:" and stops) or the rebalance (it
        # drops its uncommitted work, rejoins and claims a share anew).
        time.sleep(3)
        woke = a.log_path.read_text(errors="replace")[len(frozen_log):]
        fenced, rejoined = "fenced:" in woke, "claimed input partitions" in woke
        assert (fenced and a.proc.poll() is not None) or (rejoined and not fenced), a.log_path
        print(f"the resumed worker {'was fenced and stopped' if fenced else 'rejoined the group'}")
    finally:
        a.proc.send_signal(signal.SIGCONT)
        a.stop()
        b.stop()


def test_a_broker_restart_mid_stream_loses_nothing(worker):
    """Stops and starts the broker (scripts/kafka-local.sh) while events flow.

    Every event the broker acknowledged gets its alert, and the worker lives
    on. A send the test's producer reports failed is sent again, as a
    connector's caller does."""
    import threading
    from pathlib import Path

    script = Path(__file__).parent.parent / "scripts" / "kafka-local.sh"
    run = uuid.uuid4().hex[:6]
    orgs = {f"B{run}-{i}" for i in range(6)}
    since = end_offsets(ALERTS_TOPIC)
    events_since = end_offsets(EVENT_TOPICS["governance"])
    total = 400
    resent: list[int] = []

    def stream() -> None:
        producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True,
                                 retries=2**31 - 1, delivery_timeout_ms=120_000, request_timeout_ms=10_000)

        def send(i: int):
            org = f"B{run}-{i % 6}"
            return producer.send(EVENT_TOPICS["governance"], key=org.encode(), value=orjson.dumps(
                event(org, i, type="regulation_issued", attributes={"regulation_id": f"Z{i}", "legal_review": "none"})))

        futures = {}
        for i in range(total):
            futures[i] = send(i)
            time.sleep(0.02)
        for _ in range(5):
            producer.flush()
            failed = [i for i, f in futures.items() if f.failed()]
            if not failed:
                break
            resent.extend(failed)
            futures = {i: send(i) for i in failed}
        producer.close()

    sender = threading.Thread(target=stream)
    sender.start()
    # mid-stream: once the worker has scored and committed some of it
    assert alerts_for(orgs, since, expect=1, timeout=60), "the worker never started scoring"
    stopped = subprocess.run([str(script), "stop"], capture_output=True, text=True)
    assert stopped.stdout.strip() == "kafka stopped", stopped
    time.sleep(35)  # past the producers' request timeout: checkpoints in flight fail, are aborted and sent again
    started = subprocess.run([str(script), "start"], capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    sender.join(timeout=180)
    alerts = alerts_for(orgs, since, expect=total, timeout=120)
    if len(alerts) != total or worker.proc.poll() is not None:
        on_topic = {orjson.loads(r.value)["event_id"] for r in read_since(EVENT_TOPICS["governance"], events_since,
                                                                          expect=10**9, timeout=5.0)}
        mine = {e for e in on_topic if e.startswith(f"B{run}-")}
        log = worker.log_path.read_text(encoding="utf-8", errors="replace")
        pytest.fail(f"{len(alerts)} alerts of {total}; {len(mine)} distinct events on the input topic; "
                    f"{len(resent)} sends failed and were sent again; worker exit {worker.proc.poll()}\n"
                    + "\n".join(line for line in log.splitlines()[-400:] if "Unable" not in line)[-8000:])


def test_the_worker_reloads_its_rules_on_sighup_and_rejects_a_broken_folder(tmp_path, rules_copy):
    from monitor.packs.rulefiles import load_pack

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


def drain(worker: Worker, deadline: float, kills: int = 0, seed: int = 0, others: tuple[Worker, ...] = ()) -> int:
    """Run ``worker`` until its group has no lag. With ``kills``, SIGKILL and
    restart it that many times, each when the (committed) lag first falls
    below a random share of what it was, so every kill lands mid-stream,
    wherever the batches and checkpoints are; returns how many kills there were.
    With ``others`` (more workers of the same group), each kill picks one of them all.

    The shares are above one half and the runs' checkpoints are small (a fortieth
    of the stream), so the lag is always seen below each share before it reaches zero."""
    import random

    rng = random.Random(seed)
    thresholds = sorted((rng.uniform(0.55, 0.95) for _ in range(kills)), reverse=True)
    start_lag, done, lag_at_kill = None, 0, 10**9
    while time.monotonic() < deadline:
        time.sleep(0.2)
        lag = group_lag(worker.app_id)
        if lag == 0:
            return done
        if start_lag is None and lag < 10**9:
            start_lag = lag
        # The next kill waits until the group has committed something since the last
        # one, so that kills spread over the stream instead of landing together on
        # workers still starting.
        if start_lag and done < len(thresholds) and lag <= thresholds[done] * start_lag and lag < lag_at_kill:
            victim = rng.choice((worker, *others))
            victim.stop(signal.SIGKILL)
            victim.start()
            done += 1
            lag_at_kill = lag
    raise AssertionError(f"{worker.app_id} did not catch up")


def ticket_evidence(worker: Worker, orgs: str) -> dict[str, list[str]]:
    """The ids of the events kept as each ticket's evidence, of the orgs whose ids start with ``orgs``."""
    from sqlalchemy import create_engine, text

    engine = create_engine(worker.db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("select e.dedup_key, e.event_id from ticket_evidence e join tickets t"
                                     " on t.dedup_key = e.dedup_key where t.org_id like :orgs"), {"orgs": orgs + "%"}).all()
    finally:
        engine.dispose()
    out: dict[str, list[str]] = {}
    for key, event_id in sorted(rows):
        out.setdefault(key, []).append(event_id)
    return out


def tickets_with_events(worker: Worker, orgs: str = "") -> dict[str, list[str]]:
    """Each ticket's events, of the orgs whose ids start with ``orgs``."""
    from sqlalchemy import create_engine, text

    engine = create_engine(worker.db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("select dedup_key, event_ids from tickets where org_id like :orgs"),
                                {"orgs": orgs + "%"}).all()
    finally:
        engine.dispose()
    return {k: sorted(ids if isinstance(ids, list) else orjson.loads(ids)) for k, ids in rows}


def assert_same_state(clean: Worker, killed: Worker, orgs: str) -> None:
    """The state both committed is the same: every window, total and alert of
    the orgs whose ids start with ``orgs``, and the offset each input partition
    has been applied to. Detector models (and
    their alerts' finding counts) are left out: how they learn depends on where
    batches begin and end (a fetch is a batch), which differs between any two
    runs, killed or not; tests/test_worker_core.py shows a redelivered batch
    leaves them exactly as a clean run does."""
    from monitor.packs.rulefiles import default_rules_dir, load_pack
    from tests.conftest import live_state, org_watermarks
    from tests.kafka_util import committed_table, read_to_end

    pack = load_pack(default_rules_dir())
    events = [r.value for topic in EVENT_TOPICS.values() for r in read_to_end(topic)]
    marks = org_watermarks(events)
    mine = (orgs.encode(), b"\x00applied\x1f")
    states = [{k: v for k, v in live_state(committed_table(f"{w.app_id}-riskwatch-state-changelog"), pack, marks,
                                           detectors=False).items() if k.startswith(mine)}
              for w in (clean, killed)]
    assert len(states[0]) > 1000
    differing = sorted(k for k in states[0].keys() | states[1].keys() if states[0].get(k) != states[1].get(k))
    assert not differing, (f"{len(differing)} state entries differ after kills, e.g. "
                           f"{[(k, states[0].get(k), states[1].get(k)) for k in differing[:3]]}")


def stream_for_this_run(tmp_path, events: int) -> str:
    """``events`` of the demo stream sent to the event topics, under orgs of
    this run only (returns their prefix): the topics also hold other tests'
    streams of the same generated orgs, and an org whose events arrive more
    than a window apart out of order is swept on a schedule a restart changes
    (see the note in monitor/core/scorer.py's sweep). The stream starts the day
    after the latest business time already on the topics, so that each
    partition runs forward in business time, as a live one does: a worker
    catching up then judges no further than every topic has been read (see
    monitor/core/reviews.py), which a replay of an older period after a newer
    one cannot show."""
    from connectors.file import JSONL_CONTRACT, run_file_connector
    from connectors.sink import KafkaSink
    from monitor.analyst.generator import CST, DEFAULT_START, generate
    from tests.conftest import org_watermarks
    from tests.kafka_util import read_to_end

    latest = max(org_watermarks(r.value for topic in EVENT_TOPICS.values() for r in read_to_end(topic)).values(),
                 default=DEFAULT_START.timestamp())
    start = dt.datetime.fromtimestamp(latest, CST).replace(hour=0, minute=0, second=0, microsecond=0)
    start = max(start + dt.timedelta(days=1), DEFAULT_START)
    orgs = f"R{uuid.uuid4().hex[:6]}-"
    path = tmp_path / "stream.jsonl"
    with open(path, "wb") as out:
        for line in generate(events=events, seed=99, malformed=0, start=start).lines:
            event_ = orjson.loads(line)
            event_["org_id"] = orgs + event_["org_id"]
            out.write(orjson.dumps(event_) + b"\n")
    sink = KafkaSink("kafka://127.0.0.1:9092")
    try:
        assert run_file_connector(path, JSONL_CONTRACT, sink).sent >= events
    finally:
        sink.close()
    return orgs


# Review deadlines judged by business time alone: the clock (an org gone quiet) would make
# the outcome depend on when the run ran and how long a restart took.
BY_BUSINESS_TIME = ("--quiet-after", str(365 * 86400))


def clean_run(tmp_path, checkpoint_events: int) -> Worker:
    """A worker of a new group that reads the topics to their end, never killed."""
    clean = Worker(tmp_path, f"rw-clean-{uuid.uuid4().hex[:6]}", checkpoint_events=checkpoint_events, extra=BY_BUSINESS_TIME)
    clean.start()
    try:
        drain(clean, time.monotonic() + 600)
    finally:
        clean.stop()
    return clean


def killed_run(tmp_path, clean: Worker, orgs: str, kills: int, workers: int, seed: int, checkpoint_events: int,
               db_url: str | None = None) -> None:
    """``workers`` workers of a new group, killed ``kills`` times between them
    mid-stream, end with the tickets (and their events and evidence) and the
    state of ``clean``, for the orgs whose ids start with ``orgs``."""
    killed_id = f"rw-killed-{uuid.uuid4().hex[:6]}"
    killed = [Worker(tmp_path, killed_id, f"w{i}", checkpoint_events=checkpoint_events, db_url=db_url,
                     extra=BY_BUSINESS_TIME) for i in range(workers)]
    for w in killed:
        w.start()
    try:
        assert drain(killed[0], time.monotonic() + 900, kills=kills, seed=seed, others=tuple(killed[1:])) == kills
    finally:
        for w in killed:
            w.stop()
    expected = tickets_with_events(clean, orgs)
    assert len(expected) > 10
    got = tickets_with_events(killed[0], orgs)
    assert got == expected, ticket_differences(got, expected)
    # the events behind each ticket, held by the state across the kills
    evidence, evidence_after_kills = ticket_evidence(clean, orgs), ticket_evidence(killed[0], orgs)
    assert sum(map(len, evidence.values())) > 100
    assert evidence_after_kills == evidence, ticket_differences(evidence_after_kills, evidence)
    assert_same_state(clean, killed[0], orgs)


def test_sigkill_at_random_moments_ends_with_the_alerts_tickets_and_state_of_a_clean_run(tmp_path):
    """20k events of the demo stream; one worker runs clean, another is killed three times mid-stream.

    (This found real bugs: state was written before the batch's alerts and tickets
    were durable, so a kill between the two lost a finding for good; a
    redelivery after a kill was learned twice by the detectors; the events
    behind tickets were lost with the process.)"""
    orgs = stream_for_this_run(tmp_path, 20_000)
    # Small checkpoints, so that the committed lag falls in steps and every kill lands mid-stream.
    clean = clean_run(tmp_path, checkpoint_events=500)
    killed_run(tmp_path, clean, orgs, kills=3, workers=1, seed=7, checkpoint_events=500)


@pytest.fixture(scope="module")
def soak_stream(tmp_path_factory):
    """100k events sent once, and the clean run every soak round is held to."""
    tmp = tmp_path_factory.mktemp("soak")
    orgs = stream_for_this_run(tmp, 100_000)
    return tmp, clean_run(tmp, checkpoint_events=2_500), orgs


@pytest.mark.soak
@pytest.mark.parametrize("repeat", range(20))
def test_soak_two_workers_killed_five_times_over_100k_events(soak_stream, postgres_url, repeat):
    """Opt-in (``-m soak``): 100k events, two workers sharing PostgreSQL, five SIGKILLs, twenty times over."""
    from tests.test_tickets import pg_schema_url

    tmp, clean, orgs = soak_stream
    killed_run(tmp, clean, orgs, kills=5, workers=2, seed=repeat, checkpoint_events=2_500,
               db_url=pg_schema_url(postgres_url))


def ticket_differences(got: dict[str, list[str]], expected: dict[str, list[str]]) -> str:
    """Which tickets differ, and by which events."""
    lines = [f"only after kills: {sorted(got.keys() - expected.keys())}",
             f"only in the clean run: {sorted(expected.keys() - got.keys())}"]
    for key in sorted(got.keys() & expected.keys()):
        if got[key] != expected[key]:
            extra, missing = sorted(set(got[key]) - set(expected[key])), sorted(set(expected[key]) - set(got[key]))
            lines.append(f"{key}: {len(got[key])} events against {len(expected[key])}; extra {extra}, missing {missing}")
    return "\n".join(lines)


def embedded_alert_keys(stream) -> set[str]:
    """The dedup keys of the alerts ``riskwatch run`` finds on a stream file."""
    alerts = stream.parent / "embedded.jsonl"
    run = subprocess.run([sys.executable, "-m", "monitor.cli", "run", "--input", str(stream), "--alerts-out", str(alerts),
                          "--db", "none", "--workers", "1"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return {a["dedup_key"] for a in map(orjson.loads, alerts.read_bytes().splitlines())}


def events_on_topics() -> int:
    from tests.kafka_util import read_to_end

    return sum(len(read_to_end(topic)) for topic in EVENT_TOPICS.values())


def test_sigterm_right_after_a_large_fetch_commits_every_alert_and_ticket_of_the_batch_in_hand(tmp_path, postgres_url):
    """A worker reading fetches of up to 50,000 events is sent SIGTERM the moment its
    counters show every record on the topics taken in: the batch in hand is
    scored, its tickets written, its alerts, state and offsets committed, and the
    worker leaves its group and exits 0 within 30 s. Its committed alerts are
    those the embedded runner finds on the same events, each ticket once."""
    from tests.test_tickets import pg_schema_url

    orgs = stream_for_this_run(tmp_path, 30_000)
    expected = embedded_alert_keys(tmp_path / "stream.jsonl")
    assert len(expected) > 50
    total = events_on_topics()
    since = end_offsets(ALERTS_TOPIC)
    worker = Worker(tmp_path, f"rw-term-{uuid.uuid4().hex[:6]}", metrics_port=free_port(),
                    db_url=pg_schema_url(postgres_url),
                    extra=("--batch-size", "50000", "--checkpoint-events", "1000000", *BY_BUSINESS_TIME))
    worker.start()
    try:
        wait_for(lambda: worker.taken_in() >= total or worker.proc.poll() is not None, 300, "the worker took in too little")
        assert worker.proc.poll() is None, f"the worker stopped after taking in {worker.taken_in()} of {total}"
        signalled = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        code = worker.proc.wait(timeout=60)
        took = time.monotonic() - signalled
    finally:
        worker.stop(signal.SIGKILL)
    print(f"SIGTERM after {total:,} events taken in: exit {code} in {took:.2f} s")
    log = worker.log_path.read_text(errors="replace")
    assert code == 0 and took < 30, log[-3000:]
    assert_committed_once(tmp_path / "stream.jsonl", orgs, since, expected, worker.db_url)
    assert group_lag(worker.app_id) == 0  # its offsets went with them
    assert "the last checkpoint committed" in log, log[-3000:]


def assert_committed_once(stream, orgs: str, since, expected: set[str], db_url: str) -> None:
    """The alerts committed (read_committed) for the stream's orgs are ``expected``, and each live one has one ticket."""
    committed = alerts_for({orjson.loads(line)["org_id"] for line in open(stream, "rb")}, since, expect=len(expected),
                           timeout=20)
    assert set(committed) == expected, (f"{len(expected - set(committed))} of {len(expected)} alerts not committed, "
                                        f"{len(set(committed) - expected)} not found by the embedded runner")
    tickets = ticket_counts(db_url, orgs)
    assert set(tickets) == {k for k, a in committed.items() if a["status"] == "live"} and set(tickets.values()) == {1}


def ticket_counts(db_url: str, orgs: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("select dedup_key, count(*) from tickets where org_id like :orgs group by dedup_key"),
                                {"orgs": orgs + "%"}).all()
    finally:
        engine.dispose()
    return dict(rows)


def broker_pid() -> int:
    from pathlib import Path

    status = subprocess.run([str(Path(__file__).parent.parent / "scripts" / "kafka-local.sh"), "status"],
                            capture_output=True, text=True).stdout
    return int(status.split("(pid ")[1].split(")")[0])


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_stop_that_cannot_commit_in_time_aborts_and_a_second_signal_stops_at_once(tmp_path, postgres_url):
    """The broker frozen (SIGSTOP) mid-stream: a SIGTERM's last checkpoint cannot
    commit, is aborted after --stop-within, and the worker exits 1 saying how
    many events will be scored again; a second SIGTERM stops a worker at once
    (exit 143). A third worker of the same group then reads to the end: the
    committed alerts are the embedded runner's, each ticket once."""
    import os

    from tests.test_tickets import pg_schema_url

    orgs = stream_for_this_run(tmp_path, 20_000)
    expected = embedded_alert_keys(tmp_path / "stream.jsonl")
    total, since, db_url, app_id = events_on_topics(), end_offsets(ALERTS_TOPIC), pg_schema_url(postgres_url), \
        f"rw-abort-{uuid.uuid4().hex[:6]}"
    broker = broker_pid()

    def frozen_mid_stream(name: str) -> Worker:
        """A worker that has scored events since the broker froze: work it cannot commit."""
        w = Worker(tmp_path, app_id, name, metrics_port=free_port(), db_url=db_url,
                   extra=("--stop-within", "3", *BY_BUSINESS_TIME))
        w.start()
        for share in (0.05, 0.15, 0.25, 0.35, 0.45):
            wait_for(lambda: w.taken_in() >= total * share or w.proc.poll() is not None, 300, f"{name} took too little in")
            assert w.proc.poll() is None and w.taken_in() < total, f"{name} read to the end before it could be stopped"
            os.kill(broker, signal.SIGSTOP)
            before, until = w.taken_in(), time.monotonic() + 3
            while w.taken_in() == before and time.monotonic() < until:  # records fetched before the freeze
                time.sleep(0.02)
            if w.taken_in() > before:
                return w
            os.kill(broker, signal.SIGCONT)  # nothing in hand at that moment: try further on
        raise AssertionError(f"{name} never scored anything while the broker was frozen")

    first = frozen_mid_stream("first")
    try:
        first.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "the last checkpoint was aborted" in first.log_path.read_text(errors="replace"), 15,
                 "the last checkpoint was not aborted")
    finally:
        os.kill(broker, signal.SIGCONT)
    code = first.proc.wait(timeout=30)
    log = first.log_path.read_text(errors="replace")
    assert code == 1, log[-3000:]
    assert re.search(r"aborted after \d+\.\d+ s; [1-9][\d,]* events scored since the last committed checkpoint "
                     r"will be scored again", log), log[-3000:]

    second = frozen_mid_stream("second")
    try:
        second.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        signalled = time.monotonic()
        second.proc.send_signal(signal.SIGTERM)
        code = second.proc.wait(timeout=10)
        took = time.monotonic() - signalled
    finally:
        os.kill(broker, signal.SIGCONT)
    assert code == 128 + signal.SIGTERM and took < 2, (code, took)

    third = Worker(tmp_path, app_id, "third", db_url=db_url, extra=BY_BUSINESS_TIME)
    third.start()
    try:
        drain(third, time.monotonic() + 300)
    finally:
        third.stop()
    assert_committed_once(tmp_path / "stream.jsonl", orgs, since, expected, db_url)


def test_the_group_coordinator_confirms_a_member_and_denies_one_it_dropped():
    # Before renewing a producer the worker asks the coordinator whether it is still a member.
    import asyncio

    from aiokafka import AIOKafkaConsumer

    from monitor.runners.worker import MembershipUnconfirmed, confirm_membership
    from tests.kafka_util import BROKER

    group = f"rw-test-member-{uuid.uuid4().hex[:8]}"

    async def check() -> None:
        consumer = AIOKafkaConsumer(DEADLETTER_TOPIC, bootstrap_servers=BOOTSTRAP, group_id=group)
        await consumer.start()
        try:
            await consumer.getmany(timeout_ms=2000)  # joined, assigned
            member = consumer._coordinator.member_id
            assert member
            await confirm_membership(BROKER, group, member)  # listed: no error
            with pytest.raises(MembershipUnconfirmed):
                await confirm_membership(BROKER, group, f"{member}-dropped")
        finally:
            await consumer.stop()
        with pytest.raises(MembershipUnconfirmed):  # it left: the group is empty
            await confirm_membership(BROKER, group, member)

    asyncio.run(check())
