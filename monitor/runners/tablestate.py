"""Scorer state and alerts kept in a key-value table (a faust Table in the worker).

The scorer reads and writes its per-rule stores through a mapping interface;
``TableStore`` provides that interface over a table of bytes, decoding entries
on first use and writing back every entry a batch touched when ``flush`` is
called. ``TableState`` builds a ``ScorerState`` whose stores are TableStores,
and an alert mapping of the same kind.

Table keys start with the org, ``b"ORG01\\x1f<rule>\\x1f<key>"``, so that the
worker's partitioner can put each entry in the changelog partition of its
org's events: a worker that takes over a partition recovers exactly the state
of the orgs it now scores.

>>> table = {}
>>> store = TableStore(table, "r", "window", org_index=0)
>>> store[("ORG1", "S1")] = (100.0, "e1", (), ())
>>> store.flush()
>>> sorted(table)
[b'ORG1\\x1fwindow\\x1fr\\x1f\\x92\\xa4ORG1\\xa2S1']
>>> TableStore(table, "r", "window", org_index=0).get(("ORG1", "S1"))
(100.0, 'e1', (), ())
"""

from __future__ import annotations

import math

from typing import Any, Iterable, Iterator, MutableMapping

import msgspec

from monitor.core.alerts import Alert
from monitor.core.evidence import Evidence
from monitor.core.rules import RulePack
from monitor.core.reviews import Matter
from monitor.core.state import KeyTotal, ScorerState, _window_from_plain, _window_plain, model_plain

__all__ = ["ORG_SEPARATOR", "AppliedOffsets", "TableAlerts", "TableEvidence", "TableState", "TableStore", "applied_key",
           "keys_of_kind", "kind_of_table_key", "last_seen_of_plain", "org_of_table_key",
           "partition_of_applied_key"]

ORG_SEPARATOR = b"\x1f"
HELD_INFIX = ORG_SEPARATOR + b"held" + ORG_SEPARATOR
APPLIED_PREFIX = b"\x00applied" + ORG_SEPARATOR  # no org starts with NUL: these keys name their partition
MAX_CACHED = 200_000  # decoded entries kept between batches


def org_of_table_key(key: bytes) -> bytes:
    """The partitioning part of a table key (the org), or the whole key."""
    return key.split(ORG_SEPARATOR, 1)[0]


def kind_of_table_key(key: bytes) -> bytes:
    """What a table key holds: the part after the org (b"window", b"matter", b"held",
    b"mark", …; an applied-offset key gives its partition), b"" for a key without one.

    >>> kind_of_table_key(b"ORG1\\x1fmatter\\x1fRC-1\\x1f\\x92"), kind_of_table_key(b"ORG1\\x1fmark")
    (b'matter', b'mark')
    """
    parts = key.split(ORG_SEPARATOR, 2)
    return parts[1] if len(parts) > 1 else b""


def keys_of_kind(table: MutableMapping[bytes, bytes], kind: bytes) -> list[bytes]:
    """The table's keys of one kind: from the table's own lists where it keeps
    them (the worker's ``ChangelogTable``), else by reading every key."""
    listed = getattr(table, "keys_of_kind", None)
    if listed is not None:
        return listed(kind)
    return [key for key in list(table.keys()) if kind_of_table_key(key) == kind]


def last_seen_of_plain(raw: bytes) -> float:
    """When a stored window or total entry was last seen: its plain form's last element
    (``KeyWindow.to_plain``'s ``max_t``, a lone entry's time, ``KeyTotal.to_plain``'s ``last_t``).

    >>> last_seen_of_plain(msgspec.msgpack.encode([[5.0, 9.0], [], 9.0]))
    9.0
    """
    return float(msgspec.msgpack.decode(raw)[-1])


def applied_key(topic: str, partition: int) -> bytes:
    """The table key of the next offset of ``topic``/``partition`` the state has not applied.

    >>> applied_key("riskwatch.events.finance", 3)
    b'\\x00applied\\x1f3\\x1friskwatch.events.finance'
    >>> partition_of_applied_key(applied_key("riskwatch.events.finance", 3))
    3
    """
    return APPLIED_PREFIX + b"%d" % partition + ORG_SEPARATOR + topic.encode()


def partition_of_applied_key(key: bytes) -> int | None:
    """The input partition an applied-offset key belongs to (it is changelogged
    in that same partition), or None for any other key."""
    if not key.startswith(APPLIED_PREFIX):
        return None
    return int(key[len(APPLIED_PREFIX):].split(ORG_SEPARATOR, 1)[0])


