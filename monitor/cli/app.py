"""The ``riskwatch`` group and what its commands share: consoles, loading the
pack (a broken folder exits with ``EXIT_RULES``), /metrics, the ticket store."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import click
import orjson
from rich.console import Console

from monitor.core.rules import RulePack
from monitor.packs.rulefiles import PackError, default_rules_dir, load_pack

# soft_wrap: a file:line:col message stays on one line, whatever the terminal width.
# Piped or redirected, tables get room instead of the default 80 columns.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_RULES = 2  # a broken rules folder stops start-up with this code


def _load_pack_or_exit(rules: Path | None) -> RulePack:
    try:
        pack = load_pack(rules or default_rules_dir())
    except PackError as err:
        for problem in err.problems:
            err_console.print(str(problem), markup=False)
        err_console.print(f"{len(err.problems)} error(s) in the rules folder; nothing was scored.", markup=False)
        sys.exit(EXIT_RULES)
    return pack


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def _serve_metrics(port: int):
    from prometheus_client import CollectorRegistry, start_http_server

    from monitor.metrics import Metrics

    registry = CollectorRegistry()
    metrics = Metrics(registry)
    if port < 0:
        return metrics, None
    chosen = _free_port(port)
    start_http_server(chosen, addr="127.0.0.1", registry=registry)
    return metrics, chosen


@click.group()
@click.version_option(package_name="riskwatch")
def main() -> None:
    """riskwatch: streaming compliance-risk monitoring and early warning."""


# --- run -------------------------------------------------------------------------

def _notifier(path: Path | None, metrics):
    """A notifier from a channels file, or None; a bad file stops start-up with its message."""
    if path is None:
        return None
    from monitor.cases.notify import Notifier, load_config

    try:
        return Notifier(load_config(path), metrics)
    except ValueError as err:
        err_console.print(str(err), markup=False)
        sys.exit(EXIT_RULES)


def _exit_now(code: int) -> None:
    """Exit without tearing down the scorer's state object by object.

    The state is hundreds of thousands of small objects; freeing them at
    interpreter exit takes longer than scoring a batch. Every output is
    written and closed by now, so skip it.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# --- Kafka: topics and connectors ----------------------------------------------------

# --- backtest and diff --------------------------------------------------------------------
def read_labels(path: Path, column: str) -> dict[str, object]:
    """event_id -> label from a CSV or JSONL file, or from the generator's ground truth
    (lines with ``event_ids`` and ``kind``: violations and anomalies name their rule).
    A record without an event_id stops it with the file, line and field."""
    import csv

    labels: dict[str, object] = {}

    def bad(line: int, message: str):
        err_console.print(f"{path}:{line}: {message}", markup=False)
        sys.exit(1)

    if path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            for name in ("event_id", column):
                if name not in (reader.fieldnames or []):
                    bad(1, f"no column '{name}' (has: {', '.join(reader.fieldnames or [])})")
            for row in reader:
                if not (row.get("event_id") or "").strip():
                    bad(reader.line_num, "field 'event_id' is empty")
                labels[row["event_id"].strip()] = row[column]
        return labels
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError as err:
                bad(n, f"not JSON ({err})")
            if not isinstance(record, dict):
                bad(n, "not a JSON object")
            if "event_ids" in record and "kind" in record:  # a ground-truth instance
                positive = record["kind"] in ("violation", "anomaly")
                for event_id in record["event_ids"]:
                    if positive or event_id not in labels:
                        labels[event_id] = record.get("rule") if positive else False
                continue
            if not isinstance(record.get("event_id"), str) or not record["event_id"]:
                bad(n, "field 'event_id' is missing or not a string")
            if column not in record:
                bad(n, f"field '{column}' is missing")
            labels[record["event_id"]] = record[column]
    return labels


def _db_option(f):
    return click.option("--db", default="sqlite:///riskwatch.db", show_default=True, help="The ticket database URL.")(f)


def _store(db: str):
    """The ticket store at ``db``; one that cannot be opened is a clear message and exit 2."""
    from sqlalchemy.exc import SQLAlchemyError

    from monitor.cases.tickets import SqlTicketStore

    try:
        return SqlTicketStore(db)
    except SQLAlchemyError as err:
        err_console.print(f"--db: cannot open the ticket database: {err}", markup=False)
        sys.exit(2)


def _now():
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc)


def _read_events(path: Path):
    from monitor.core.event import decode_lines

    with open(path, "rb") as f:
        lines = f.readlines()
    events, rejected = decode_lines(lines)
    return lines, events, rejected


def _unreachable(err: Exception) -> bool:
    """Whether a Kafka client said no broker answered. Its errors module is looked up,
    not imported: a command that never loaded a client (the file connector) cannot
    have raised its errors, and starts faster without it."""
    from connectors.sink import BrokerUnreachable

    kinds: list[type] = [BrokerUnreachable]
    for module in ("kafka.errors", "aiokafka.errors"):
        errors = sys.modules.get(module)
        if errors is not None:
            kinds += [errors.KafkaConnectionError, errors.KafkaTimeoutError]
    return isinstance(err, tuple(kinds))


def _broker_option(f):
    """The ``--broker`` option; a broker that cannot be reached is one line naming it, and exit 1."""
    import functools

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from connectors.sink import MissingTopics

        try:
            return f(*args, **kwargs)
        except MissingTopics as err:
            err_console.print(str(err), markup=False)
            sys.exit(1)
        except Exception as err:
            if not _unreachable(err):
                raise
            from monitor.runners.topics import default_broker

            err_console.print(f"cannot reach the Kafka broker at {kwargs.get('broker') or default_broker()} "
                              f"({type(err).__name__}): is it running, and is --broker (or $RISKWATCH_BROKER) right?",
                              markup=False)
            sys.exit(1)
    return click.option("--broker", default=None,
                        help="Kafka broker URL (default: $RISKWATCH_BROKER or kafka://127.0.0.1:9092).")(wrapper)
