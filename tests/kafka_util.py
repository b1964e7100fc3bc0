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


def start_group_at_end(group: str, topics) -> None:
    """Commit ``group``'s offsets at the topics' present ends, so that a worker
    of that group starting now reads only what is sent from here on, as a
    worker that has been running does: a new group otherwise reads from the
    earliest, other tests' streams first, whose business times run ahead of a
    test's own (master data is judged by each partition's business time)."""
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=group, enable_auto_commit=False)
    try:
        parts = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(parts)
        consumer.commit({tp: OffsetAndMetadata(end, "", -1) for tp, end in consumer.end_offsets(parts).items()})
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


def read_to_end(topic: str, timeout: float = 180.0) -> list:
    """Every committed record of ``topic``, each partition read to its end
    (aiokafka: several times faster than kafka-python at this)."""
    import asyncio

    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as AioPartition

    partitions = end_offsets(topic)

    async def read() -> list:
        consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False,
                                    isolation_level="read_committed", max_partition_fetch_bytes=8 * 1024 * 1024)
        await consumer.start()
        try:
            parts = [AioPartition(topic, tp.partition) for tp in partitions]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)  # no transaction is open: the last stable offsets
            records: list = []
            deadline = time.monotonic() + timeout
            while any([await consumer.position(tp) < ends[tp] for tp in parts]):
                assert time.monotonic() < deadline, f"{topic} not read to its end in {timeout} s"
                for batch in (await consumer.getmany(timeout_ms=500, max_records=100_000)).values():
                    records.extend(batch)
            return records
        finally:
            await consumer.stop()

    return asyncio.run(read())


def committed_table(topic: str) -> dict[bytes, bytes]:
    """A compacted changelog topic as a table: the last committed value of each key, tombstones applied."""
    table: dict[bytes, bytes] = {}
    for record in read_to_end(topic):
        if record.value is None:
            table.pop(record.key, None)
        else:
            table[record.key] = record.value
    return table
