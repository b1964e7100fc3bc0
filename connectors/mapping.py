"""Field mappings: how one source system's export becomes events.

A mapping is a YAML file an integrator writes per source system (see
``connectors/mappings/``). It names the export's format and, for each event
field and attribute, the column it comes from and how to read it:

.. code-block:: yaml

    source: erp-finance
    domain: finance
    type: payment
    format: csv
    fields:
      event_id: {column: 付款单号, prefix: "FK-"}
      occurred_at: {column: 付款日期, type: datetime, format: "%Y-%m-%d %H:%M:%S"}
      amount: {column: 金额, type: number}
    attributes:
      payee_type: {column: 收款方类型, map: {单位: company, 个人: individual}}

``map_record`` is pure: a row in, an event dict or a ``Rejection`` out.

>>> m = Mapping(source="s", domain="finance", type="payment", format="csv",
...             fields={"event_id": FieldSpec(column="单号"), "org_id": FieldSpec(value="ORG1"),
...                     "occurred_at": FieldSpec(column="日期", type="datetime", format="%Y/%m/%d"),
...                     "amount": FieldSpec(column="金额", type="number")})
>>> map_record(m, {"单号": "7", "日期": "2026/3/2", "金额": "¥1,200.50"}, line=2)["amount"]
1200.5
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from pathlib import Path
from typing import Any, Literal

import msgspec

from monitor.core.event import Rejection
from monitor.packs.rulefiles import load_document
from monitor.core.rules import Problem, convert

__all__ = ["FieldSpec", "Mapping", "MappingError", "SqlSpec", "load_mapping", "map_record"]


class FieldSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    column: str | None = None  # where the value comes from
    value: Any = None  # a constant instead of a column
    type: Literal["text", "number", "datetime", "bool"] = "text"
    format: str | None = None  # strptime format for datetimes
    map: dict[str, Any] | None = None  # translate values, e.g. 个人 -> individual
    prefix: str = ""  # put before text values (event ids unique within the source)


class SqlSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    table: str  # a table or view, optionally schema-qualified (schema.table)
    cursor: str  # a column that only grows in commit order (an identity of an append-only table)
    batch: int = 1000


class Mapping(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    source: str
    domain: Literal["finance", "investment", "procurement", "governance"]
    format: Literal["csv", "xlsx", "jsonl", "sql"]
    type: str | None = None  # the event type, when the export holds one kind of record
    encoding: str = "utf-8-sig"  # csv only; gb18030 for older exports
    delimiter: str = ","
    sheet: str | None = None  # xlsx only; default: the first sheet
    timezone: str = "+08:00"  # offset for times written without one
    sql: SqlSpec | None = None  # format sql only
    fields: dict[str, FieldSpec] = {}
    attributes: dict[str, FieldSpec] = {}

    @property
    def passthrough(self) -> bool:
        """JSONL in the event contract needs no field mapping."""
        return self.format == "jsonl" and not self.fields


class MappingError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(map(str, problems)))


_EVENT_FIELDS = {"event_id", "source", "domain", "type", "occurred_at", "org_id", "amount", "currency",
                 "counterparty_id", "counterparty_name"}


def load_mapping(path: Path | str) -> Mapping:
    """Read and check a mapping file; MappingError names file, line and column."""
    path = Path(path)
    doc, problems = load_document(path.read_text(encoding="utf-8"), str(path))
    if doc is None or problems:
        raise MappingError(problems)
    found: list[Problem] = []
    mapping = convert(doc, (), doc.data, Mapping, None, found)
    if mapping is None:
        raise MappingError(found)
    for name in mapping.fields:
        if name not in _EVENT_FIELDS:
            line, col = doc.where(("fields", name), key=True)
            found.append(Problem(str(path), line, col, f"unknown event field '{name}' (attributes go under 'attributes:')"))
    if (mapping.format == "sql") != (mapping.sql is not None):
        line, col = doc.where(("format",))
        found.append(Problem(str(path), line, col, "format sql needs an 'sql:' block (table, cursor), and only it"))
    try:
        _offset(mapping.timezone)
    except ValueError:
        line, col = doc.where(("timezone",))
        found.append(Problem(str(path), line, col, f"timezone must look like +08:00, got '{mapping.timezone}'"))
    if found:
        raise MappingError(found)
    return mapping


@functools.lru_cache(maxsize=64)
def _offset(text: str) -> dt.timezone:
    m = re.fullmatch(r"([+-])(\d{2}):(\d{2})", text)
    if not m:
        raise ValueError(text)
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    return dt.timezone(dt.timedelta(minutes=minutes if m.group(1) == "+" else -minutes))


class _Bad(Exception):
    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail


_NUMBER_NOISE = re.compile(r"[,\s¥￥]|CNY|RMB|元")
_TRUE = {"true", "1", "y", "yes", "是", "t"}
_FALSE = {"false", "0", "n", "no", "否", "f"}


# Formats whose strict, zero-padded spelling fromisoformat reads exactly as strptime does, in
# a fraction of the time (strptime is most of a CSV row's cost); anything else goes to strptime.
_ISO_SHAPED = {
    "%Y-%m-%d %H:%M:%S": re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"),
    "%Y-%m-%dT%H:%M:%S": re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}"),
    "%Y-%m-%d": re.compile(r"\d{4}-\d{2}-\d{2}"),
}


def _parse_time(text: str, format: str | None) -> dt.datetime:
    """``strptime(text, format)``, or ``fromisoformat(text)`` with no format.

    >>> _parse_time("2026-06-03 14:20:00", "%Y-%m-%d %H:%M:%S") == dt.datetime(2026, 6, 3, 14, 20)
    True
    >>> _parse_time("2026-6-3 9:05:00", "%Y-%m-%d %H:%M:%S") == dt.datetime(2026, 6, 3, 9, 5)
    True
    """
    if format is None:
        return dt.datetime.fromisoformat(text)
    shape = _ISO_SHAPED.get(format)
    if shape is not None and shape.fullmatch(text):
        return dt.datetime.fromisoformat(text)
    return dt.datetime.strptime(text, format)


def _read(spec: FieldSpec, row: dict[str, Any], name: str, tz: dt.timezone) -> Any:
    if spec.column is None:
        raw = spec.value
    else:
        if spec.column not in row:
            raise _Bad("missing_field", f"column '{spec.column}' (for {name}) is not in the record")
        raw = row[spec.column]
    if isinstance(raw, str):
        raw = raw.strip()
    if raw is None or raw == "":
        return None
    if spec.map is not None:
        key = str(raw)
        if key not in spec.map:
            raise _Bad("wrong_type", f"column '{spec.column}' (for {name}): '{key}' is not one of {', '.join(spec.map)}")
        raw = spec.map[key]
    try:
        if spec.type == "number":
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                return float(raw)
            return float(_NUMBER_NOISE.sub("", str(raw)))
        if spec.type == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).lower()
            if text in _TRUE or text in _FALSE:
                return text in _TRUE
            raise ValueError(raw)
        if spec.type == "datetime":
            if isinstance(raw, dt.datetime):
                # From a database or a spreadsheet: an instant without the writer's offset,
                # so it is read in the source system's zone (timestamptz comes back in UTC).
                when = raw.replace(tzinfo=tz) if raw.tzinfo is None else raw.astimezone(tz)
            else:
                when = _parse_time(str(raw), spec.format)
                if when.tzinfo is None:  # text with an offset keeps it: local time is the writer's
                    when = when.replace(tzinfo=tz)
            return when.isoformat()
    except (ValueError, TypeError):
        reason = "bad_timestamp" if spec.type == "datetime" else "wrong_type"
        expected = f"a {spec.type}" + (f" like {spec.format}" if spec.format else "")
        raise _Bad(reason, f"column '{spec.column}' (for {name}): '{raw}' is not {expected}") from None
    if spec.map is not None and not isinstance(raw, str):
        return raw  # a mapped value of its own type (e.g. 是 -> true)
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)  # spreadsheets store 12345 as 12345.0
    return spec.prefix + str(raw)


def map_record(mapping: Mapping, row: dict[str, Any], line: int) -> dict[str, Any] | Rejection:
    """One source record as an event dict (not yet validated against the
    contract), or a Rejection naming the line, column and value."""
    tz = _offset(mapping.timezone)
    event: dict[str, Any] = {"source": mapping.source, "domain": mapping.domain}
    if mapping.type:
        event["type"] = mapping.type
    try:
        for name, spec in mapping.fields.items():
            value = _read(spec, row, name, tz)
            if value is not None:
                event[name] = value
        attributes = {}
        for name, spec in mapping.attributes.items():
            value = _read(spec, row, f"attributes.{name}", tz)
            if value is not None:
                attributes[name] = value
    except _Bad as bad:
        return Rejection(line, bad.reason, bad.detail, _raw(row), mapping.source)
    if attributes:
        event["attributes"] = attributes
    return event


def _raw(row: dict[str, Any]) -> bytes:
    import orjson

    return orjson.dumps(row, default=str)
