"""The Kafka pipeline: file connector -> Kafka -> faust worker -> alerts.

Needs the local broker (scripts/kafka-local.sh start). Prints:

- throughput: N demo events sent by `riskwatch connect file` while a fresh
  worker scores them, events/s from the first send to the last event scored;
  beside it the raw consume rate of an aiokafka consumer reading the same
  messages and doing nothing, and the ratio (target >= 30,000 events/s and >= 0.5);
  faust's own floor: a faust agent taking the same topics in batches and
  doing nothing (benchmarks/faust_floor.py), the ceiling of a worker built on
  faust's agents; and the worker alone: a fresh group reading everything on
  the topics with nothing being produced, against raw aiokafka over the same
  events (what the worker costs, without the connector sharing the cores);
- latency at a steady rate (default 10,000 events/s, one event in 200 raising
  an alert as in the demo stream, SQLite tickets): from the producer's send to the alert being
  readable ``read_committed`` (its checkpoint committed), and to the ticket row
  being in the database, both as seen by a reader polling beside the
  producer; p50 / p99 / max (target p99 <= 250 ms).

    python benchmarks/bench_kafka.py [--events 100000] [--rate 10000] [--seconds 20] [--workers 1]
                                    [--worker-option=--checkpoint-every=1 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.runners.topics import ALERTS_TOPIC, EVENT_TOPICS, create_topics  # noqa: E402

BROKER = os.environ.get("RISKWATCH_BROKER", "kafka://127.0.0.1:9092")
BOOTSTRAP = BROKER.split("://", 1)[-1]
CACHE = Path.home() / ".cache" / "riskwatch-bench"


def metric_sum(ports: list[int], *prefixes: str) -> float:
    """The sum over the workers of the metric samples whose names start with ``prefixes``."""
    total = 0.0
    for port in ports:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            continue
        total += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefixes))
    return total


def scored(ports: list[int]) -> float:
    return metric_sum(ports, "riskwatch_events_in_total", "riskwatch_events_rejected_total")


_PORTS = iter(range(29400 + (os.getpid() % 200) * 16, 65000))


def start_workers(n: int, app_id: str, db: str = "none", extra: tuple[str, ...] = ()) -> tuple[list[subprocess.Popen], list[int]]:
    procs, ports = [], []
    for _ in range(n):
        port = next(_PORTS)  # a new port each time: the last run's may not be free yet
        procs.append(subprocess.Popen([sys.executable, "-m", "monitor.cli", "worker", "--app-id", app_id, "--db", db,
                                       "--metrics-port", str(port), "--batch-size", "10000", *extra],
                                      stdout=subprocess.DEVNULL, stderr=open(os.environ.get("BENCH_WORKER_LOG", os.devnull), "ab")))
        ports.append(port)
    return procs, ports


def stop(procs) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


async def raw_consume(count: int, since: dict) -> float:
    """Seconds for an aiokafka consumer to read ``count`` messages from ``since``."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, max_poll_records=5000)
    await consumer.start()
    try:
        consumer.assign(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        seen, started = 0, time.perf_counter()
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            seen += sum(len(b) for b in batches.values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def end_offsets(topics, beginning: bool = False) -> dict:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=[BOOTSTRAP])
    try:
        tps = [TopicPartition(t, p) for t in topics for p in c.partitions_for_topic(t) or ()]
        return c.beginning_offsets(tps) if beginning else c.end_offsets(tps)
    finally:
        c.close()


def worker_alone(workers: int, extra: tuple[str, ...] = ()) -> tuple[int, float, float]:
    """A fresh group reading every event on the topics (nothing being produced):
    (events, the workers' events/s from their first scored event to the last,
    raw aiokafka events/s over the same events)."""
    first = end_offsets(EVENT_TOPICS.values(), beginning=True)
    total = sum(end_offsets(EVENT_TOPICS.values()).values()) - sum(first.values())
    procs, ports = start_workers(workers, f"bench-alone-{uuid.uuid4().hex[:6]}", extra=extra)
    start: tuple[float, float] | None = None
    deadline = time.monotonic() + 900
    try:
        while (done := scored(ports)) < total and time.monotonic() < deadline:
            if start is None and done > 0:
                start = (time.perf_counter(), done)
            time.sleep(0.05)
        elapsed = time.perf_counter() - start[0] if start else float("nan")
    finally:
        stop(procs)
    if done < total or start is None:
        raise SystemExit(f"workers scored {done:,.0f} of {total:,} events in 900 s")
    return total, (total - start[1]) / elapsed, total / asyncio.run(raw_consume(total, first))


def demo_stream(events: int) -> Path:
    """A demo stream of about ``events`` events, generated once and cached."""
    path = CACHE / f"kafka-{events}.jsonl"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "monitor.cli", "generate", "--out", str(path), "--events", str(events)],
                       check=True, stdout=subprocess.DEVNULL)
    return path


