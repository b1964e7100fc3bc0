"""A mapping compiled for one CSV header: rows to event dicts a chunk at a time.

``map_record`` reads one row (as a dict) field by field, asking of every cell
what kind of field it is for. ``RowMapper`` asks once per chunk: each field's
column is converted in one pass (text stripped and prefixed, numbers with the
currency noise taken out, mapped values looked up in a table made once), and
only a cell that fails goes through ``map_record``'s own reader, so a rejected
row carries the same reason and words. The events and rejections are the same
as ``map_record`` on each row; a test holds them equal.

    mapper = RowMapper(mapping, header)
    events, rejections = mapper.map_rows(rows, numbers)   # rows: lists of cells; events: (row index, dict)
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

import orjson

from connectors.mapping import _ISO_SHAPED, FieldSpec, Mapping, _Bad, _NUMBER_NOISE, _offset, _parse_time, _read
from monitor.core.event import Rejection

__all__ = ["RowMapper"]


class _Failed:
    """A cell the field's reader refused (the row is rejected with this reason)."""

    __slots__ = ("reason", "detail")

    def __init__(self, bad: _Bad):
        self.reason, self.detail = bad.reason, bad.detail


def _cellwise(convert: Callable[[str], Any], read: Callable[[str], Any]) -> Callable[[list[str]], list[Any]]:
    """A column's converter: ``convert`` on each stripped cell that is not empty;
    a cell it refuses (ValueError, TypeError) goes to ``read``, which words why."""
    def column(cells: list[str]) -> list[Any]:
        out = []
        for s in map(str.strip, cells):
            if not s:
                out.append(None)
                continue
            try:
                out.append(convert(s))
            except (ValueError, TypeError):
                out.append(read(s))
        return out
    return column


class _Field:
    """One event field or attribute: where it goes, and its column's converter."""

    def __init__(self, name: str, spec: FieldSpec, attribute: bool, index: dict[str, int], tz):
        self.name, self.spec, self.attribute, self.tz = name, spec, attribute, tz
        self.label = f"attributes.{name}" if attribute else name
        self.column = None if spec.column is None else index.get(spec.column, -1)
        self.constant: Any = None
        self.table_fails = False  # a mapped value its field's type refuses (e.g. 否 -> "x" for a number)
        if self.column is None or self.column < 0:  # a constant, or a column the header lacks: the same for every row
            self.constant = self._read_cell("")
        self.convert = self._converter()

    def _read_cell(self, cell: str) -> Any:
        """``map_record``'s reading of one cell (a failure becomes a ``_Failed``)."""
        try:
            return _read(self.spec, {self.spec.column: cell} if self.column != -1 else {}, self.label, self.tz)
        except _Bad as bad:
            self.failed = True
            return _Failed(bad)

    def _converter(self) -> Callable[[list[str]], list[Any]]:
        spec, read = self.spec, self._read_cell
        if spec.map is not None:  # every mapped value read once
            table = {key: read(key) for key in spec.map}
            self.table_fails = any(value.__class__ is _Failed for value in table.values())
            return lambda cells: [(table[s] if s in table else read(s)) if s else None for s in map(str.strip, cells)]
        if spec.type == "text":
            prefix = spec.prefix
            if prefix:
                return lambda cells: [prefix + s if s else None for s in map(str.strip, cells)]
            return lambda cells: [s or None for s in map(str.strip, cells)]
        if spec.type == "number":
            def number(s: str) -> float:
                try:
                    return float(s)
                except ValueError:  # "¥1,200.50" and the like, or not a number at all
                    return float(_NUMBER_NOISE.sub("", s))
            return _cellwise(number, read)
        if spec.type == "datetime":
            fmt, tz = spec.format, self.tz
            # the usual export shape, zero-padded date and time: checked, then rewritten as text
            shape = _ISO_SHAPED[fmt] if fmt == "%Y-%m-%d %H:%M:%S" else None
            offset = dt.datetime(2000, 1, 1, tzinfo=tz).isoformat()[19:]  # "+08:00"
            fromisoformat = dt.datetime.fromisoformat

            def time_of(s: str) -> str:
                if shape is not None and shape.fullmatch(s):
                    fromisoformat(s)  # checks the date and time are real
                    return f"{s[:10]}T{s[11:]}{offset}"  # what isoformat() would write, unformatted
                when = _parse_time(s, fmt)
                return when.isoformat() if when.tzinfo is not None else when.isoformat() + offset
            return _cellwise(time_of, read)
        return lambda cells: [read(s) if s else None for s in map(str.strip, cells)]

    def values(self, columns: list[tuple[str, ...]], rows: int) -> tuple[list[Any], bool]:
        """This field's value in each row (None: absent), and whether any cell failed."""
        if self.column is None or self.column < 0:
            return [self.constant] * rows, self.constant.__class__ is _Failed
        self.failed = False
        values = self.convert(columns[self.column])
        return values, self.failed or self.table_fails


