"""Per-key state of the stateful rules: small, bounded and serialisable.

Two shapes, both kept per (rule, key):

- ``KeyWindow``: the events of one key within a window over business time
  (split purchases, duplicate payments). Entries older than the newest time
  seen minus the window and the allowed lateness are dropped.
- ``KeyTotal``: running totals checked against a reference set by another event
  (payments against the contract amount, disbursements against the budget).
  Kept until the key has been idle for the rule's ``expires``.

Both remember the event ids they hold, so an event delivered twice counts once.
Detector models (``detectors``) are kept per detector and org, and snapshot
as their own plain ``state()``.
The scorer re-checks an anchor only when its window or running total changes,
so a finding is reported again only with new evidence.

>>> w = KeyWindow()
>>> w.insert(100.0, "a", (5.0,), ())
True
>>> w.insert(100.0, "a", (5.0,), ())   # delivered again: ignored
False
>>> w.insert(160.0, "b", (7.0,), ())
True
>>> state = ScorerState(); state.windows["r"] = {("ORG1",): w}
>>> sorted(ScorerState.restore(state.snapshot()).windows["r"][("ORG1",)].ids)
['a', 'b']
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

import msgspec

from detectors.base import Detector
from monitor.core.calibration import OrgTails, TailRecord
from monitor.core.reviews import Matter

__all__ = ["KeyTotal", "KeyWindow", "ScorerState"]


class KeyWindow:
    """Events of one key, sorted by business time."""

    __slots__ = ("times", "entries", "ids", "max_t")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.entries: list[tuple[str, tuple, tuple]] = []  # (event_id, aggregate values, display values)
        self.ids: set[str] = set()
        self.max_t = float("-inf")

    def insert(self, t: float, event_id: str, agg: tuple, display: tuple) -> bool:
        """Add an event; False when it was already here."""
        if event_id in self.ids:
            return False
        i = bisect_right(self.times, t)
        self.times.insert(i, t)
        self.entries.insert(i, (event_id, agg, display))
        self.ids.add(event_id)
        if t > self.max_t:
            self.max_t = t
        return True

    def evict_before(self, horizon: float) -> None:
        """Drop entries older than ``horizon``."""
        n = 0
        times = self.times
        while n < len(times) and times[n] < horizon:
            self.ids.discard(self.entries[n][0])
            n += 1
        if n:
            del self.times[:n]
            del self.entries[:n]

    def span(self, anchor: int, within: float) -> range:
        """Indexes of the entries in (t_anchor - within, t_anchor]."""
        t = self.times[anchor]
        end = bisect_right(self.times, t)
        start = bisect_right(self.times, t - within)
        return range(start, end)

    def to_plain(self) -> list:
        return [self.times, [list(e) for e in self.entries], self.max_t]

    @classmethod
    def from_plain(cls, plain: list) -> KeyWindow:
        w = cls()
        w.times = list(plain[0])
        w.entries = [(e[0], tuple(e[1]), tuple(e[2])) for e in plain[1]]
        w.ids = {e[0] for e in w.entries}
        w.max_t = plain[2]
        return w


class KeyTotal:
    """Amounts adding up on one key, and the reference they are checked against."""

    __slots__ = ("adds", "refs", "ids", "last_t")

    def __init__(self) -> None:
        self.adds: list[tuple[float, str, float, tuple]] = []  # (t, event_id, value, display), sorted
        self.refs: list[tuple[float, str, float, tuple]] = []
        self.ids: set[str] = set()
        self.last_t = float("-inf")

    def insert(self, is_add: bool, t: float, event_id: str, value: float, display: tuple) -> bool:
        if event_id in self.ids:
            return False
        entries = self.adds if is_add else self.refs
        entry = (t, event_id, value, display)
        if not entries or t >= entries[-1][0]:
            entries.append(entry)  # the usual case: in business order
        else:
            entries.insert(bisect_right(entries, t, key=lambda e: e[0]), entry)
        self.ids.add(event_id)
        if t > self.last_t:
            self.last_t = t
        return True

    def reference_at(self, t: float) -> tuple[float, str, float, tuple] | None:
        """The reference in force at business time t: the latest one set at or
        before t, or the first one when t comes before all of them."""
        if not self.refs:
            return None
        current = self.refs[0]
        for ref in self.refs:
            if ref[0] <= t:
                current = ref
            else:
                break
        return current

    def to_plain(self) -> list:
        return [[list(e) for e in self.adds], [list(e) for e in self.refs], self.last_t]

    @classmethod
    def from_plain(cls, plain: list) -> KeyTotal:
        s = cls()
        s.adds = [(e[0], e[1], e[2], tuple(e[3])) for e in plain[0]]
        s.refs = [(e[0], e[1], e[2], tuple(e[3])) for e in plain[1]]
        s.ids = {e[1] for e in s.adds} | {e[1] for e in s.refs}
        s.last_t = plain[2]
        return s


class ScorerState:
    """All per-key state of a scorer. Pass the same object to every ``score`` call.

    A window key that has seen a single event holds the bare entry tuple
    ``(t, event_id, aggregates, display)`` instead of a KeyWindow: most keys
    (an invoice number, say) never see a second one.
    """

    def __init__(self) -> None:
        self.windows: dict[str, dict[tuple, KeyWindow | tuple]] = {}
        self.totals: dict[str, dict[tuple, KeyTotal]] = {}
        self.watermark = float("-inf")  # newest business time seen
        self.org_watermarks: dict[str, float] = {}  # newest business time seen per org
        self.swept_at: dict[str, float] = {}
        self.late_events = 0  # events too late for a window's allowed lateness
        # detector id -> (org,) -> its model, or the model's plain state until first used
        self.detectors: dict[str, dict[tuple, Any]] = {}
        # a calibrated detector's score histograms, all orgs in one array; each org's record
        # lives in ``detectors[id][(org, "tail")]`` (what is kept), this is rebuilt from it
        self.tails: dict[str, OrgTails] = {}
        # each org's number in this state, and per detector its models by that number
        # (``monitor.core.detecting``: a look-up per org a batch, not one per org and detector);
        # rebuilt as orgs come, not part of the snapshot
        self.org_numbers: dict[str, int] = {}
        self.model_slots: dict[str, Any] = {}
        # review control id -> (org, matter id) -> what happened to the matter
        self.matters: dict[str, dict[tuple, Matter]] = {}
        # master data (monitor.core.parties): (org, kind, id) -> record; (org, detail, value) -> employees
        self.party_records: dict[tuple, list] = {}
        self.party_index: dict[tuple, list | str] = {}
        # events a linked() rule judges once every input has reached their time: (org, event id) -> [t, JSON]
        self.waiting: dict[tuple, list] = {}
        # where a detector model keeps its per-key state (``Detector.per_key``), when not in a
        # dict of its own: ``per_key_maps(detector id, org, attribute, held dict)`` returns the
        # mapping to use instead (the runner's, e.g. on disk); not part of the snapshot
        self.per_key_maps: Any = None

    def key_count(self) -> int:
        models = sum(m.key_count() for store in self.detectors.values() for m in _models(store)
                     if hasattr(m, "key_count"))
        return (sum(len(v) for v in self.windows.values()) + sum(len(v) for v in self.totals.values()) + models
                + sum(len(v) for v in self.matters.values()) + len(self.party_records))

    def snapshot(self) -> bytes:
        """Serialise to MessagePack (keys as lists)."""
        plain: dict[str, Any] = {
            "windows": {r: [[list(k), _window_plain(w)] for k, w in keys.items()] for r, keys in self.windows.items()},
            "totals": {r: [[list(k), s.to_plain()] for k, s in keys.items()] for r, keys in self.totals.items()},
            "watermark": self.watermark,
            "org_watermarks": self.org_watermarks,
            "swept_at": self.swept_at,
            "late_events": self.late_events,
            "detectors": {d: [[list(k), model_plain(m)] for k, m in store.items()] for d, store in self.detectors.items()},
            "matters": {c: [[list(k), m.to_plain()] for k, m in store.items()] for c, store in self.matters.items()},
            "party_records": [[list(k), v] for k, v in self.party_records.items()],
            "party_index": [[list(k), v] for k, v in self.party_index.items()],
            "waiting": [[list(k), v] for k, v in self.waiting.items()],
        }
        return msgspec.msgpack.encode(plain)

    @classmethod
    def restore(cls, data: bytes) -> ScorerState:
        plain = msgspec.msgpack.decode(data)
        state = cls()
        state.windows = {r: {tuple(k): _window_from_plain(w) for k, w in keys} for r, keys in plain["windows"].items()}
        state.totals = {r: {tuple(k): KeyTotal.from_plain(s) for k, s in keys} for r, keys in plain["totals"].items()}
        state.watermark = plain["watermark"]
        state.org_watermarks = dict(plain.get("org_watermarks", {}))
        state.swept_at = dict(plain["swept_at"])
        state.late_events = plain["late_events"]
        state.detectors = {d: {tuple(k): m for k, m in store} for d, store in plain.get("detectors", {}).items()}
        state.matters = {c: {tuple(k): Matter.from_plain(m) for k, m in store} for c, store in plain.get("matters", {}).items()}
        state.party_records = {tuple(k): v for k, v in plain.get("party_records", [])}
        state.party_index = {tuple(k): v for k, v in plain.get("party_index", [])}
        state.waiting = {tuple(k): v for k, v in plain.get("waiting", [])}
        return state


def drop_rules(state: ScorerState, rule_ids: set[str]) -> None:
    """Forget the state of these rules and detectors (their definition changed)."""
    for stores in (state.windows, state.totals, state.detectors, state.matters):
        for rule_id in rule_ids & set(stores):
            store = stores[rule_id]
            if hasattr(store, "clear_all"):
                store.clear_all()  # a table-backed store: its entries go from the table
            else:
                del stores[rule_id]
    for rule_id in rule_ids:
        state.swept_at.pop(rule_id, None)
        state.tails.pop(rule_id, None)


def model_plain(model: Any) -> Any:
    """A detector model's plain state (a model not yet restored is plain already)."""
    return model.state() if isinstance(model, (Detector, TailRecord)) else model


def _models(store: Any) -> list:
    cached = getattr(store, "cache", store)  # a table-backed store: only what is decoded
    return [m for m in cached.values() if isinstance(m, Detector)]


def _window_plain(w: KeyWindow | tuple) -> list:
    if type(w) is tuple:
        t, eid, agg, display = w
        return [[t], [[eid, list(agg), list(display)]], t]
    return w.to_plain()


def _window_from_plain(plain: list) -> KeyWindow | tuple:
    if len(plain[0]) == 1:
        eid, agg, display = plain[1][0]
        return (plain[0][0], eid, tuple(agg), tuple(display))
    return KeyWindow.from_plain(plain)
