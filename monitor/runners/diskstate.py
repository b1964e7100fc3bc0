"""The rules' per-key state on disk, for a stream whose state outgrows memory.

A rule that finds a duplicate invoice must remember every invoice within its
window: at ten times the density the same quarter holds ten times the keys.
Held as Python objects that is about 500 bytes a retained event, so a run's
memory grows with the stream. ``riskwatch run --state-dir DIR`` keeps the
windows and running totals in RocksDB instead (as Kafka Streams and faust
keep their tables), with a bounded cache of decoded entries in front: memory
stays flat whatever the density or span, at some cost in speed.

The state is scratch: each scoring process opens its own database in a fresh
folder under ``DIR`` and removes it when the run ends (an embedded run starts
from nothing, as it does in memory). The master data (supplier and employee
profiles) goes there too; detector models and review matters stay in memory.

    table = DiskTable.create(Path("/var/tmp/riskwatch"))
    state = ScorerState()
    stores = attach_disk_stores(pack, state, table)    # windows, totals, master data
    ...                                                 # score a batch
    for store in stores: store.flush()                  # what leaves the cache is written
    table.commit()
    table.close()                                       # and the folder is gone
"""

from __future__ import annotations

import shutil
import tempfile
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

import msgspec

from monitor.core.rules import RulePack
from monitor.core.state import ScorerState
from monitor.runners.tablestate import ORG_SEPARATOR, TableStore

__all__ = ["DISK_CACHED", "DiskStore", "DiskTable", "attach_disk_stores"]

DISK_CACHED = 20_000  # decoded entries a store keeps between batches
MASTER_DATA_CACHE = 4  # times as many entries for master data
WRITE_BUFFER = 16 << 20  # RocksDB's memtable: what is written before it goes to a file
BLOCK_CACHE = 16 << 20  # RocksDB's cache of read blocks


class DiskTable:
    """A mapping of bytes to bytes in a RocksDB database of its own folder.

    Writes go into a write batch until ``commit``; reads see what was committed
    (the stores above keep what they changed until they flush, so nothing reads
    an uncommitted write). A key that was never written is answered by the
    bloom filter, without reading a file: most keys a window rule asks about
    are new.
    """

    def __init__(self, folder: Path):
        from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch

        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_write_buffer_size(WRITE_BUFFER)
        options.set_max_write_buffer_number(2)
        table = BlockBasedOptions()
        table.set_bloom_filter(10, False)
        table.set_block_cache(Cache(BLOCK_CACHE))
        options.set_block_based_table_factory(table)
        self.folder = folder
        self._write_batch = WriteBatch
        self.db = Rdict(str(folder), options)
        self.batch = WriteBatch(raw_mode=True)
        self.pending = 0

    @classmethod
    def create(cls, parent: Path) -> DiskTable:
        """A new, empty table in a fresh folder under ``parent`` (made if missing)."""
        parent.mkdir(parents=True, exist_ok=True)
        return cls(Path(tempfile.mkdtemp(prefix="riskwatch-state-", dir=parent)))

    def get(self, key: bytes, default: Any = None) -> Any:
        value = self.db.get(key)
        return default if value is None else value

    def __getitem__(self, key: bytes) -> bytes:
        value = self.db.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.batch.put(key, value)
        self.pending += 1

    def pop(self, key: bytes, default: Any = None) -> Any:
        self.batch.delete(key)
        self.pending += 1
        return default

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every committed (key, value) whose key starts with ``prefix``, in key order."""
        for key, value in self.db.items(from_key=prefix):
            if not key.startswith(prefix):
                return
            yield key, value

    def delete_prefix(self, prefix: bytes) -> None:
        for key, _ in list(self.scan(prefix)):
            self.batch.delete(key)
            self.pending += 1

    def commit(self) -> None:
        """Write what was set and popped since the last commit, at once."""
        if self.pending:
            self.db.write(self.batch)
            self.batch = self._write_batch(raw_mode=True)
            self.pending = 0

    def close(self) -> None:
        """Close the database and remove its folder."""
        self.db.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class DiskStore(TableStore):
    """One rule's per-key state in a DiskTable, behind a cache of decoded entries.

    The cache writes back: an entry is encoded and written only when it leaves
    the cache (the state is scratch, so nothing needs it on disk sooner), and an
    entry touched batch after batch is encoded once. When the cache holds more
    than ``max_cached`` entries, the half used longest ago leaves; until the first