class RowMapper:
    """``mapping`` compiled for a file's ``header`` (see the module's docstring)."""

    def __init__(self, mapping: Mapping, header: list[str]):
        self.mapping, self.header = mapping, header
        index = {name: i for i, name in enumerate(header)}  # a repeated column: the last, as a dict of the row has it
        tz = _offset(mapping.timezone)
        self.fields = [_Field(name, spec, False, index, tz) for name, spec in mapping.fields.items()]
        self.attributes = [_Field(name, spec, True, index, tz) for name, spec in mapping.attributes.items()]
        self.base: dict[str, Any] = {"source": mapping.source, "domain": mapping.domain}
        if mapping.type:
            self.base["type"] = mapping.type

    def record(self, row: list[Any]) -> dict[str, Any]:
        """A row as ``map_record`` reads it: a dict of the header's columns (a short row's missing ones None)."""
        width = len(self.header)
        return dict(zip(self.header, row if len(row) >= width else row + [None] * (width - len(row))))

    def map_rows(self, rows: list[list[Any]], numbers: list[int]) -> tuple[list[tuple[int, dict]], list[Rejection]]:
        """(index in ``rows``, event dict) of the rows that map, and a Rejection
        (naming its line from ``numbers``) for each that does not."""
        width = len(self.header)
        cells = [row if len(row) == width else (row + [""] * (width - len(row)))[:width] for row in rows]
        columns = list(zip(*cells)) if cells else []
        if columns:
            columns = [col if None not in col else tuple("" if c is None else c for c in col) for col in columns]
        n = len(rows)
        events = [self.base.copy() for _ in range(n)]
        attributes = [{} for _ in range(n)] if self.attributes else []
        failed: dict[int, _Failed] = {}  # row -> the first field, in the mapping's order, that failed
        for f in self.fields + self.attributes:
            values, any_failed = f.values(columns, n)
            if any_failed:
                for i, value in enumerate(values):
                    if value.__class__ is _Failed:
                        failed.setdefault(i, value)
                        values[i] = None
            # column by column into every row's dict: the same keys, in the same order, as row by row
            targets, name = attributes if f.attribute else events, f.name
            if None in values:
                for target, value in zip(targets, values):
                    if value is not None:
                        target[name] = value
            else:
                for target, value in zip(targets, values):
                    target[name] = value
        mapped: list[tuple[int, dict]] = []
        rejected: list[Rejection] = []
        for i, event in enumerate(events):
            if failed and i in failed:
                bad = failed[i]
                rejected.append(Rejection(numbers[i], bad.reason, bad.detail,
                                          orjson.dumps(self.record(rows[i]), default=str), self.mapping.source))
                continue
            if attributes and attributes[i]:
                event["attributes"] = attributes[i]
            mapped.append((i, event))
        return mapped, rejected
