"""The worker's state table, with its changelog written in batches.

A faust Table sends one changelog record per assignment, each through
faust's producer buffer: about 45 µs a record on this kind of machine, and a
batch of events touches about one state entry per event. ``ChangelogTable``
keeps faust's table as the store (faust still recovers it from the changelog
after a restart or a rebalance) but collects a batch's writes and sends them
with aiokafka's batch API, one request per partition: a few µs a record.

Keys start with the org (``b"ORG01\\x1f..."``); a record goes to the
changelog partition of its org's events (murmur2 of the org, as Kafka's
default partitioner computes for the event key), so a worker that takes over a
partition recovers exactly the state of the orgs it now scores.

>>> store = {}
>>> table = ChangelogTable(store, "riskwatch-state-changelog", partitions=8)
>>> table[b"SUB01\\x1fwindow\\x1fr\\x1fk"] = b"v"
>>> store[b"SUB01\\x1fwindow\\x1fr\\x1fk"]
b'v'
>>> table.pending_records()
[(1, b'SUB01\\x1fwindow\\x1fr\\x1fk', b'v')]
"""

from __future__ import annotations

import asyncio
from itertools import groupby
from operator import itemgetter
from typing import Iterator, MutableMapping

from kafka.partitioner.default import murmur2

from monitor.runners.tablestate import kind_of_table_key, org_of_table_key, partition_of_applied_key

__all__ = ["ChangelogTable", "org_partition"]

MAX_BATCH_BYTES = 512 * 1024  # the producer's batch size; a larger record still goes alone


def org_partition(key: bytes, partitions: int) -> int:
    """The partition of a state key (or an event key, the org itself): Kafka's
    default partitioner (murmur2) applied to the org, so both land together."""
    return (murmur2(org_of_table_key(key)) & 0x7FFFFFFF) % partitions


class ChangelogTable(MutableMapping[bytes, bytes]):
    """A mapping over ``store`` (the faust table's local data) that remembers
    what changed until ``take_pending`` hands it to ``send_records`` for ``topic``."""

    def __init__(self, store: MutableMapping[bytes, bytes], topic: str, partitions: int):
        self.store = store
        self.topic = topic
        self.partitions = partitions
        self._pending: dict[bytes, bytes | None] = {}  # None: a tombstone
        self._partition_of_org: dict[bytes, int] = {}
        self._by_kind: dict[bytes, set[bytes]] | None = None  # kind -> keys; None: not listed since the last reload

    def keys_of_kind(self, kind: bytes) -> list[bytes]:
        """The keys of one kind (``kind_of_table_key``: b"matter", b"held", …). The
        first call after a start or a reload lists the whole store once; writes
        through this mapping keep the lists current. The scans after a takeover
        (the review schedule, the held events, the marks, each rule's idle sweep)
        read one kind each instead of every key of a store of millions.

        >>> table = ChangelogTable({b"O1\\x1fmark": b"1.0"}, "t", partitions=2)
        >>> table[b"O1\\x1fmatter\\x1fc\\x1fk"] = b"m"; table.keys_of_kind(b"matter")
        [b'O1\\x1fmatter\\x1fc\\x1fk']
        >>> del table[b"O1\\x1fmatter\\x1fc\\x1fk"]; table[b"O2\\x1fmark"] = b"2.0"
        >>> table.keys_of_kind(b"matter"), sorted(table.keys_of_kind(b"mark"))
        ([], [b'O1\\x1fmark', b'O2\\x1fmark'])
        """
        if self._by_kind is None:
            by_kind: dict[bytes, set[bytes]] = {}
            for key in list(self.store.keys()):
                by_kind.setdefault(kind_of_table_key(key), set()).add(key)
            self._by_kind = by_kind
        return list(self._by_kind.get(kind, ()))

    def reload(self) -> None:
        """The store was written behind this mapping (emptied and recovered from
        the changelog): list its keys again when next asked."""
        self._by_kind = None

    def __getitem__(self, key: bytes) -> bytes:
        return self.store[key]

    def get(self, key: bytes, default=None):
        return self.store.get(key, default)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.store[key] = value
        self._pending[key] = value
        if self._by_kind is not None:
            self._by_kind.setdefault(kind_of_table_key(key), set()).add(key)

    def __delitem__(self, key: bytes) -> None:
        del self.store[key]
        self._pending[key] = None
        if self._by_kind is not None:
            self._by_kind.get(kind_of_table_key(key), set()).discard(key)

    def __iter__(self) -> Iterator[bytes]:
        return iter(list(self.store.keys()))

    def __len__(self) -> int:
        return len(self.store)

    def _partition(self, key: bytes) -> int:
        applied_partition = partition_of_applied_key(key)
        if applied_partition is not None:
            return applied_partition  # beside the state of the input partition it describes
        org = org_of_table_key(key)
        partition = self._partition_of_org.get(org)
        if partition is None:
            partition = self._partition_of_org[org] = org_partition(org, self.partitions)
        return partition

    def pending_records(self) -> list[tuple[int, bytes, bytes | None]]:
        """(partition, key, value) of every write not sent yet, in key order per partition."""
        return sorted((self._partition(k), k, v) for k, v in self._pending.items())

    def discard_pending(self) -> None:
        """Forget the writes not sent (after a rebalance the changelog is the truth)."""
        self._pending.clear()
        self.reload()

    def take_pending(self) -> list[tuple[int, bytes, bytes | None]]:
        """The pending writes (as ``pending_records``), no longer pending: for ``send_records``."""
        records = self.pending_records()
        self._pending.clear()
        return records

    async def send_records(self, producer, records: list[tuple[int, bytes, bytes | None]]) -> int:
        """Send ``take_pending()``'s records with an aiokafka producer (in a
        transaction or not) and wait until the broker has them all; returns how many."""
        futures = []
        for partition, group in groupby(records, key=itemgetter(0)):
            batch = producer.create_batch()
            for _, key, value in group:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start the next
                    futures.append(await producer.send_batch(batch, self.topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            futures.append(await producer.send_batch(batch, self.topic, partition=partition))
        await asyncio.gather(*futures)
        return len(records)
