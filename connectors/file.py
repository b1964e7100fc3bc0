"""The file connector: JSONL, CSV and XLSX exports onto the event topics.

    riskwatch connect file --input 付款单.csv --mapping connectors/mappings/erp_payments.yaml

Each record is mapped (``connectors.mapping``), checked against the event
contract, and sent keyed by org_id; a record that fails goes to the dead-letter
topic with the reason. The connector never stops on bad input; it reports
counts at the end (read = sent + dead-lettered).
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice, repeat
from operator import attrgetter
from pathlib import Path
from typing import Any, Iterator

import orjson

from connectors.mapping import Mapping, map_record
from connectors.rows import RowMapper
from connectors.sink import EventSink
from monitor.core.event import Event, Rejection, decode_lines, decode_one

__all__ = ["ConnectorReport", "JSONL_CONTRACT", "deliver", "read_records", "run_file_connector"]

JSONL_CONTRACT = Mapping(source="file", domain="finance", format="jsonl")  # events already in the contract


@dataclass
class ConnectorReport:
    read: int = 0
    sent: int = 0
    dead_lettered: int = 0
    reasons: Counter = field(default_factory=Counter)

    @property
    def balanced(self) -> bool:
        return self.read == self.sent + self.dead_lettered


def csv_rows(f, mapping: Mapping) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header of an open CSV file, and its (line, cells) rows; blank lines are no records."""
    reader = csv.reader(f, delimiter=mapping.delimiter)
    header = [name.strip() for name in next(reader, [])]
    return header, ((reader.line_num, row) for row in reader if row)


def read_records(path: Path, mapping: Mapping) -> Iterator[tuple[int, Any]]:
    """(line or row number, record): bytes for JSONL, a dict of columns for CSV/XLSX."""
    if mapping.format == "jsonl":
        with open(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                if raw.strip():
                    yield number, raw
    elif mapping.format == "csv":
        with open(path, encoding=mapping.encoding, newline="") as f:
            header, rows = csv_rows(f, mapping)
            width = len(header)
            for number, row in rows:
                if len(row) < width:  # a short row: its missing cells are empty, as csv.DictReader has them
                    row += [None] * (width - len(row))
                yield number, dict(zip(header, row))  # cells past the header are dropped
    else:
        from openpyxl import load_workbook

        book = load_workbook(path, data_only=True)  # not read-only: its rows keep their numbers
        sheet = book[mapping.sheet] if mapping.sheet else book.worksheets[0]
        rows = sheet.iter_rows()
        header = [str(c.value).strip() if c.value is not None else "" for c in next(rows, ())]
        for cells in rows:
            values = [c.value for c in cells]
            if all(v is None or v == "" for v in values):
                continue
            yield cells[0].row, dict(zip(header, values))
        book.close()


def deliver(mapping: Mapping, record: Any, number: int, sink: EventSink, origin: str, position: str,
            report: ConnectorReport) -> None:
    """Map one record, check it against the contract, and send it or dead-letter it."""
    report.read += 1
    if mapping.passthrough:
        raw = record
        decoded: Event | Rejection = decode_one(raw, number)
    else:
        mapped = map_record(mapping, record, number)
        if isinstance(mapped, Rejection):
            decoded, raw = mapped, mapped.raw
        else:
            raw = orjson.dumps(mapped)
            decoded = decode_one(raw, number)
    if isinstance(decoded, Event):
        sink.send_event(decoded.domain, decoded.org_id, raw.rstrip(b"\r\n"))
        report.sent += 1
        return
    original = raw if mapping.passthrough else orjson.dumps(record, default=str)  # the record as it came
    _dead_letter(sink, report, original, decoded, origin, position)


_domain, _org_id = attrgetter("domain"), attrgetter("org_id")


def run_file_connector(path: Path, mapping: Mapping, sink: EventSink, chunk: int = 4096) -> ConnectorReport:
    """Send a file's records, checked against the contract a chunk at a time (one
    decode loop and one batch into the producer per chunk, not a call per record)."""
    report = ConnectorReport()
    origin = str(path)
    raws: list[bytes] = []
    numbers: list[int] = []
    records: dict[int, Any] = {}  # line -> the record as it came, for a mapped one the contract refuses
    as_record = None  # how such a record is written: a CSV row (a list of cells) as a dict of its columns
    unmapped: list[Rejection] = []  # refused by the mapping: dead-lettered with the chunk, in line order

    def send(first_line: int | None = None) -> None:
        """The chunk in ``raws``: its lines are ``numbers``, or run on from ``first_line``."""
        sent_raws: list[bytes] = []
        events, rejected = decode_lines(raws, first_line or 1, numbers=None if first_line else numbers, raws=sent_raws)
        if first_line:  # the lines of a JSONL file as read: blank ones are no records
            report.read += len(events) + len(rejected)
        sink.send_events(zip(map(_domain, events), map(_org_id, events), map(bytes.rstrip, sent_raws, repeat(b"\r\n"))))
        report.sent += len(events)
        for rejection in sorted(rejected + unmapped, key=lambda r: r.line) if unmapped else rejected:
            # a mapped record the contract refused goes as it came, not as the JSON made of it
            # (one the mapping refused carries it already, and is not in ``records``)
            mapped = records.get(rejection.line)
            if mapped is not None and as_record is not None:
                mapped = as_record(mapped)
            original = rejection.raw if mapped is None else orjson.dumps(mapped, default=str)
            _dead_letter(sink, report, original, rejection, origin, f"line {rejection.line}")
        unmapped.clear()
        raws.clear()
        numbers.clear()
        records.clear()

    if mapping.passthrough:  # JSONL in the contract: read a chunk of lines at a time
        with open(path, "rb") as f:
            first_line = 1
            while lines := list(islice(f, chunk)):
                raws[:] = lines
                send(first_line)
                first_line += len(lines)
        sink.flush()
        return report
    if mapping.format == "csv":  # mapped column by column, a chunk of rows at a time
        with open(path, encoding=mapping.encoding, newline="") as f:
            header, rows = csv_rows(f, mapping)
            mapper = RowMapper(mapping, header)
            as_record = mapper.record
            while chunk_rows := list(islice(rows, chunk)):
                lines = [number for number, _ in chunk_rows]
                cells = [row for _, row in chunk_rows]
                report.read += len(chunk_rows)
                mapped_events, refused = mapper.map_rows(cells, lines)
                unmapped.extend(refused)
                for i, event in mapped_events:
                    raws.append(orjson.dumps(event))
                    records[lines[i]] = cells[i]
                    numbers.append(lines[i])
                send()
        sink.flush()
        return report
    for number, record in read_records(path, mapping):
        report.read += 1
        mapped = map_record(mapping, record, number)
        if isinstance(mapped, Rejection):
            unmapped.append(mapped)
            continue
        raws.append(orjson.dumps(mapped))
        records[number] = record
        numbers.append(number)
        if len(raws) + len(unmapped) >= chunk:
            send()
    if raws or unmapped:
        send()
    sink.flush()
    return report


def _dead_letter(sink: EventSink, report: ConnectorReport, original: bytes, rejection: Rejection, origin: str,
                 position: str) -> None:
    sink.send_dead_letter(original.rstrip(b"\r\n"), rejection.reason, rejection.detail, origin, position)
    report.dead_lettered += 1
    report.reasons[rejection.reason] += 1
