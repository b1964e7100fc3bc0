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

Before anything is read, the worker claims the input partitions it was given
(``app.riskwatch_claim``): starting their transactional producers fences the
previous owners and makes the broker abort their open transactions. Without
that, a worker killed mid-checkpoint leaves its transaction open until the
broker aborts it (the state producer's transaction timeout). A ``read_committed``
consumer reads nothing past an open transaction, not even what a later worker
committed after it — while the group's offsets do move on with those later
commits. Recovering then would restore state older than the offsets scoring
resumes from. So before recovering its active partitions, a worker waits
until no transaction is open on them (their last stable offset is their end).

After every rebalance the changelog is the only truth: the local table is
emptied and each active partition recovered from its beginning (as Kafka
Streams wipes a task's store when it is closed uncleanly under exactly-once).
What stays in memory otherwise is wrong in two ways. A checkpoint whose
transaction was aborted (revoked or fenced mid-commit) has already written its
state locally, and faust would resume a partition the worker keeps from where
it last read, so those writes would stand over the committed state. And the
entries of partitions that moved away stay too (faust forgets only what it
read from the changelog), and the worker's scans — the review deadlines, the
events waiting for master data — would judge another worker's orgs a second
time. The worker runs without standby replicas for the same reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from time import monotonic
from typing import Any, Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.stores.memory import Store as MemoryStore
from faust.tables import TableManager
from faust.tables.recovery import Recovery

from monitor.runners.topics import bootstrap_servers

__all__ = ["OPEN_TRANSACTION_WAIT", "TRANSACTION_TIMEOUT_MS", "TransactionalRecovery", "TransactionalTableManager",
           "apply_records", "last_record_offsets", "open_transactions"]

log = logging.getLogger("riskwatch.txnrecovery")

TAIL_SECONDS = 15.0  # a partition's tail not read by then: faust's own end offsets less one, for it and those left
TRANSACTION_TIMEOUT_MS = 15_000  # the state producer's: a checkpoint takes about a second
# The broker aborts an expired transaction at its next check (every 10 s by
# default); recovery waits that long, then recovers anyway and says so.
OPEN_TRANSACTION_WAIT = TRANSACTION_TIMEOUT_MS / 1000 + 20.0


class TransactionalRecovery(Recovery):
    """faust's recovery, reading to each changelog partition's last committed
    record, and taking a fetch of records at a time (``apply_fetched``)."""

    async def on_rebalance(self, assigned: set, revoked: set, newly_assigned: set, generation_id: int = 0) -> None:
        for table in self.tables.values():
            table.data.clear()
        for offsets in (self.active_offsets, self.standby_offsets, self.active_highwaters, self.standby_highwaters):
            offsets.clear()  # from each partition's beginning
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def _build_highwaters(self, consumer: Any, tps: set, destination: Any, title: str) -> None:
        if title == "active":
            await self._claim_input_partitions()
        if tps and title == "active":  # standbys follow a live writer: always some transaction open
            still_open = await open_transactions(str(self.app.conf.broker[0]), tps, OPEN_TRANSACTION_WAIT)
            if still_open:
                log.warning("recovering with transactions still open on %s: state may be older than the "
                            "committed offsets", sorted(still_open))
        await super()._build_highwaters(consumer, tps, destination, title)
        ends = {tp: destination[tp] + 1 for tp in tps if destination[tp] >= 0}
        if ends:
            for tp, offset in (await last_record_offsets(str(self.app.conf.broker[0]), ends)).items():
                destination[tp] = offset  # a Counter: its update() would add


    def apply_fetched(self, tp: Any, records: list) -> bool:
        """Apply one fetch of an active changelog partition's records (aiokafka's
        ConsumerRecords, in offset order) to its table at once, and end the
        recovery when every active partition has reached its end. Returns False,
        applying nothing, when the partition is not one being recovered into an
        in-memory table: the caller then hands the records to faust one at a time.

        faust's own path turns each record into an event, queues it, and checks
        every partition's progress after each (about 11k records/s); a table
        restored from a changelog of millions of records kept a taken-over
        partition from being scored for minutes."""
        table = self.tp_to_table.get(tp)
        if tp not in self.active_tps or table is None or not isinstance(table.data, MemoryStore) \
                or table._on_changelog_event is not None:
            return False
        seen = self.active_offsets.get(tp)
        if seen is not None and records and records[0].offset <= seen:
            records = [r for r in records if r.offset > seen]
        if not records:
            return True
        apply_records(table.data, tp.partition, records)
        self.active_offsets[tp] = records[-1].offset
        self._active_events_received_at[tp] = monotonic()
        if self.in_recovery and not self.need_recovery():
            self.flush_buffers()  # anything faust's own path still holds
            self._set_recovery_ended()
            self.signal_recovery_end.set()
        return True

    async def _claim_input_partitions(self) -> None:
        """Let the worker fence the previous owners of the input partitions it was
        just given (``app.riskwatch_claim``) before any of their state is read:
        their open transactions are aborted at once rather than timing out."""
        claim = getattr(self.app, "riskwatch_claim", None)
        if claim is not None:
            assigned = self.app.consumer.assignment()
            await claim({tp.partition for tp in assigned if tp.topic in self.app.consumer.batch_topics})


class TransactionalTableManager(TableManager):
    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = TransactionalRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


def apply_records(store: MemoryStore, partition: int, records: list) -> None:
    """Write changelog records into faust's in-memory store as its
    ``apply_changelog_batch`` does with their events: in order, a record with no
    value (a tombstone) deletes its key unless a later one gives it a value again.

    >>> from collections import namedtuple
    >>> Record = namedtuple("Record", "key value")
    >>> store = MemoryStore.__new__(MemoryStore); store.data, store._key_partition = {b"a": b"1"}, {}
    >>> apply_records(store, 3, [Record(b"b", b"2"), Record(b"a", None), Record(b"c", None), Record(b"c", b"4")])
    >>> store.data, store._key_partition
    ({b'b': b'2', b'c': b'4'}, {b'b': 3, b'c': 3})
    """
    data, key_partition = store.data, store._key_partition
    deleted = []
    for record in records:
        key = record.key
        data[key] = record.value
        key_partition[key] = partition
        if record.value is None:
            deleted.append(key)
    for key in deleted:
        if not data[key]:
            data.pop(key, None)
            key_partition.pop(key, None)


async def open_transactions(broker: str, tps: Iterable[Any], timeout: float) -> set:
    """Wait up to ``timeout`` seconds until no transaction is open on these
    partitions (any ``(topic, partition)`` tuples): their last stable offset,
    the end a read_committed consumer sees, has reached their end offset.
    Returns the partitions still open then (empty: all settled)."""
    parts = {TopicPartition(tp[0], tp[1]): tp for tp in tps}
    committed = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker), isolation_level="read_committed")
    everything = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker), isolation_level="read_uncommitted")
    await committed.start()
    await everything.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            stable, ends = await committed.end_offsets(list(parts)), await everything.end_offsets(list(parts))
            still_open = {tp for part, tp in parts.items() if stable[part] < ends[part]}
            if not still_open or time.monotonic() >= deadline:
                return still_open
            await asyncio.sleep(0.25)
    finally:
        await committed.stop()
        await everything.stop()


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
