"""riskwatch beside a peer: a Quix Streams app of three of its rules, on the same events.

Needs the local broker (scripts/kafka-local.sh start). The event and alert
topics are deleted and made again, then filled once with N demo events by
`riskwatch connect file`. Then, in interleaved rounds on the same pre-filled
topics, each reading everything from the start as a fresh consumer group:

- the riskwatch worker with the whole default pack (rules, detectors, review
  controls), exactly-once, as `riskwatch worker` runs by default;
- benchmarks/peers/quix_rules.py (Quix Streams, in its own environment made
  from benchmarks/peers/requirements-quix.txt) with proc_split_purchase,
  fin_duplicate_invoice and fin_payment_over_contract, under each of the
  settings Quix offers a user (its defaults, a shorter poll, longer commits
  and bigger buffers, exactly-once).

Prints events/s per round and the medians, Quix's best setting beside its
default, and the ratio of riskwatch to Quix's best (target >= 2.5). Then it
checks the alerts agree: the keys the three rules alerted on in riskwatch's
alert topic against those of every Quix run.

    python benchmarks/bench_peers.py [--events 200000] [--rounds 3] [--settings default "poll 0.1 s" ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent / "peers"))

from bench_kafka import BOOTSTRAP, BROKER, CACHE, demo_stream, end_offsets, worker_alone  # noqa: E402

from monitor.packs.rulefiles import default_rules_dir, load_pack  # noqa: E402
from monitor.runners.topics import ALERTS_TOPIC, EVENT_TOPICS, create_topics  # noqa: E402
from quix_settings import SETTINGS  # noqa: E402

PEERS = Path(__file__).resolve().parent / "peers"
RULES = ("proc_split_purchase", "fin_duplicate_invoice", "fin_payment_over_contract")
QUIX_ALERTS = "peer.quix.alerts"


def quix_python() -> Path:
    """The Quix environment's interpreter, made on first use."""
    venv = CACHE / "peers" / "quix-venv"
    python = venv / "bin" / "python"
    requirements = PEERS / "requirements-quix.txt"
    stamp = venv / "requirements.txt"
    if not python.exists() or not stamp.exists() or stamp.read_bytes() != requirements.read_bytes():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)
        stamp.write_bytes(requirements.read_bytes())
    return python


def fresh_topics() -> None:
    """Delete the riskwatch topics and the peer's alert topic, and make the riskwatch ones again."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=[BOOTSTRAP])
    try:
        names = [*EVENT_TOPICS.values(), ALERTS_TOPIC, QUIX_ALERTS]
        present = [n for n in names if n in set(admin.list_topics())]
        if present:
            admin.delete_topics(present)
        deadline = time.monotonic() + 60
        while set(present) & set(admin.list_topics()) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        admin.close()
    for _ in range(20):  # the broker may still be finishing the deletion
        try:
            create_topics(BROKER)
            return
        except Exception:  # noqa: BLE001 - TopicAlreadyExists while marked for deletion
            time.sleep(1)
    create_topics(BROKER)


def fill(events: int) -> int:
    path = demo_stream(events)
    subprocess.run([sys.executable, "-m", "monitor.cli", "connect", "file", "--input", str(path), "--broker", BROKER],
                   check=True, stdout=subprocess.DEVNULL)
    return sum(end_offsets(EVENT_TOPICS.values()).values())


def run_quix(python: Path, events: int, setting: str, thresholds: dict, keys_out: Path) -> dict:
    out = subprocess.run([str(python), str(PEERS / "quix_rules.py"), "--broker", BOOTSTRAP,
                          "--group", f"bench-quix-{uuid.uuid4().hex[:6]}", "--topics", ",".join(EVENT_TOPICS.values()), "--events", str(events),
                          "--thresholds", json.dumps(thresholds), "--setting", setting, "--keys-out", str(keys_out)],
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"the Quix app failed ({setting}):\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["events"] < events:
        raise SystemExit(f"the Quix app read {result['events']} of {events} events ({setting})")
    return result


def riskwatch_keys() -> set[str]:
    """The dedup keys the three rules alerted on, from the committed alert topic."""
    from kafka import KafkaConsumer

    ends = end_offsets([ALERTS_TOPIC])
    consumer = KafkaConsumer(bootstrap_servers=[BOOTSTRAP], enable_auto_commit=False, isolation_level="read_committed")
    try:
        consumer.assign(list(ends))
        consumer.seek_to_beginning()
        keys: set[str] = set()
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < end for tp, end in ends.items()) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    alert = orjson.loads(r.value) if r.value else None
                    if alert and alert["rule_id"] in RULES:
                        keys.add(alert["dedup_key"])
        return keys
    finally:
        consumer.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    args = ap.parse_args()
    python = quix_python()
    threshold = load_pack(default_rules_dir()).params["tender_threshold"]
    if threshold.per_org:
        raise SystemExit("the Quix app knows one tender threshold per category; params.yaml sets some per org")
    thresholds = threshold.default
    fresh_topics()
    total = fill(args.events)
    print(f"{total:,} events on the topics; {args.rounds} rounds, interleaved")
    rates: dict[str, list[float]] = {"riskwatch": []}
    quix_keys: dict[str, set[str]] = {}
    for r in range(args.rounds):
        events, rate, raw = worker_alone(1)
        rates["riskwatch"].append(rate)
        print(f"round {r + 1}: riskwatch worker, whole pack, exactly-once: {rate:,.0f} events/s "
              f"(raw aiokafka {raw:,.0f})", flush=True)
        for setting in args.settings:
            keys_out = CACHE / "peers" / f"quix-keys-{uuid.uuid4().hex[:6]}.json"
            result = run_quix(python, total, setting, thresholds, keys_out)
            rate = result["events"] / result["seconds"]
            rates.setdefault(f"quix: {setting}", []).append(rate)
            quix_keys.setdefault(setting, set()).update(json.loads(keys_out.read_text()))
            keys_out.unlink()
            print(f"round {r + 1}: Quix Streams 3 app, three rules, {setting}: {rate:,.0f} events/s", flush=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print("\nmedians:")
    for name, value in medians.items():
        print(f"  {name}: {value:,.0f} events/s")
    quix = {name: value for name, value in medians.items() if name.startswith("quix")}
    best = max(quix, key=quix.get)
    default = quix.get("quix: default")
    if default:
        print(f"Quix's best setting ({best.removeprefix('quix: ')}): {quix[best]:,.0f} events/s, "
              f"{quix[best] / default:.2f}x its default ({default:,.0f})")
    print(f"riskwatch / Quix at its best: {medians['riskwatch'] / quix[best]:.2f} (target >= 2.5)")

    ours = riskwatch_keys()
    print(f"\nalerts of the three rules: riskwatch {len(ours)} keys "
          f"({', '.join(f'{rule} {sum(k.startswith(rule + chr(124)) for k in ours)}' for rule in RULES)})")
    agree = True
    for setting, theirs in quix_keys.items():
        same = theirs == ours
        agree &= same
        print(f"  Quix, {setting}: {len(theirs)} keys, {'the same' if same else 'DIFFERENT'}")
        for key in sorted(ours - theirs)[:5]:
            print(f"    only riskwatch: {key}")
        for key in sorted(theirs - ours)[:5]:
            print(f"    only Quix: {key}")
    if not agree:
        raise SystemExit("the alerts do not agree")


if __name__ == "__main__":
    main()
