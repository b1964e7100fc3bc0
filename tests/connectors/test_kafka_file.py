"""The file connector against the real broker: keys, topics, dead letters with headers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from monitor.runners.topics import ALERTS_TOPIC, DEADLETTER_TOPIC, EVENT_TOPICS, check_topics, create_topics
from tests.kafka_util import end_offsets, read_since

ROOT = Path(__file__).parent.parent.parent


def test_topics_are_created_once_and_checked(kafka_broker):
    created, existing = create_topics(kafka_broker)
    assert created == [] and set(existing) == {*EVENT_TOPICS.values(), ALERTS_TOPIC, DEADLETTER_TOPIC}
    assert check_topics(kafka_broker) == []


def test_connect_file_sends_events_keyed_by_org_and_dead_letters_the_rest(kafka_broker):
    events_before = end_offsets(EVENT_TOPICS["finance"])
    dead_before = end_offsets(DEADLETTER_TOPIC)
    out = subprocess.run([sys.executable, "-m", "monitor.cli", "connect", "file",
                          "--input", str(ROOT / "connectors" / "samples" / "erp_payments.csv"),
                          "--mapping", str(ROOT / "connectors" / "mappings" / "erp_payments.yaml"),
                          "--broker", kafka_broker], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "read 5 = sent 2 + dead-lettered 3" in out.stdout
    events = read_since(EVENT_TOPICS["finance"], events_before, expect=2)
    assert sorted((r.key, orjson.loads(r.value)["event_id"]) for r in events) == [
        (b"SUB01", "FK-FKD2026060001"), (b"SUB01", "FK-FKD2026060002")]
    assert len({r.partition for r in events}) == 1  # one org, one partition
    letters = read_since(DEADLETTER_TOPIC, dead_before, expect=3)
    headers = [dict((k, v.decode()) for k, v in r.headers) for r in letters]
    assert [h["riskwatch.reason"] for h in headers] == ["bad_timestamp", "negative_amount", "wrong_type"]
    assert all(h["riskwatch.source"].endswith("erp_payments.csv") for h in headers)
    assert orjson.loads(letters[1].value)["金额"] == "-5"