leaves, the table is not read at all. Keys start
    with the rule (one process holds the table, so no org goes in front), so
    that the idle sweep reads this rule's entries alone.
    """

    def __init__(self, table: DiskTable, rule_id: str, kind: str, max_cached: int = DISK_CACHED):
        super().__init__(table, rule_id, kind, org_index=0)  # type: ignore[arg-type]
        self.prefix = kind.encode() + ORG_SEPARATOR + rule_id.encode() + ORG_SEPARATOR
        self.max_cached = max_cached
        self.count = 0  # live entries, in the cache or the table
        self.absent: set[tuple] = set()  # keys asked for since the last flush and not held
        self.spilled = False  # whether any entry has left the cache: until then the table holds none

    def _table_key(self, key: tuple) -> bytes:
        return self.prefix + msgspec.msgpack.encode(list(key))

    def get(self, key: tuple, default: Any = None) -> Any:
        value = self._held(key)
        if value is None:
            return default
        self.touched.add(key)  # the scorer may change it in place
        return value

    def peek(self, key: tuple, default: Any = None) -> Any:
        """Like ``get``, for a value the caller only reads."""
        value = self._held(key)
        return default if value is None else value

    def _held(self, key: tuple) -> Any:
        cache = self.cache
        value = cache.pop(key, None)
        if value is not None:
            cache[key] = value  # the most recently used last: the cache empties from the front
            return value
        if key in self.deleted:  # deleted this batch: the table holds it until the flush
            return None
        raw = self.table.get(self._table_key(key)) if self.spilled else None
        if raw is None:
            self.absent.add(key)
            return None
        value = cache[key] = self._decode(raw)
        return value

    def __setitem__(self, key: tuple, value: Any) -> None:
        if key in self.absent or key in self.deleted:
            self.absent.discard(key)
            self.count += 1
        elif key not in self.cache and (not self.spilled or self.table.get(self._table_key(key)) is None):
            self.count += 1  # set without being asked for first
        super().__setitem__(key, value)

    def __delitem__(self, key: tuple) -> None:
        if key not in self.absent and key not in self.deleted:
            self.count -= 1
        super().__delitem__(key)

    def items(self) -> Iterator[tuple[tuple, Any]]:
        """Every live entry of this rule (for the idle sweep): the cached ones, then the
        rest of the table's."""
        cache = self.cache
        yield from list(cache.items())
        if not self.spilled:
            return
        start = len(self.prefix)
        for raw_key, raw in self.table.scan(self.prefix):
            key = tuple(msgspec.msgpack.decode(raw_key[start:]))
            if key not in cache and key not in self.deleted:
                yield key, self._decode(raw)

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0  # as a dict: the sweep's schedule starts with the first entry

    def flush(self) -> None:
        """Drop the deleted entries from the table and write out the entries that leave
        the cache (into the table's write batch: ``DiskTable.commit`` writes it)."""
        cache = self.cache
        self.absent.clear()
        for key in self.deleted:
            self.table.pop(self._table_key(key))
        self.deleted.clear()
        if len(cache) > self.max_cached:
            leaving = list(islice(cache, len(cache) - self.max_cached // 2))  # the least recently used
            self.spilled = True
            touched = self.touched
            for key in leaving:
                value = cache.pop(key)
                if key in touched:
                    self.table[self._table_key(key)] = self._encode(value)
                    touched.discard(key)

    def clear_all(self) -> None:
        """Delete every entry of this rule (its definition changed)."""
        self.table.delete_prefix(self.prefix)  # type: ignore[attr-defined]
        self.count = 0
        self.absent.clear()
        self.spilled = False
        self.forget()


def attach_disk_stores(pack: RulePack, state: ScorerState, table: DiskTable,
                       max_cached: int = DISK_CACHED) -> list[DiskStore]:
    """Give each window and total rule of ``pack`` that has no store in ``state`` yet
    a DiskStore, and the master data too; returns the new stores."""
    stores = []
    for name in ("party_records", "party_index", "waiting"):  # master data grows with the suppliers
        if not isinstance(getattr(state, name), DiskStore):
            if getattr(state, name):
                raise ValueError(f"the state's {name} already holds entries: attach before the first batch")
            # a supplier's record is read at each of its payments, in no order: a larger cache
            store = DiskStore(table, name, "plain", max_cached * MASTER_DATA_CACHE)
            setattr(state, name, store)
            stores.append(store)
    for rule in pack.rules:
        held = state.windows if rule.kind == "window" else state.totals if rule.kind == "total" else None
        if held is None or isinstance(held.get(rule.id), DiskStore):
            continue
        store = DiskStore(table, rule.id, rule.kind, max_cached)
        held[rule.id] = store  # type: ignore[assignment]
        stores.append(store)
    return stores
