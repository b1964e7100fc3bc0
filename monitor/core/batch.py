"""A batch of events as columns, read lazily by rule expressions.

>>> from monitor.core.event import decode_lines
>>> events, _ = decode_lines([b'{"event_id":"a","source":"s","domain":"finance","type":"payment",'
...     b'"occurred_at":"2026-03-07T21:30:00+08:00","org_id":"ORG01","amount":5,"attributes":{"manual":true}}'])
>>> batch = EventBatch(events)
>>> rows = batch.all_rows
>>> batch.column("amount", rows).tolist(), batch.column("occurred_at:hour", rows).tolist()
([5.0], [21.0])
>>> batch.column("occurred_at:weekday", rows).tolist(), batch.column("attributes.manual", rows).tolist()
([6.0], [True])
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from itertools import repeat
from operator import attrgetter
from typing import Any, Callable

import numpy as np

from monitor.core.event import ATTRIBUTE_TYPES, Event
from monitor.core.parties import PartyRegistry

__all__ = ["EventBatch", "field_getter"]

_amount = attrgetter("amount")
_occurred_at = attrgetter("occurred_at")
_hour = attrgetter("occurred_at.hour")
_day = attrgetter("occurred_at.day")
_attributes = attrgetter("attributes")
_timestamp = dt.datetime.timestamp
_isoweekday = dt.datetime.isoweekday

_TIME_PARTS = ("occurred_at:hour", "occurred_at:weekday", "occurred_at:day")
_TEXT_TYPES = frozenset({str, type(None)})
_NUMBER_TYPES = frozenset({float, int, type(None)})  # (not bool: true is no number)
_STR_FIELDS = ("event_id", "source", "domain", "type", "org_id", "currency", "counterparty_id", "counterparty_name")


def _as_str(v):
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _as_num(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return np.nan
    return np.nan


@lru_cache(maxsize=None)  # paths are the rule pack's, a few dozen
def field_getter(path: str) -> Callable[[Event], Any]:
    """How to read one field of an event for messages and keys (None when absent).

    >>> from monitor.core.event import decode_lines
    >>> events, _ = decode_lines([b'{"event_id":"a","source":"s","domain":"finance","type":"payment",'
    ...     b'"occurred_at":"2026-03-07T21:30:00+08:00","org_id":"ORG01","attributes":{"n":7}}'])
    >>> field_getter("org_id")(events[0]), field_getter("attributes.n")(events[0])
    ('ORG01', '7')
    """
    if path.startswith("attributes."):
        name = path[11:]
        if ATTRIBUTE_TYPES.get(name, "str") == "str":
            return lambda e: _as_str(e.attributes.get(name))
        return lambda e: e.attributes.get(name)
    if path == "occurred_at":
        return lambda e: e.occurred_at.isoformat()
    return attrgetter(path)


class EventBatch:
    """Columns of a list of events. Top-level columns are built once per batch;
    attribute columns are read only for the rows an expression asks about."""

    __slots__ = ("events", "_full", "_equal", "_attributes", "_org_codes", "_org_numbers", "all_rows", "parties")

    def __init__(self, events: list[Event]):
        self.events = events
        self.parties: PartyRegistry | None = None  # master data, set by the scorer for linked()
        self._full: dict[str, np.ndarray] = {}
        self._equal: dict[tuple[str, object], np.ndarray] = {}
        self._org_codes: tuple[np.ndarray, list] | None = None
        self._org_numbers: tuple[dict, np.ndarray] | None = None
        self._attributes: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # name -> (values, which rows are read)
        self.all_rows = np.arange(len(events))

    def __len__(self) -> int:
        return len(self.events)

    def column(self, path: str, rows: np.ndarray) -> np.ndarray:
        full = self._full.get(path)
        if full is None:
            if path.startswith("attributes."):
                return self._attribute(path[11:], rows)
            if path in _TIME_PARTS and len(rows) < len(self.events):
                # The hour or weekday of the few rows a rule asks about (journal entries, say).
                return self._build(path, list(map(self.events.__getitem__, rows.tolist())))
            full = self._full[path] = self._build(path, self.events)
        return full if len(rows) == len(full) else full[rows]

    def equals(self, path: str, value, rows: np.ndarray) -> np.ndarray:
        """``column == value``; on whole batches cached, since many rules
        start with the same test (``type == "payment"``)."""
        if len(rows) != len(self.events) or path.startswith("attributes."):
            return self.column(path, rows) == value
        mask = self._equal.get((path, value))
        if mask is None:
            mask = self._equal[(path, value)] = self.column(path, rows) == value
        return mask

    def org_codes(self) -> tuple[np.ndarray, list]:
        """(each row's org as a number, the orgs in order of first appearance), once a batch:
        every detector groups its rows by org.

        >>> from monitor.core.event import decode_lines
        >>> line = b'{"event_id":"%s","source":"s","domain":"finance","type":"payment","occurred_at":"2026-03-07T21:30:00+08:00","org_id":"%s"}'
        >>> events, _ = decode_lines([line % (b"a", b"O2"), line % (b"b", b"O1"), line % (b"c", b"O2")])
        >>> codes, orgs = EventBatch(events).org_codes()
        >>> codes.tolist(), orgs
        ([0, 1, 0], ['O2', 'O1'])
        """
        if self._org_codes is None:
            codes: dict = {}
            orgs = self.column("org_id", self.all_rows).tolist()
            numbers = np.fromiter((codes.setdefault(o, len(codes)) for o in orgs), np.int64, len(orgs))
            self._org_codes = numbers, list(codes)
        return self._org_codes

    def org_numbers(self, numbers: dict[str, int]) -> np.ndarray:
        """Each org of ``org_codes()`` as its number in ``numbers``, a numbering kept
        across batches (new orgs are added to it): one look-up per org, once a batch.

        >>> from monitor.core.event import decode_lines
        >>> line = b'{"event_id":"%s","source":"s","domain":"finance","type":"payment","occurred_at":"2026-03-07T21:30:00+08:00","org_id":"%s"}'
        >>> events, _ = decode_lines([line % (b"a", b"O2"), line % (b"b", b"O1")])
        >>> numbers = {"O1": 0}
        >>> EventBatch(events).org_numbers(numbers).tolist(), numbers
        ([1, 0], {'O1': 0, 'O2': 1})
        """
        if self._org_numbers is None or self._org_numbers[0] is not numbers:
            orgs = self.org_codes()[1]
            found = np.fromiter((numbers.setdefault(o, len(numbers)) for o in orgs), np.int64, len(orgs))
            self._org_numbers = numbers, found
        return self._org_numbers[1]

    def linked(self, rows: np.ndarray, party_ids: list, departments: list | None) -> np.ndarray:
        """For ``linked()``: whether each row's party shares details with an employee
        of its org (of the row's department, if given) at the row's business time."""
        out = np.zeros(len(rows), dtype=bool)
        if self.parties is None or not len(rows):
            return out
        orgs = self.column("org_id", rows).tolist()
        times = self.column("occurred_at", rows).tolist()
        links = self.parties.employee_links
        for i, (org, party, t) in enumerate(zip(orgs, party_ids, times)):
            if party:
                department = departments[i] if departments is not None else None
                if departments is not None and not department:
                    continue
                out[i] = bool(links(org, party, t, department))
        return out

    def _build(self, path: str, events: list[Event]) -> np.ndarray:
        # map() over C getters: no Python frame per event.
        if path in _STR_FIELDS:
            return np.fromiter(map(attrgetter(path), events), dtype=object, count=len(events))
        if path == "amount":
            return np.array(list(map(_amount, events)), dtype=float)  # None -> NaN
        if path == "occurred_at":
            return np.array(list(map(_timestamp, map(_occurred_at, events))), dtype=float)
        if path == "occurred_at:hour":
            return np.array(list(map(_hour, events)), dtype=float)
        if path == "occurred_at:weekday":
            return np.array(list(map(_isoweekday, map(_occurred_at, events))), dtype=float)
        if path == "occurred_at:day":
            return np.array(list(map(_day, events)), dtype=float)
        raise KeyError(f"unknown column {path!r}")

    def _attribute(self, name: str, rows: np.ndarray) -> np.ndarray:
        # Rules read an attribute over overlapping subsets (the contract of payments,
        # of invoices, of both): each row's value is read from its event once a batch.
        kept = self._attributes.get(name)
        if kept is None:
            kind = ATTRIBUTE_TYPES.get(name, "str")
            dtype = float if kind == "num" else bool if kind == "bool" else object
            kept = self._attributes[name] = (np.empty(len(self.events), dtype=dtype), np.zeros(len(self.events), bool))
        values, read = kept
        unread = rows[~read[rows]]
        if len(unread):
            values[unread] = self._read_attribute(name, unread)
            read[unread] = True
        return values[rows]

    def _read_attribute(self, name: str, rows: np.ndarray) -> np.ndarray:
        events = self.events
        values = list(map(dict.get, map(_attributes, map(events.__getitem__, rows.tolist())), repeat(name)))
        kind = ATTRIBUTE_TYPES.get(name, "str")
        if kind == "num":
            if set(map(type, values)) <= _NUMBER_TYPES:  # None -> NaN, as _as_num gives
                return np.array(values, dtype=float)
            return np.fromiter((_as_num(v) for v in values), float, len(values))
        if kind == "bool":
            return np.fromiter((v is True or v == "true" for v in values), bool, len(values))
        if not set(map(type, values)) <= _TEXT_TYPES:  # (the test runs in C; mostly text already)
            values = [v if v is None or type(v) is str else _as_str(v) for v in values]
        return np.fromiter(values, dtype=object, count=len(values))

    def value(self, path: str, row: int):
        """One field of one event, for messages and keys (None when absent)."""
        return field_getter(path)(self.events[row])