class AppliedOffsets:
    """Per input partition, the next offset the state has not applied yet, kept
    in the table beside the state it describes: both are written by the same
    ``flush`` and committed in the same transaction, so a recovered table
    always says exactly which events it has seen. A record below its
    partition's applied offset is a redelivery and must not be applied again
    (rules would dedupe it by event id; detectors would learn it twice).

    >>> table = {}
    >>> applied = AppliedOffsets(table)
    >>> applied.unapplied("t", 0, 5), applied.advance("t", 0, 5), applied.unapplied("t", 0, 5)
    (True, None, False)
    >>> applied.flush(); AppliedOffsets(table).unapplied("t", 0, 5), AppliedOffsets(table).unapplied("t", 0, 6)
    (False, True)
    """

    def __init__(self, table: MutableMapping[bytes, bytes]):
        self.table = table
        self._next: dict[tuple[str, int], int] = {}
        self._touched: set[tuple[str, int]] = set()

    def next_offset(self, topic: str, partition: int) -> int:
        tp = (topic, partition)
        offset = self._next.get(tp)
        if offset is None:
            raw = self.table.get(applied_key(topic, partition))
            offset = self._next[tp] = int(raw) if raw is not None else 0
        return offset

    def unapplied(self, topic: str, partition: int, offset: int) -> bool:
        return offset >= self.next_offset(topic, partition)

    def advance(self, topic: str, partition: int, offset: int) -> None:
        """The record at ``offset`` has been applied (scored or rejected)."""
        if offset >= self.next_offset(topic, partition):
            self._next[(topic, partition)] = offset + 1
            self._touched.add((topic, partition))

    def flush(self) -> None:
        for topic, partition in self._touched:
            self.table[applied_key(topic, partition)] = b"%d" % self._next[(topic, partition)]
        self._touched.clear()

    def forget(self) -> None:
        self._next.clear()
        self._touched.clear()


MARK_SUFFIX = ORG_SEPARATOR + b"mark"


class OrgMarks:
    """Each org's stream time (its newest business time scored), kept in the
    table beside its state: a restarted worker, or one taking a partition
    over, judges the org's review deadlines from where the state left it, not
    from the first event of the org it happens to see again — an org that
    sends nothing more would otherwise never have them judged.

    >>> table = {}
    >>> marks = OrgMarks(table, {"ORG1": 5.0})
    >>> marks.touch(["ORG1"]); marks.flush(); table
    {b'ORG1\\x1fmark': b'5.0'}
    >>> recovered = {}; OrgMarks(table, recovered).load(); recovered
    {'ORG1': 5.0}
    """

    def __init__(self, table: MutableMapping[bytes, bytes], marks: dict[str, float]):
        self.table = table
        self.marks = marks  # the ScorerState's org_watermarks, shared
        self._touched: set[str] = set()
        self._loaded = False

    def load(self) -> None:
        """Read the marks the table holds (once after a start or a rebalance)."""
        if self._loaded:
            return
        self._loaded = True
        for key in keys_of_kind(self.table, MARK_SUFFIX[1:]):
            raw = self.table.get(key)
            if raw is not None and key.count(ORG_SEPARATOR) == 1:
                org = key[: -len(MARK_SUFFIX)].decode()
                self.marks[org] = max(self.marks.get(org, -math.inf), float(raw))

    def touch(self, orgs) -> None:
        self._touched.update(orgs)

    def flush(self) -> None:
        for org in self._touched:
            if org in self.marks:
                self.table[org.encode() + MARK_SUFFIX] = repr(self.marks[org]).encode()
        self._touched.clear()

    def forget(self) -> None:
        """Back to what the table says: marks moved by batches not committed are dropped."""
        self.marks.clear()
        self._touched.clear()
        self._loaded = False


