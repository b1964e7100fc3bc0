"""faust table recovery for a changelog written in Kafka transactions.

    faust.App(..., TableManager=TransactionalTableManager)

The worker commits each checkpoint — the state records and the event offsets
they lead to — in one transaction, so every transaction leaves a commit marker
in the changelog partitions it wrote. Markers are offsets no consumer is ever
handed. faust recovers a table until it has been handed the record at the
partition's end offset less one; when that offset is a marker, recovery never
ends (faust only looks past markers when it runs the transactions itself). Here
the end of each changelog partition is the offset of its last record a
``read_committed`` consumer is handed, found by reading the partition's tail.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.tables import TableManager
from faust.tables.recovery import Recovery

from monitor.topics import bootstrap_servers

__all__ = ["TransactionalTableManager", "last_record_offsets"]

TAIL_SECONDS = 15.0  # a partition's tail not read by then: faust's own end offsets less one, for it and those left


class TransactionalRecovery(Recovery):
    async def _build_highwaters(self, consumer: Any, tps: set, destination: Any, title: str) -> None:
        await super()._build_highwaters(consumer, tps, destination, title)
        ends = {tp: destination[tp] + 1 for tp in tps if destination[tp] >= 0}
        if ends:
            for tp, offset in (await last_record_offsets(str(self.app.conf.broker[0]), ends)).items():
                destination[tp] = offset  # a Counter: its update() would add


class TransactionalTableManager(TableManager):
    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = TransactionalRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


async def last_record_offsets(broker: str, ends: Mapping[Any, int]) -> dict[Any, int]:
    """For each partition (any ``(topic, partition)`` tuple), the offset of the
    last record before ``ends[tp]`` that a read_committed consumer is handed;
    -1 when there is none. Reads back from the end, further each time it finds
    only markers or aborted records."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker), enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        parts = {TopicPartition(tp[0], tp[1]): tp for tp in ends}
        consumer.assign(list(parts))
        beginnings = await consumer.beginning_offsets(list(parts))
        out = {}
        for part, tp in parts.items():
            end, back, last = ends[tp], 16, -1
            deadline = time.monotonic() + TAIL_SECONDS
            while last < 0:
                start = max(beginnings[part], end - back)
                consumer.seek(part, start)
                while await consumer.position(part) < end:
                    if time.monotonic() > deadline:
                        return {**out, **{t: ends[t] - 1 for t in ends if t not in out}}  # faust's own guess
                    for record in (await consumer.getmany(part, timeout_ms=500)).get(part, []):
                        if record.offset < end:
                            last = max(last, record.offset)
                if start <= beginnings[part]:
                    break
                back *= 16
            out[tp] = last
        return out
    finally:
        await consumer.stop()
