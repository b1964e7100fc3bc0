"""The file connector against the real broker: keys, topics, dead letters with headers."""

from __future__ import annotations

import subprocess
import sys
import uuid
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


def test_the_sink_puts_each_org_on_the_partition_its_state_is_kept_in(kafka_broker):
    # The worker keeps an org's state on murmur2(org)'s changelog partition; its events must come in there.
    from connectors.sink import KafkaSink
    from monitor.runners.changelog import org_partition

    orgs = [f"P{uuid.uuid4().hex[:6]}-{n}" for n in range(64)]
    before = end_offsets(EVENT_TOPICS["finance"])
    sink = KafkaSink(kafka_broker)
    try:
        for org in orgs:
            sink.send_event("finance", org, orjson.dumps({
                "event_id": f"{org}-1", "source": "test", "domain": "finance", "type": "journal_entry",
                "occurred_at": "2026-03-02T10:00:00+08:00", "org_id": org, "amount": 1.0,
                "attributes": {"entry_no": "PZ-1", "manual": False}}))
        sink.flush()
    finally:
        sink.close()
    records = read_since(EVENT_TOPICS["finance"], before, expect=len(orgs))
    assert sorted(r.key.decode() for r in records) == sorted(orgs)
    partitions = len(before)
    assert all(r.partition == org_partition(r.key, partitions) for r in records)
    assert len({r.partition for r in records}) > 1


def test_connect_file_without_its_topics_says_so_in_one_line_before_reading(kafka_broker, monkeypatch):
    from click.testing import CliRunner

    import connectors.sink
    from monitor.cli import main

    monkeypatch.setattr(connectors.sink, "DEADLETTER_TOPIC", "riskwatch.no-such-topic")
    result = CliRunner().invoke(main, ["connect", "file", "--input", str(ROOT / "connectors" / "samples" / "erp_payments.csv"),
                                       "--mapping", str(ROOT / "connectors" / "mappings" / "erp_payments.yaml"),
                                       "--broker", kafka_broker])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and result.output.strip().count("\n") == 0
    assert "topic riskwatch.no-such-topic missing" in result.output and "riskwatch topics create" in result.output