class TableStore:
    """One rule's per-key state over a table of bytes."""

    def __init__(self, table: MutableMapping[bytes, bytes], rule_id: str, kind: str, org_index: int):
        self.table = table
        self.kind = kind  # "window", "total", "detector", "matter" or "plain" (msgpack as it is)
        self.org_index = org_index
        self.prefix_tail = ORG_SEPARATOR + kind.encode() + ORG_SEPARATOR + rule_id.encode() + ORG_SEPARATOR
        self._kind = kind.encode()
        self.cache: dict[tuple, Any] = {}
        self.touched: set[tuple] = set()
        self.deleted: set[tuple] = set()

    def _table_key(self, key: tuple) -> bytes:
        return str(key[self.org_index]).encode() + self.prefix_tail + msgspec.msgpack.encode(list(key))

    def _decode(self, raw: bytes) -> Any:
        plain = msgspec.msgpack.decode(raw)
        if self.kind in ("detector", "plain"):
            return plain  # the scorer restores the model from its plain state on first use
        if self.kind == "matter":
            return Matter.from_plain(plain)
        return _window_from_plain(plain) if self.kind == "window" else KeyTotal.from_plain(plain)

    def _encode(self, value: Any) -> bytes:
        if self.kind == "plain":
            return msgspec.msgpack.encode(value)
        if self.kind == "detector":
            return msgspec.msgpack.encode(model_plain(value))
        if self.kind == "matter":
            return msgspec.msgpack.encode(value.to_plain())
        return msgspec.msgpack.encode(_window_plain(value) if self.kind == "window" else value.to_plain())

    def get(self, key: tuple, default: Any = None) -> Any:
        if key in self.cache:
            self.touched.add(key)  # the scorer may change it in place
            return self.cache[key]
        if key in self.deleted:  # the table still holds it until the flush: it is gone
            return default
        raw = self.table.get(self._table_key(key))
        if raw is None:
            return default
        value = self.cache[key] = self._decode(raw)
        self.touched.add(key)
        return value

    def peek(self, key: tuple, default: Any = None) -> Any:
        """Like ``get``, for a value the caller only reads: not written back at the flush."""
        if key in self.cache:
            return self.cache[key]
        if key in self.deleted:
            return default
        raw = self.table.get(self._table_key(key))
        if raw is None:
            return default
        value = self.cache[key] = self._decode(raw)
        return value

    def __getitem__(self, key: tuple) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: tuple, value: Any) -> None:
        self.cache[key] = value
        self.touched.add(key)
        self.deleted.discard(key)

    def __delitem__(self, key: tuple) -> None:
        self.cache.pop(key, None)
        self.touched.discard(key)
        self.deleted.add(key)

    def __contains__(self, key: tuple) -> bool:
        return self.get(key) is not None

    def _raw_keys(self) -> Iterator[tuple[bytes, bytes]]:
        """(table key, packed key) of every entry of this rule in the table."""
        for raw_key in keys_of_kind(self.table, self._kind):
            head, sep, packed = raw_key.partition(self.prefix_tail)
            if sep and ORG_SEPARATOR not in head:
                yield raw_key, packed

    def items(self) -> Iterator[tuple[tuple, Any]]:
        """Every entry of this rule in the table (for the idle sweep and the review schedule)."""
        return self._entries(lambda value: value, self._decode)

    def last_seen_items(self, last_seen) -> Iterator[tuple[tuple, float]]:
        """(key, when it was last seen) of every entry of this window or total rule,
        for the idle sweep: an entry not decoded yet gives it off its plain form
        (``last_seen_of_plain``), without being built; ``last_seen`` reads a decoded one."""
        return self._entries(last_seen, last_seen_of_plain)

    def _entries(self, of_cached, of_stored) -> Iterator[tuple[tuple, Any]]:
        """(key, ``of_cached(value)``) of every entry, or ``of_stored(raw)`` for one not decoded."""
        for raw_key, packed in self._raw_keys():
            key = tuple(msgspec.msgpack.decode(packed))
            if key in self.deleted:
                continue
            value = self.cache.get(key)
            if value is not None:
                yield key, of_cached(value)
                continue
            raw = self.table.get(raw_key)
            if raw is not None:
                yield key, of_stored(raw)

    def __len__(self) -> int:
        return sum(1 for _ in self._raw_keys())

    def __bool__(self) -> bool:
        return True  # "any keys?" would scan the table; the sweep finds out anyway

    def flush(self) -> None:
        """Write back what the last batch touched, and drop what it deleted."""
        for key in self.touched:
            self.table[self._table_key(key)] = self._encode(self.cache[key])
        for key in self.deleted:
            self.table.pop(self._table_key(key), None)
        self.touched.clear()
        self.deleted.clear()
        if len(self.cache) > MAX_CACHED:
            self.cache.clear()

    def clear_all(self) -> None:
        """Delete every entry of this rule from the table (its definition changed)."""
        for raw_key, _ in list(self._raw_keys()):
            self.table.pop(raw_key, None)
        self.forget()

    def forget(self) -> None:
        """Drop decoded entries (after a rebalance the table is the truth)."""
        self.cache.clear()
        self.touched.clear()
        self.deleted.clear()


