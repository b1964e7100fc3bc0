"""Exports of the ticket side to CSV and XLSX: the violation record (违规行为记录),
typical cases (典型案例) and ticket lists. Headers are Chinese with English.

    write_export(Path("violations.xlsx"), "violations", store.violations())

What the data says is written as text, never as something a spreadsheet runs:
in XLSX every string is a string cell (a value starting with ``=`` is not a
formula); in CSV a value starting with ``=``, ``+``, ``-``, ``@``, tab or CR
gets a leading ``'``. Control characters, which XLSX cannot hold, become
U+FFFD in both.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path
from typing import Any, Iterable

__all__ = ["COLUMNS", "csv_cell", "write_export", "xlsx_row"]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_BASE = [
    ("id", "工单号 / Ticket"), ("risk_id", "风险编号 / Risk"), ("title", "预警 / Alert"), ("org_id", "单位 / Org"),
    ("severity", "等级 / Severity"), ("owner_post", "责任岗位 / Owner post"), ("owner_department", "责任部门 / Department"),
    ("status", "状态 / Status"), ("first_seen", "首次发现 / First seen"), ("opened_at", "立单时间 / Opened"),
    ("due_at", "处置时限 / Due"),
]
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "tickets": _BASE + [("counterparty_name", "交易对象 / Counterparty"), ("assignee", "处置人 / Assignee"), ("outcome", "处置结论 / Outcome"),
                        ("escalation_level", "升级层级 / Escalation"), ("message", "说明 / Message")],
    "violations": _BASE + [("outcome", "处置结论 / Outcome"), ("resolved_at", "处置时间 / Resolved"),
                           ("event_ids", "证据事件 / Evidence events"), ("message", "说明 / Message")],
    "cases": _BASE + [("closed_at", "办结时间 / Closed"), ("case_summary", "案例摘要 / Case summary"),
                      ("message", "说明 / Message")],
}


def _cell(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).isoformat(timespec="seconds")
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return value


def csv_cell(value: Any) -> Any:
    r"""A value for a CSV file that a spreadsheet opens as text.

    >>> csv_cell("=1+1"), csv_cell("SUB\x01") == "SUB\ufffd", csv_cell(-5)
    ("'=1+1", True, -5)
    """
    value = _cell(value)
    if isinstance(value, str):
        value = _CONTROL.sub("\ufffd", value)
        if value.startswith(_FORMULA_START):
            value = "'" + value
    return value


def xlsx_row(sheet, values: list[Any]) -> list[Any]:
    """A row for ``sheet.append``: every string an explicit string cell."""
    from openpyxl.cell.cell import Cell

    row = []
    for value in map(_cell, values):
        if isinstance(value, str):
            value = _CONTROL.sub("\ufffd", value)
            if value.startswith("="):  # openpyxl reads only these as formulas: a cell of its own, typed text
                value = Cell(sheet, row=1, column=1, value=value)  # placed by append
                value.data_type = "s"
        row.append(value)
    return row


def write_export(path: Path, kind: str, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows (any iterable: a query's stream) as CSV or XLSX, by the file's suffix; returns how many."""
    columns = COLUMNS[kind]
    table = ([row.get(key) for key, _ in columns] for row in rows)
    count = 0
    if path.suffix.lower() == ".xlsx":
        from openpyxl import Workbook

        book = Workbook(write_only=True)  # rows go straight to the file: constant memory
        sheet = book.create_sheet({"tickets": "工单", "violations": "违规行为记录", "cases": "典型案例"}[kind])
        sheet.append([label for _, label in columns])
        for values in table:
            sheet.append(xlsx_row(sheet, values))
            count += 1
        book.save(path)
    else:
        with open(path, "w", encoding="utf-8-sig", newline="") as f:  # the BOM lets Excel read the Chinese
            writer = csv.writer(f)
            writer.writerow([label for _, label in columns])
            for values in table:
                writer.writerow(list(map(csv_cell, values)))
                count += 1
    return count