def throughput(events: int, workers: int, extra: tuple[str, ...] = ()) -> None:
    path = demo_stream(events)
    lines = sum(1 for line in open(path, "rb") if line.strip())
    before = end_offsets(EVENT_TOPICS.values())
    # Workers first, reading from the current end: only this run's events count.
    procs, ports = start_workers(workers, f"bench-{uuid.uuid4().hex[:6]}", extra=extra)
    history = sum(before.values())  # a fresh group reads the topics from the start: let it catch up first
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not (all(_ready(p) for p in ports) and scored(ports) >= history):
        time.sleep(0.5)
    if time.monotonic() >= deadline:
        stop(procs)
        raise SystemExit("workers did not start or catch up")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "monitor.cli", "connect", "file", "--input", str(path), "--broker", BROKER],
                   check=True, stdout=subprocess.DEVNULL)
    connector_done = time.perf_counter() - started
    after = end_offsets(EVENT_TOPICS.values())
    sent = sum(after.values()) - sum(before.values())  # malformed lines went to the dead-letter topic
    target = sum(after.values())
    while scored(ports) < target and time.perf_counter() - started < 600:
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    stop(procs)
    raw = asyncio.run(raw_consume(sent, before))
    rate, raw_rate = sent / elapsed, sent / raw
    floor = faust_floor(target)
    print(f"throughput: {sent:,} events ({lines:,} lines), connector -> Kafka -> {workers} worker(s): {rate:,.0f} events/s "
          f"({elapsed:.1f} s; the connector alone took {connector_done:.1f} s = {lines / connector_done:,.0f} lines/s)")
    print(f"raw aiokafka consume of the same messages: {raw_rate:,.0f} events/s; ratio {rate / raw_rate:.3f} "
          f"(targets: >= 30,000 events/s, >= 0.5)")
    print(f"faust's own floor (an agent taking batches of the same topics and doing nothing): {floor:,.0f} events/s; "
          f"the worker reaches {rate / floor:.2f} of it")
    total, alone, raw_all = worker_alone(workers, extra)
    print(f"worker(s) alone, topics pre-filled ({total:,} events, read from the start): {alone:,.0f} events/s; "
          f"raw aiokafka over the same {raw_all:,.0f} events/s; ratio {alone / raw_all:.3f}")


def faust_floor(count: int) -> float:
    """Events/s of benchmarks/faust_floor.py reading ``count`` events from the start of the topics."""
    script = Path(__file__).resolve().parent / "faust_floor.py"
    out = subprocess.run([sys.executable, str(script), str(count), "worker", "-l", "warn"], capture_output=True,
                         text=True, timeout=900)
    # faust's worker logs what a program prints (as a warning, on stderr)
    line = next(line for line in (out.stdout + out.stderr).splitlines() if " floor " in f" {line}")
    _, events, seconds = line[line.index("floor "):].split()[:3]
    return int(events) / float(seconds)


def _ready(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1)
        return True
    except OSError:
        return False


class Watch:
    """Seen times, by a thread beside the producer, of what a person waiting
    sees: alerts readable ``read_committed`` (the worker's checkpoint has
    committed them) and ticket rows in the database, each keyed by the event
    that raised it."""

    def __init__(self, alerts_since: dict, db: Path):
        import threading

        self.alerts: dict[str, float] = {}  # event id -> when its alert became readable
        self._tickets: dict[str, float] = {}  # dedup key -> when its ticket row was seen
        self._dedup_event: dict[str, str] = {}  # dedup key -> the event of its alert
        self._since, self._db = alerts_since, db
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._read_alerts, daemon=True),
                         threading.Thread(target=self._read_tickets, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_alerts(self) -> None:
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(bootstrap_servers=[BOOTSTRAP], enable_auto_commit=False,
                                 isolation_level="read_committed", fetch_max_wait_ms=10)
        consumer.assign(list(self._since))
        for tp, off in self._since.items():
            consumer.seek(tp, off)
        while not self._stop.is_set():
            for records in consumer.poll(timeout_ms=10).values():
                now = time.time()
                for r in records:
                    alert = orjson.loads(r.value)
                    if alert["event_ids"]:
                        self.alerts.setdefault(alert["event_ids"][0], now)
                        self._dedup_event.setdefault(alert["dedup_key"], alert["event_ids"][0])
        consumer.close()

    def _read_tickets(self) -> None:
        import sqlite3

        last = 0
        while not self._stop.is_set():
            try:
                with sqlite3.connect(self._db, timeout=1) as conn:
                    rows = conn.execute("select id, dedup_key from tickets where id > ?", (last,)).fetchall()
            except sqlite3.OperationalError:  # not created yet, or busy: look again
                rows = []
            now = time.time()
            for ticket_id, dedup_key in rows:
                self._tickets.setdefault(dedup_key, now)
                last = max(last, ticket_id)
            time.sleep(0.01)

    @property
    def tickets(self) -> dict[str, float]:
        """Event id -> when its ticket row was seen (known once its alert was read)."""
        return {self._dedup_event[d]: t for d, t in list(self._tickets.items()) if d in self._dedup_event}

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)