class TableAlerts:
    """Alerts by dedup key over a table of bytes, keyed by org first.

    ``org_of`` tells the org of a dedup key (the worker reads it from the
    rule's key), so the entry lands in its org's changelog partition.
    """

    def __init__(self, table: MutableMapping[bytes, bytes], org_of):
        self.table = table
        self.org_of = org_of
        self.cache: dict[str, Alert] = {}
        self.touched: set[str] = set()
        self._decoder = msgspec.json.Decoder(Alert)
        self._encoder = msgspec.json.Encoder()

    def _table_key(self, dedup_key: str) -> bytes:
        return self.org_of(dedup_key).encode() + ORG_SEPARATOR + b"alert" + ORG_SEPARATOR + dedup_key.encode()

    def get(self, key: str, default: Alert | None = None) -> Alert | None:
        if key in self.cache:
            return self.cache[key]
        raw = self.table.get(self._table_key(key))
        if raw is None:
            return default
        alert = self.cache[key] = self._decoder.decode(raw)
        return alert

    def __getitem__(self, key: str) -> Alert:
        alert = self.get(key)
        if alert is None:
            raise KeyError(key)
        return alert

    def __setitem__(self, key: str, alert: Alert) -> None:
        self.cache[key] = alert
        self.touched.add(key)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return len(self.cache)

    def __iter__(self):
        return iter(self.cache)

    def values(self):
        return self.cache.values()

    def flush(self) -> None:
        for key in self.touched:
            self.table[self._table_key(key)] = self._encoder.encode(self.cache[key])
        self.touched.clear()
        if len(self.cache) > MAX_CACHED:
            self.cache.clear()

    def forget(self) -> None:
        self.cache.clear()
        self.touched.clear()


class TableState:
    """A ScorerState and an alert mapping whose entries live in ``table``."""

    def __init__(self, pack: RulePack, table: MutableMapping[bytes, bytes]):
        self.state = ScorerState()
        self.stores: list[TableStore] = []
        for rule in pack.rules:
            if rule.kind == "event":
                continue
            store = TableStore(table, rule.id, rule.kind, rule.key.index("org_id"))
            (self.state.windows if rule.kind == "window" else self.state.totals)[rule.id] = store  # type: ignore[assignment]
            self.stores.append(store)
        for det in pack.detectors:  # one model per org: keyed by (org,)
            store = TableStore(table, det.id, "detector", 0)
            self.state.detectors[det.id] = store  # type: ignore[assignment]
            self.stores.append(store)
        for control in pack.controls:  # one history per matter: keyed by (org, matter id)
            store = TableStore(table, control.id, "matter", 0)
            self.state.matters[control.id] = store  # type: ignore[assignment]
            self.stores.append(store)
        for name in ("party_records", "party_index", "waiting"):  # master data: keyed (org, ...)
            store = TableStore(table, name, "plain", 0)
            setattr(self.state, name, store)
            self.stores.append(store)
        org_index = {r.id: r.key.index("org_id") if "org_id" in r.key else None for r in pack.rules}
        org_index.update({c.id: 0 for c in pack.controls})
        org_index.update({d.id: d.by.index("org_id") for d in pack.detectors})
        # a per-month detector's alert key has the month after its `by` values
        key_length = {r.id: len(r.key) for r in pack.rules} | {d.id: len(d.by) + (d.model == "benford")
                                                                for d in pack.detectors}
        key_length.update({c.id: 3 for c in pack.controls})  # (org, matter id, breach)

        def org_of(dedup_key: str) -> str:
            parts = dedup_key.split("|")
            index = org_index.get(parts[0])
            if index is None or len(parts) - 1 != key_length[parts[0]]:
                return ""  # a key value holding "|": partitioned by the whole key instead
            return parts[index + 1]

        self.alerts = TableAlerts(table, org_of)
        self.applied = AppliedOffsets(table)
        self.marks = OrgMarks(table, self.state.org_watermarks)

    def flush(self) -> None:
        for store in self.stores:
            store.flush()
        self.alerts.flush()
        self.applied.flush()
        self.marks.flush()

    def forget(self) -> None:
        for store in self.stores:
            store.forget()
        self.alerts.forget()
        self.applied.forget()
        self.marks.forget()


