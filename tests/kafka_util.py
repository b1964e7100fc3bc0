"""Helpers for tests against the real local broker (scripts/kafka-local.sh)."""

from __future__ import annotations

import socket
import time

from kafka import KafkaConsumer, TopicPartition

BROKER = "kafka://127.0.0.1:9092"
BOOTSTRAP = ["127.0.0.1:9092"]


def broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 9092), timeout=1):
            return True
    except OSError:
        return False


def end_offsets(topic: str) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return consumer.end_offsets(parts)
    finally:
        consumer.close()


def read_since(topic: str, since: dict[TopicPartition, int], expect: int, timeout: float = 20.0) -> list:
    """Records produced to ``topic`` after ``since``; waits for ``expect`` of them."""
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False,
                             isolation_level="read_committed")  # the worker's alerts and dead letters are transactional
    try:
        consumer.assign(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        records: list = []
        deadline = time.monotonic() + timeout
        while len(records) < expect and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()
