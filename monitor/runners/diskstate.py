"""The scorer's per-key state on disk, for a stream whose state outgrows memory.

A rule that finds a duplicate invoice must remember every invoice within its
window: at ten times the density the same quarter holds ten times the keys.
Held as Python objects that is about 500 bytes a retained event, so a run's
memory grows with the stream. ``riskwatch run --state-dir DIR`` keeps the
windows and running totals in RocksDB instead (as Kafka Streams and faust
keep their tables), with a bounded cache of decoded entries in front, so
that memory no longer grows with the keys held, at some cost in speed.

The state is scratch: each scoring process opens its own database in a fresh
folder under ``DIR`` and removes it when the run ends (an embedded run starts
from nothing, as it does in memory). The master data (supplier and employee
profiles) goes there too, and each detector model's per-key state (the
amounts per contract, the counterparties' last payments), and the review
controls' matters; the models' fixed-size parts (trees, histograms) stay in
memory.

    disk = DiskState(Path("/var/tmp/riskwatch"))
    state = ScorerState()
    disk.attach(pack, state)    # windows, totals, matters, master data, detector models' keys
    ...                         # score a batch
    disk.flush()                # what leaves the caches is written
    disk.close()                # and the folder is gone
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

import msgspec

from monitor.core.rules import RulePack
from monitor.core.state import ScorerState
from monitor.runners.tablestate import ORG_SEPARATOR, TableStore

__all__ = ["DISK_CACHED", "DiskState", "DiskStore", "DiskTable"]

DISK_CACHED = 200_000  # decoded entries a scoring process keeps between batches, all its stores together
MIN_CACHED = 2_000  # however tight the memory: below this, every batch would read most of its keys from disk
SEP = ORG_SEPARATOR.decode()
WRITE_BUFFER = 16 << 20  # RocksDB's memtable: what is written before it goes to a file
BLOCK_CACHE = 16 << 20  # RocksDB's cache of read blocks


class DiskTable:
    """A mapping of bytes to bytes in a RocksDB database of its own folder.

    Writes go into a write batch until ``commit``; reads see what was committed
    (the stores above keep what they changed until they flush, so nothing reads
    an uncommitted write). A key that was never written is answered by the
    bloom filter, without reading a file: most keys a window rule asks about
    are new. Open it in the process that uses it, never before a fork:
    RocksDB's background threads do not survive one (the runner opens it at
    the first batch, in each scoring process).
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

    def get(self, key: bytes) -> bytes | None:
        return self.db.get(key)

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
    entry touched batch after batch is encoded once. Entries leave when
    ``evict`` says (``DiskState`` keeps all its stores to one budget), those used
    longest ago first. Until the first leaves, the table is not read at all.
    Keys start with the rule (one process holds the table, so no org goes in
    front), so that the idle sweep reads this rule's entries alone.
    """

    def __init__(self, table: DiskTable, rule_id: str, kind: str):
        super().__init__(table, rule_id, kind, org_index=0)  # type: ignore[arg-type]
        self.prefix = kind.encode() + ORG_SEPARATOR + rule_id.encode() + ORG_SEPARATOR
        self.count = 0  # live entries, in the cache or the table
        self.absent: set[tuple] = set()  # keys asked for since the last flush and not held
        self.spilled = False  # whether any entry has left the cache: until then the table holds none

    def _table_key(self, key: tuple) -> bytes:
        return self.prefix + msgspec.msgpack.encode(list(key))

    def _encode(self, value: Any) -> bytes:
        if self.kind == "pickled":  # a detector's per-key objects, read back by this process alone
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        return super()._encode(value)

    def _decode(self, raw: bytes) -> Any:
        return pickle.loads(raw) if self.kind == "pickled" else super()._decode(raw)

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

    def _entries(self, of_cached, of_stored) -> Iterator[tuple[tuple, Any]]:
        """Every live entry of this rule (``items``, ``last_seen_items``): the cached
        ones, then the rest of the table's."""
        cache = self.cache
        for key, value in list(cache.items()):
            yield key, of_cached(value)
        if not self.spilled:
            return
        start = len(self.prefix)
        for raw_key, raw in self.table.scan(self.prefix):
            key = tuple(msgspec.msgpack.decode(raw_key[start:]))
            if key not in cache and key not in self.deleted:
                yield key, of_stored(raw)

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0  # as a dict: the sweep's schedule starts with the first entry

    def flush(self) -> None:
        """Drop the deleted entries from the table (into its write batch:
        ``DiskTable.commit`` writes it); what leaves the cache is ``evict``'s."""
        self.absent.clear()
        for key in self.deleted:
            self.table.pop(self._table_key(key))
        self.deleted.clear()

    def evict(self, count: int) -> None:
        """The ``count`` entries used longest ago leave the cache (written out, into the
        table's write batch, if changed)."""
        if count <= 0:
            return
        cache, touched = self.cache, self.touched
        self.spilled = True
        for key in list(islice(cache, count)):  # the least recently used first
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


