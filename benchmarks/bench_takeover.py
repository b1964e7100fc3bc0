"""A worker taking over partitions: what recovering their state from the changelog costs.

After every rebalance a worker empties its table and reads each of its
partitions' changelog from the beginning (the changelog is the truth; see
README "Zombies are fenced"). This measures what that costs as state grows.

For each size, with a fresh app id on the local broker (scripts/kafka-local.sh start):

1. worker A scores ``size`` demo events sent by ``riskwatch connect file``;
2. A is stopped (SIGTERM: its last checkpoint commits);
3. worker B starts under the same app id, and a probe of 100 new events is sent
   at once;
4. the takeover is the time from B's start until B has scored the probe: the
   process start, the group join, the recovery of every partition's state, and
   the probe's scoring. Beside it: the changelog records B read.

The smallest size is the baseline: the ratio says what a large state adds.

    python benchmarks/bench_takeover.py [--sizes 2000,100000,500000] [--worker-option=--loglevel=info ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kafka import BROKER, CACHE, demo_stream, end_offsets, scored, start_workers, stop  # noqa: E402

from monitor.runners.topics import EVENT_TOPICS, create_topics  # noqa: E402

PROBE = 100


def probe_file(source: Path, out: Path) -> Path:
    """``PROBE`` events from the stream's end, under new ids: events B has not seen."""
    tag, probe = uuid.uuid4().hex[:8], []
    for line in [line for line in open(source, "rb") if line.strip()][-5 * PROBE:]:
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and isinstance(event.get("event_id"), str) and len(probe) < PROBE:
            event["event_id"] = f"{event['event_id']}-probe-{tag}"
            probe.append(orjson.dumps(event) + b"\n")
    out.write_bytes(b"".join(probe))
    return out


def send(path: Path) -> None:
    subprocess.run([sys.executable, "-m", "monitor.cli", "connect", "file", "--input", str(path), "--broker", BROKER],
                   check=True, stdout=subprocess.DEVNULL)


def on_topics() -> int:
    return sum(end_offsets(EVENT_TOPICS.values()).values()) - sum(end_offsets(EVENT_TOPICS.values(), beginning=True).values())


def wait_scored(ports: list[int], target: float, limit: float) -> float:
    deadline = time.monotonic() + limit
    while (done := scored(ports)) < target:
        if time.monotonic() > deadline:
            raise SystemExit(f"scored {done:,.0f} of {target:,.0f} in {limit:.0f} s")
        time.sleep(0.05)
    return time.perf_counter()


def changelog_records(app_id: str) -> int:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=[BROKER.split("://", 1)[-1]])
    try:
        topics = [t for t in consumer.topics() if t.startswith(app_id) and t.endswith("changelog")]
    finally:
        consumer.close()
    return sum(end_offsets(topics).values()) if topics else 0


def takeover(size: int, extra: tuple[str, ...] = ()) -> tuple[int, float, int]:
    """(events A scored — what the topics hold, earlier sizes' too —, seconds from
    B's start to B's scoring of the probe, changelog records)."""
    app_id = f"bench-takeover-{uuid.uuid4().hex[:6]}"
    source = demo_stream(size)
    a, a_ports = start_workers(1, app_id, extra=extra)
    try:
        send(source)
        scored_by_a = on_topics()
        wait_scored(a_ports, scored_by_a, 900)  # a fresh group reads whatever the topics hold
    finally:
        stop(a)
    records = changelog_records(app_id)
    probe = probe_file(source, CACHE / f"probe-{app_id}.jsonl")
    before = on_topics()
    b, b_ports = start_workers(1, app_id, extra=extra)
    started = time.perf_counter()
    try:
        send(probe)
        sent = on_topics() - before
        # B scores only what A had not committed, plus the probe; the metrics count from B's start.
        done = wait_scored(b_ports, sent, 900)
    finally:
        stop(b)
        probe.unlink(missing_ok=True)
    return scored_by_a, done - started, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,100000,500000", help="events scored before the takeover, comma-separated")
    parser.add_argument("--worker-option", action="append", default=[], help="passed to both workers, e.g. --worker-option=--loglevel=info")
    args = parser.parse_args()
    create_topics(BROKER)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = [takeover(size, tuple(args.worker_option)) for size in sizes]
    base = results[0]
    for events, seconds, records in results:
        print(f"takeover after {events:>9,} events scored: {seconds:6.2f} s, {records:>9,} changelog records read; "
              f"{seconds / base[1]:.2f} x the baseline ({base[0]:,} events)")


if __name__ == "__main__":
    main()
