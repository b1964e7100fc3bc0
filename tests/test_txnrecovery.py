"""Where a transactionally written changelog ends, against the real broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from monitor.runners.txnrecovery import last_record_offsets, open_transactions
from tests.kafka_util import BOOTSTRAP, BROKER, end_offsets

pytestmark = pytest.mark.usefixtures("kafka_broker")


def _new_topic() -> str:
    topic = f"rw-test-txn-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()
    return topic


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
    topic = _new_topic()
    asyncio.run(_write(topic, committed=5, aborted=aborted))
    (tp, end), = end_offsets(topic).items()
    # 5 records, a commit marker, the aborted records and their marker
    assert end == 5 + 1 + aborted + (1 if aborted else 0)
    assert asyncio.run(last_record_offsets(BROKER, {(topic, 0): end})) == {(topic, 0): 4}


def test_an_open_transaction_is_waited_for_since_it_hides_what_was_committed_after_it():
    """A worker killed mid-checkpoint leaves its transaction open; a later worker's
    commit behind it is invisible to read_committed readers until it is aborted."""
    topic = _new_topic()

    async def scenario():
        killed = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id=f"rw-test-{uuid.uuid4().hex}")
        later = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id=f"rw-test-{uuid.uuid4().hex}")
        await killed.start()
        await later.start()
        try:
            await killed.begin_transaction()
            await killed.send_and_wait(topic, key=b"k", value=b"never committed", partition=0)
            async with later.transaction():
                await later.send(topic, key=b"k", value=b"committed after it", partition=0)
            still_open = await open_transactions(BROKER, [(topic, 0)], timeout=1.0)
            await killed.abort_transaction()  # what the broker does when the transaction times out
            settled = await open_transactions(BROKER, [(topic, 0)], timeout=10.0)
            (tp, end), = end_offsets(topic).items()
            last = await last_record_offsets(BROKER, {(topic, 0): end})
            return still_open, settled, last
        finally:
            await killed.stop()
            await later.stop()

    still_open, settled, last = asyncio.run(scenario())
    assert still_open == {(topic, 0)}
    assert settled == set()
    assert last == {(topic, 0): 1}  # the later commit is readable once the open transaction is gone