def resident_bytes() -> int:
    """This process's resident memory now (Linux; 0 where it cannot be read)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class DiskState:
    """A scorer's state on disk: one DiskTable and the stores over it.

    ``attach`` hands a ScorerState a store for each window and total rule, for
    each review control's matters, for the master data, and for each detector
    model's per-key state (``Detector.per_key``: the amounts per contract, the
    counterparties' last payments...) as the models are made.

    The stores' caches share one budget of ``max_cached`` decoded entries: when
    they hold more after a batch, every store gives up its entries used longest
    ago, down to half the budget, each keeping its share. So the entries held
    are bounded however many rules, controls and orgs' models there are, and a
    store that holds more keys (a busy rule, the master data) keeps more.

    An entry's size grows with the density of the stream (a window keyed by
    supplier holds six times the events at six times the density), so a count
    of entries does not bound memory. With ``max_resident`` (bytes), the
    process's resident memory is read after each batch: above it, the caches
    give up half their entries and the budget comes down to what they kept;
    below it, the budget grows back by an eighth a batch, up to ``max_cached``.
    """

    def __init__(self, folder: Path, max_cached: int = DISK_CACHED, max_resident: int | None = None):
        self.table = DiskTable.create(folder)
        self.max_cached = max_cached
        self.max_resident = max_resident
        self.budget = max_cached  # the entries the caches may hold now
        self.stores: list[DiskStore] = []
        self.by_detector: dict[str, list[DiskStore]] = {}

    def attach(self, pack: RulePack, state: ScorerState) -> None:
        """Give ``state`` a store for what it does not keep on disk yet (a reloaded pack's new rules too)."""
        for name in ("party_records", "party_index", "waiting"):  # master data grows with the suppliers
            if not isinstance(getattr(state, name), DiskStore):
                if getattr(state, name):
                    raise ValueError(f"the state's {name} already holds entries: attach before the first batch")
                setattr(state, name, self._store(name, "plain"))
        held_by_kind = {"window": state.windows, "total": state.totals}
        # each window and total rule's keys; each review control's matters (one per contract, project...)
        owners = [(held_by_kind.get(r.kind), r.id, r.kind) for r in pack.rules] + \
            [(state.matters, c.id, "matter") for c in pack.controls]
        for held, name, kind in owners:
            if held is not None and not isinstance(held.get(name), DiskStore):
                held[name] = self._store(name, kind)
        state.per_key_maps = self._per_key_map

    def _store(self, name: str, kind: str) -> DiskStore:
        store = DiskStore(self.table, name, kind)  # its cache kept to the shared budget (``flush``)
        self.stores.append(store)
        return store

    def _per_key_map(self, detector_id: str, org: Any, path: str, held: Any) -> DiskStore:
        """A model's per-key mapping on disk, holding what ``held`` holds."""
        store = self._store(f"{detector_id}{SEP}{org}{SEP}{path}", "pickled")
        for key, value in held.items():
            store[key] = value
        self.by_detector.setdefault(detector_id, []).append(store)
        return store

    def drop_detectors(self, detector_ids) -> None:
        """Forget the per-key state of these detectors' models (their definition changed)."""
        gone = {id(store) for detector_id in detector_ids for store in self.by_detector.pop(detector_id, [])}
        for store in self.stores:
            if id(store) in gone:
                store.clear_all()
        self.stores = [store for store in self.stores if id(store) not in gone]

    def flush(self) -> None:
        """After each batch: the caches kept to their budget, and what left them goes to
        the table, in one write."""
        stores = self.stores
        for store in stores:
            store.flush()
        held = sum(len(store.cache) for store in stores)
        keep_to = self.budget // 2 if held > self.budget else held
        if self.max_resident is not None:
            if resident_bytes() > self.max_resident:
                self.budget = keep_to = max(MIN_CACHED, min(keep_to, held // 2))
            elif self.budget < self.max_cached:
                self.budget = min(self.max_cached, self.budget + self.budget // 8)
        if keep_to < held:
            keep = keep_to / held  # the share of its entries each store keeps
            for store in stores:
                store.evict(len(store.cache) - int(len(store.cache) * keep))
        self.table.commit()

    def close(self) -> None:
        self.table.close()
