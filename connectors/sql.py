"""The SQL connector: poll a table or view by an increasing cursor column.

    riskwatch connect sql --mapping connectors/mappings/erp_payments_sql.yaml \\
        --db postgresql+psycopg://reader@erp-db/erp --state var/erp-payments.cursor [--once]

Each poll reads the rows after the last cursor value, in cursor order, maps
them like the file connector, sends them, flushes the producer, and only then
saves the new cursor (atomically, in the state file). A restart resumes after
the saved cursor: no gaps and no repeats, as long as the cursor column only
grows in commit order (an identity column of an append-only table written by
one writer, or a view ordered by commit time). A crash between the flush and
the save re-sends at most one batch; downstream, the event ids make that
harmless.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import column, create_engine, select, table, text

from connectors.file import ConnectorReport, deliver
from connectors.mapping import Mapping
from connectors.sink import EventSink

__all__ = ["CursorStore", "poll_once", "run_sql_connector"]


class CursorStore:
    """The last cursor value sent, in a small JSON file replaced atomically."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def load(self) -> Any:
        if not self.path.exists():
            return None
        saved = orjson.loads(self.path.read_bytes())
        value = saved["cursor"]
        return dt.datetime.fromisoformat(value) if saved.get("type") == "datetime" else value

    def save(self, value: Any) -> None:
        kind = "datetime" if isinstance(value, dt.datetime) else "value"
        payload = orjson.dumps({"cursor": value.isoformat() if kind == "datetime" else value, "type": kind})
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def _source_table(name: str):
    schema, _, name = name.rpartition(".")
    return table(name, schema=schema or None)  # quoted as identifiers, never pasted into SQL


def poll_once(engine, mapping: Mapping, sink: EventSink, cursors: CursorStore, report: ConnectorReport) -> int:
    """Send the next batch of rows; returns how many rows were read."""
    spec = mapping.sql
    assert spec is not None
    last = cursors.load()
    source = _source_table(spec.table)
    cursor_col = column(spec.cursor)
    query = select(text("*")).select_from(source).order_by(cursor_col).limit(spec.batch)
    if last is not None:
        query = query.where(cursor_col > last)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    if not rows:
        return 0
    origin = f"sql {spec.table}"
    for row in rows:
        deliver(mapping, row, 0, sink, origin, f"{spec.cursor}={row[spec.cursor]}", report)
    sink.flush()  # everything is acknowledged by the broker before the cursor moves
    cursors.save(rows[-1][spec.cursor])
    return len(rows)


def run_sql_connector(db_url: str, mapping: Mapping, sink: EventSink, cursors: CursorStore, once: bool = False,
                      interval: float = 5.0) -> ConnectorReport:
    """Poll until there is nothing new (``once``) or forever."""
    engine = create_engine(db_url)
    report = ConnectorReport()
    try:
        while True:
            read = poll_once(engine, mapping, sink, cursors, report)
            if read:
                continue
            if once:
                return report
            time.sleep(interval)
    finally:
        engine.dispose()
