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
from pathlib import Path
from typing import Any, Iterator

import orjson

from connectors.mapping import Mapping, map_record
from connectors.sink import EventSink
from monitor.core.event import Event, Rejection, decode_one

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


def read_records(path: Path, mapping: Mapping) -> Iterator[tuple[int, Any]]:
    """(line or row number, record): bytes for JSONL, a dict of columns for CSV/XLSX."""
    if mapping.format == "jsonl":
        with open(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                if raw.strip():
                    yield number, raw
    elif mapping.format == "csv":
        with open(path, encoding=mapping.encoding, newline="") as f:
            reader = csv.DictReader(f, delimiter=mapping.delimiter)
            for row in reader:
                yield reader.line_num, {k.strip(): v for k, v in row.items() if k is not None}
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
    sink.send_dead_letter(original.rstrip(b"\r\n"), decoded.reason, decoded.detail, origin, position)
    report.dead_lettered += 1
    report.reasons[decoded.reason] += 1


def run_file_connector(path: Path, mapping: Mapping, sink: EventSink) -> ConnectorReport:
    report = ConnectorReport()
    for number, record in read_records(path, mapping):
        deliver(mapping, record, number, sink, str(path), f"line {number}", report)
    sink.flush()
    return report
