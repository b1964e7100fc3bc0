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
- latency at a steady rate (default 3,000 events/s): for events that raise an
  alert, the time from the producer's send to the worker's alert (the Kafka
  CreateTime of both records), p50 / p99 / max (target p99 <= 50 ms).

    python benchmarks/bench_kafka.py [--events 100000] [--rate 3000] [--seconds 20] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
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


def scored(ports: list[int]) -> float:
    total = 0.0
    for port in ports:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith(("riskwatch_events_in_total", "riskwatch_events_rejected_total")):
                total += float(line.rsplit(" ", 1)[1])
    return total


_PORTS = iter(range(29400 + (os.getpid() % 200) * 16, 65000))


def start_workers(n: int, app_id: str) -> tuple[list[subprocess.Popen], list[int]]:
    procs, ports = [], []
    for _ in range(n):
        port = next(_PORTS)  # a new port each time: the last run's may not be free yet
        procs.append(subprocess.Popen([sys.executable, "-m", "monitor.cli", "worker", "--app-id", app_id, "--db", "none",
                                       "--metrics-port", str(port), "--batch-size", "10000"],
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


def worker_alone(workers: int) -> tuple[int, float, float]:
    """A fresh group reading every event on the topics (nothing being produced):
    (events, the workers' events/s from their first scored event to the last,
    raw aiokafka events/s over the same events)."""
    first = end_offsets(EVENT_TOPICS.values(), beginning=True)
    total = sum(end_offsets(EVENT_TOPICS.values()).values()) - sum(first.values())
    procs, ports = start_workers(workers, f"bench-alone-{uuid.uuid4().hex[:6]}")
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


def throughput(events: int, workers: int) -> None:
    path = CACHE / f"kafka-{events}.jsonl"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "monitor.cli", "generate", "--out", str(path), "--events", str(events)],
                       check=True, stdout=subprocess.DEVNULL)
    lines = sum(1 for line in open(path, "rb") if line.strip())
    before = end_offsets(EVENT_TOPICS.values())
    # Workers first, reading from the current end: only this run's events count.
    procs, ports = start_workers(workers, f"bench-{uuid.uuid4().hex[:6]}")
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
    total, alone, raw_all = worker_alone(workers)
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


def latency(rate: int, seconds: int, workers: int) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    run = uuid.uuid4().hex[:6]
    procs, ports = start_workers(workers, f"bench-lat-{run}")
    history = sum(end_offsets(EVENT_TOPICS.values()).values())
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not (all(_ready(p) for p in ports) and scored(ports) >= history):
        time.sleep(0.5)  # catch up with what is already in the topics
    time.sleep(8)  # let the group settle before the clock starts
    alerts_before = end_offsets([ALERTS_TOPIC])
    producer = KafkaProducer(bootstrap_servers=[BOOTSTRAP], acks="all", enable_idempotence=True, linger_ms=0)
    for topic in EVENT_TOPICS.values():  # connect and learn the partitions before the clock starts
        producer.partitions_for(topic)
    sent_at: dict[str, float] = {}
    total = rate * seconds
    started = time.perf_counter()
    for i in range(total):
        org = f"L{run}-{i % 12}"
        if i % 10 == 0:  # one in ten raises an alert: a regulation issued without review
            event = {"event_id": f"{run}-{i}", "source": "bench", "domain": "governance", "type": "regulation_issued",
                     "occurred_at": "2026-06-01T10:00:00+08:00", "org_id": org,
                     "attributes": {"regulation_id": f"{run}-{i}", "legal_review": "none"}}
            sent_at[f"{run}-{i}"] = time.time()
        else:
            event = {"event_id": f"{run}-{i}", "source": "bench", "domain": "finance", "type": "journal_entry",
                     "occurred_at": "2026-06-01T10:00:00+08:00", "org_id": org, "amount": 1000 + i,
                     "attributes": {"entry_no": f"{run}-{i}", "manual": False}}
        producer.send(EVENT_TOPICS[event["domain"]], key=org.encode(), value=orjson.dumps(event))
        ahead = (i + 1) / rate - (time.perf_counter() - started)
        if ahead > 0:
            time.sleep(ahead)
    producer.flush()
    achieved = total / (time.perf_counter() - started)
    consumer = KafkaConsumer(bootstrap_servers=[BOOTSTRAP], enable_auto_commit=False)
    consumer.assign(list(alerts_before))
    for tp, off in alerts_before.items():
        consumer.seek(tp, off)
    lat: list[float] = []
    deadline = time.monotonic() + 60
    while sent_at and time.monotonic() < deadline:  # sent_at holds the alerts not seen yet
        for records in consumer.poll(timeout_ms=500).values():
            for r in records:
                alert = orjson.loads(r.value)
                eid = alert["event_ids"][0] if alert["event_ids"] else None
                if eid in sent_at:
                    lat.append(r.timestamp / 1000 - sent_at.pop(eid))
    consumer.close()
    stop(procs)
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    print(f"latency at {achieved:,.0f} events/s for {seconds} s, {len(lat)} alerts: p50 {q(0.5):.1f} ms, "
          f"p99 {q(0.99):.1f} ms, max {lat[-1] * 1000:.1f} ms (target p99 <= 50 ms); {len(sent_at)} alerts missing")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rate", type=int, default=3000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()
    create_topics(BROKER)
    if not args.skip_throughput:
        throughput(args.events, args.workers)
    if not args.skip_latency:
        latency(args.rate, args.seconds, args.workers)


if __name__ == "__main__":
    main()