class TableEvidence(Evidence):
    """``Evidence`` whose held events live in the worker's table, keyed by org
    (``b"ORG01\\x1fheld\\x1f<event id>"``), so they are changelogged with the
    state and recovered with it: a worker that restarts, or takes a partition
    over, still has the events behind the alerts it raises later.

    The bound is per input topic partition: its ``max_events`` held events of
    highest offset. That set depends only on what the partition holds, not on
    which worker read it, how fetches interleaved the topics or how often it
    restarted, so every owner keeps the same events. Writes wait for ``flush`` (the checkpoint), like the rest of
    the state; after ``forget`` (a rebalance) the held events are listed again
    from the table.

    >>> from monitor.core.event import decode_lines
    >>> line = (b'{"event_id":"e1","source":"erp","domain":"finance","type":"payment",'
    ...         b'"occurred_at":"2026-03-02T10:00:00+08:00","org_id":"ORG1"}')
    >>> (e1,), _ = decode_lines([line])
    >>> table = {}
    >>> held = TableEvidence(table, max_events=10)
    >>> held.remember([e1], [line], [("riskwatch.events.finance", 3, 41)]); held.flush()
    >>> sorted(table)
    [b'ORG1\\x1fheld\\x1fe1']
    >>> from types import SimpleNamespace as A
    >>> alert = A(dedup_key="r|1", event_ids=["e1"], status="live", org_id="ORG1")
    >>> [e["event_id"] for _, e in TableEvidence(table).collect([alert], [])]   # a restarted worker
    ['e1']
    """

    def __init__(self, table: MutableMapping[bytes, bytes], max_events: int = 20_000):
        super().__init__(max_events)
        self.table = table
        self._writes: dict[bytes, bytes | None] = {}  # None: delete
        self._by_partition: dict[tuple[str, int], dict[bytes, int]] = {}  # topic partition -> key -> offset, oldest first
        self._listed = False  # after a restart or forget, the index starts empty: list the table first

    @staticmethod
    def _key(org: str, event_id: str) -> bytes:
        return org.encode() + HELD_INFIX + event_id.encode()

    def _list_table(self) -> None:
        if self._listed:
            return
        self._listed = True
        found: dict[tuple[str, int], list[tuple[int, bytes]]] = {}
        for key in keys_of_kind(self.table, HELD_INFIX[1:-1]):
            raw = self.table.get(key)
            if raw is not None and ORG_SEPARATOR not in key.partition(HELD_INFIX)[0]:
                topic, partition, offset, _ = raw.split(ORG_SEPARATOR, 3)
                found.setdefault((topic.decode(), int(partition)), []).append((int(offset), key))
        self._by_partition = {p: {key: offset for offset, key in sorted(held)} for p, held in found.items()}

    def remember(self, events: Iterable[Any], raws: Iterable[bytes],  # type: ignore[override]
                 positions: Iterable[tuple[str, int, int]] = ()) -> None:
        """Keep these events; ``positions`` are their (topic, partition, offset)."""
        self._list_table()
        writes = self._writes
        for event, raw, (topic, partition, offset) in zip(events, raws, positions):
            key = self._key(event.org_id, event.event_id)
            held = self._by_partition.setdefault((topic, partition), {})
            if key not in held:  # seen again (the same id later in the stream): it keeps its place
                held[key] = offset
            writes[key] = b"%s\x1f%d\x1f%d\x1f" % (topic.encode(), partition, held[key]) + raw
            if len(held) > self.max_events:
                oldest = next(iter(held))
                del held[oldest]
                writes[oldest] = None

    def _held_json(self, alert: Any, event_id: str) -> bytes | None:
        key = self._key(alert.org_id, event_id)
        value = self._writes[key] if key in self._writes else self.table.get(key)
        return None if value is None else value.split(ORG_SEPARATOR, 3)[3]

    def flush(self) -> None:
        """Write the held events of the batches since the last flush into the table."""
        for key, value in self._writes.items():
            if value is None:
                self.table.pop(key, None)
            else:
                self.table[key] = value
        self._writes.clear()

    def forget(self) -> None:
        """Drop what is not in the table yet (after a rebalance the table is the truth)."""
        self._writes.clear()
        self._by_partition.clear()
        self._given.clear()
        self._listed = False
