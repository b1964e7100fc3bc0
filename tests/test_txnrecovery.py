"""Where a transactionally written changelog ends, against the real broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from monitor.txnrecovery import last_record_offsets
from tests.kafka_util import BOOTSTRAP, BROKER, end_offsets

pytestmark = pytest.mark.usefixtures("kafka_broker")


async def _write(topic: str, committed: int, aborted: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id=f"rw-test-{uuid.uuid4().hex}")
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(committed):
                await producer.send(topic, key=b"k%d" % i, value=b"kept", partition=0)
        await producer.begin_transaction()
        for i in range(aborted):
            await producer.send(topic, key=b"a%d" % i, value=b"aborted", partition=0)
        await producer.flush()
        await producer.abort_transaction()
    finally:
        await producer.stop()


@pytest.mark.parametrize("aborted", [0, 3, 300])
def test_the_end_is_the_last_committed_record_not_a_marker_or_an_aborted_one(aborted):
    topic = f"rw-test-txn-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()
    asyncio.run(_write(topic, committed=5, aborted=aborted))
    (tp, end), = end_offsets(topic).items()
    # 5 records, a commit marker, the aborted records and their marker
    assert end == 5 + 1 + aborted + (1 if aborted else 0)
    assert asyncio.run(last_record_offsets(BROKER, {(topic, 0): end})) == {(topic, 0): 4}