def latency(rate: int, seconds: int, workers: int, alert_every: int, extra: tuple[str, ...] = ()) -> None:
    """Produce -> alert readable read_committed, and produce -> ticket row, at a steady rate."""
    import tempfile

    run = uuid.uuid4().hex[:6]
    db = Path(tempfile.mkdtemp()) / "tickets.db"
    procs, ports = start_workers(workers, f"bench-lat-{run}", db=f"sqlite:///{db}", extra=extra)
    history = sum(end_offsets(EVENT_TOPICS.values()).values())
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not (all(_ready(p) for p in ports) and scored(ports) >= history):
        time.sleep(0.5)  # catch up with what is already in the topics
    time.sleep(8)  # let the group settle before the clock starts
    watch = Watch(end_offsets([ALERTS_TOPIC]), db)
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "linger.ms": 0,
                         "partitioner": "murmur2_random"})
    producer.list_topics(timeout=10)  # connected before the clock starts
    sent_at: dict[str, float] = {}
    total = rate * seconds
    # Ordinary journal amounts: log-uniform, so their first digits follow Benford's law (the
    # journal detector stays quiet) and none stands out to the amount detector.
    rng = random.Random(7)
    amounts = [round(10 ** rng.uniform(2, 6), 2) for _ in range(4096)]
    started = time.perf_counter()
    for i in range(total):
        org = f"L{run}-{i % 12}"
        if i % alert_every == 0:  # a regulation issued without legal review: it alerts
            event = {"event_id": f"{run}-{i}", "source": "bench", "domain": "governance", "type": "regulation_issued",
                     "occurred_at": "2026-06-01T10:00:00+08:00", "org_id": org,
                     "attributes": {"regulation_id": f"{run}-{i}", "legal_review": "none"}}
            sent_at[f"{run}-{i}"] = time.time()
        else:
            event = {"event_id": f"{run}-{i}", "source": "bench", "domain": "finance", "type": "journal_entry",
                     "occurred_at": "2026-06-01T10:00:00+08:00", "org_id": org, "amount": amounts[i % len(amounts)],
                     "attributes": {"entry_no": f"{run}-{i}", "manual": False}}
        producer.produce(EVENT_TOPICS[event["domain"]], orjson.dumps(event), org.encode())
        producer.poll(0)
        ahead = (i + 1) / rate - (time.perf_counter() - started)
        if ahead > 0:
            time.sleep(ahead)
    producer.flush(30)
    achieved = total / (time.perf_counter() - started)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (sent_at.keys() <= watch.alerts.keys() and sent_at.keys() <= watch.tickets.keys()):
        time.sleep(0.2)
    watch.stop()
    commits = metric_sum(ports, "riskwatch_checkpoint_seconds_count ")
    committing = metric_sum(ports, "riskwatch_checkpoint_seconds_sum ")
    stop(procs)
    print(f"latency at {achieved:,.0f} events/s for {seconds} s, {len(sent_at)} events that alert"
          f"{' (' + ' '.join(extra) + ')' if extra else ''}:")
    for what, seen in (("alert readable (read_committed)", watch.alerts), ("ticket row in the database", watch.tickets)):
        lat = sorted(seen[e] - t for e, t in sent_at.items() if e in seen)
        missing = sum(e not in seen for e in sent_at)
        if not lat:
            print(f"  produce -> {what}: none seen; {missing} missing")
            continue
        q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
        print(f"  produce -> {what}: p50 {q(0.5):.0f} ms, p99 {q(0.99):.0f} ms, max {lat[-1] * 1000:.0f} ms "
              f"(target p99 <= 250 ms); {missing} missing")
    if commits:
        print(f"  {commits:,.0f} checkpoints in the run so far, {committing / commits * 1000:.0f} ms each to commit on average")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--alert-every", type=int, default=200,
                    help="One event in this many alerts (200: 0.5%%, the demo stream's share)")
    ap.add_argument("--worker-option", action="append", default=[],
                    help="An option for the workers, e.g. --worker-option=--alerts-within=1")
    args = ap.parse_args()
    create_topics(BROKER)
    if not args.skip_throughput:
        throughput(args.events, args.workers, tuple(args.worker_option))
    if not args.skip_latency:
        latency(args.rate, args.seconds, args.workers, args.alert_every, tuple(args.worker_option))


if __name__ == "__main__":
    main()
