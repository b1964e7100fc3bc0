"""The Kafka side: ``riskwatch topics``, ``connect file|sql|http`` and ``worker``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from monitor.cli.app import EXIT_RULES, _broker_option, _load_pack_or_exit, _notifier, _serve_metrics, console, err_console, main
from monitor.packs.rulefiles import default_rules_dir

@main.group()
def topics() -> None:
    """Create or check the Kafka topics (contract 5)."""


@topics.command("create")
@_broker_option
@click.option("--partitions", default=8, show_default=True, help="Partitions of the event and alert topics.")
def topics_create(broker, partitions):
    """Create the topics that are missing."""
    from monitor.runners.topics import create_topics, default_broker

    created, existing = create_topics(broker or default_broker(), partitions)
    for name in created:
        console.print(f"created {name}")
    for name in existing:
        console.print(f"exists  {name}")


@topics.command("check")
@_broker_option
def topics_check(broker):
    """Say whether every topic is there; exit 1 if not."""
    from monitor.runners.topics import check_topics, default_broker

    problems = check_topics(broker or default_broker())
    for p in problems:
        err_console.print(p)
    if problems:
        sys.exit(1)
    console.print("ok: all topics present")


@main.group()
def connect() -> None:
    """Connectors: bring source-system records onto the event topics."""


@connect.command("file")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Field mapping YAML for this export (none: JSONL already in the event contract).")
@_broker_option
def connect_file(input_path, mapping, broker):
    """Send a JSONL, CSV or XLSX export to Kafka; bad records go to the dead-letter topic."""
    from connectors.file import JSONL_CONTRACT, run_file_connector
    from connectors.mapping import MappingError, load_mapping
    from connectors.sink import DeliveryError, KafkaSink
    from monitor.runners.topics import default_broker

    try:
        spec = load_mapping(mapping) if mapping else JSONL_CONTRACT
    except MappingError as err:
        for problem in err.problems:
            err_console.print(str(problem), markup=False)
        sys.exit(EXIT_RULES)
    from monitor.runners.heap import FrozenHeap

    sink = KafkaSink(broker or default_broker())
    try:
        with FrozenHeap():  # what the imports made is not scanned again with every young collection
            report = run_file_connector(input_path, spec, sink)
    except DeliveryError as err:
        err_console.print(f"{input_path}: {err}, so not every record reached Kafka; the run failed", markup=False)
        sys.exit(1)
    finally:
        sink.close()
    reasons = ", ".join(f"{r} {n}" for r, n in report.reasons.most_common())
    console.print(f"read {report.read} = sent {report.sent} + dead-lettered {report.dead_lettered}"
                  + (f" ({reasons})" if reasons else ""))
    if not report.balanced:
        sys.exit(1)


@connect.command("sql")
@click.option("--mapping", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Mapping YAML with format: sql and an sql: block (table, cursor).")
@click.option("--db", "db_url", required=True, help="SQLAlchemy URL of the source database (read-only access is enough).")
@click.option("--state", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Where the cursor is kept.")
@click.option("--once", is_flag=True, help="Stop when there are no new rows instead of polling on.")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between polls when idle.")
@_broker_option
def connect_sql(mapping, db_url, state, once, interval, broker):
    """Poll a table or view by an increasing cursor column and send new rows to Kafka."""
    from connectors.mapping import MappingError, load_mapping
    from connectors.sink import DeliveryError, KafkaSink
    from connectors.sql import CursorStore, run_sql_connector
    from monitor.runners.topics import default_broker

    try:
        spec = load_mapping(mapping)
    except MappingError as err:
        for problem in err.problems:
            err_console.print(str(problem), markup=False)
        sys.exit(EXIT_RULES)
    sink = KafkaSink(broker or default_broker(), client_id="riskwatch-sql")
    try:
        report = run_sql_connector(db_url, spec, sink, CursorStore(state), once=once, interval=interval)
    except KeyboardInterrupt:
        return
    except DeliveryError as err:  # the cursor stays before the batch: the next start sends it again
        err_console.print(f"{spec.sql.table}: {err}; the cursor did not move", markup=False)
        sys.exit(1)
    finally:
        sink.close()
    reasons = ", ".join(f"{r} {n}" for r, n in report.reasons.most_common())
    console.print(f"read {report.read} = sent {report.sent} + dead-lettered {report.dead_lettered}"
                  + (f" ({reasons})" if reasons else ""))


@connect.command("http")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8088, show_default=True)
@click.option("--max-bytes", default=4 * 1024 * 1024, show_default=True, help="Largest request body accepted.")
@click.option("--max-records", default=10_000, show_default=True, help="Most records in one request.")
@click.option("--tokens-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Bearer tokens senders may use, one per line (# comments). Or $RISKWATCH_HTTP_TOKENS, comma-separated.")
@_broker_option
def connect_http(host, port, max_bytes, max_records, tokens_file, broker):
    """Accept events over HTTP (POST /events, with a bearer token) and send them to Kafka."""
    import os

    from aiohttp import web

    from connectors.http import HttpLimits, create_http_app, read_tokens
    from connectors.sink import KafkaSink
    from monitor.runners.topics import default_broker

    if tokens_file is not None:
        tokens = read_tokens(tokens_file.read_text(encoding="utf-8").splitlines())
    else:
        tokens = read_tokens(os.environ.get("RISKWATCH_HTTP_TOKENS", "").split(","))
    if not tokens:
        err_console.print("no tokens: give --tokens-file or set RISKWATCH_HTTP_TOKENS (make one with: "
                          "python -c 'import secrets; print(\"rwh_\" + secrets.token_urlsafe(32))')", markup=False)
        sys.exit(2)
    if short := [t for t in tokens if len(t) < 24]:
        err_console.print(f"{len(short)} token(s) shorter than 24 characters: use long random tokens", markup=False)
        sys.exit(2)
    sink = KafkaSink(broker or default_broker(), client_id="riskwatch-http")
    app = create_http_app(sink, tokens, HttpLimits(max_bytes, max_records))
    console.print(f"listening on http://{host}:{port}/events")
    try:
        web.run_app(app, host=host, port=port, print=None)
    finally:
        sink.close()


@main.command()
@_broker_option
@click.option("--rules", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Rules folder (default: the built-in pack).")
@click.option("--db", default="sqlite:///riskwatch.db", show_default=True, help="Ticket database URL; 'none' for no tickets.")
@click.option("--metrics-port", default=9465, show_default=True, help="Port for /metrics (-1: off).")
@click.option("--batch-size", default=10_000, show_default=True,
              help="Most events scored together (a fetch from Kafka holds at most this many).")
@click.option("--checkpoint-events", default=50_000, show_default=True,
              help="Commit state, alerts and offsets after this many events (and at least every second): "
                   "what a crash scores again.")
@click.option("--checkpoint-every", default=1.0, show_default=True, type=click.FloatRange(min=0.01),
              help="Seconds between checkpoints at most.")
@click.option("--alerts-within", default=0.1, show_default=True, type=click.FloatRange(min=0.01),
              help="Seconds after the last checkpoint by which a batch's alerts are committed (readable "
                   "read_committed): a batch that raised alerts brings the checkpoint forward.")
@click.option("--loglevel", default="warn", show_default=True, type=click.Choice(["crit", "error", "warn", "info", "debug"]))
@click.option("--app-id", default="riskwatch", show_default=True,
              help="Consumer group and table name prefix: workers with the same id share the work.")
@click.option("--notify", "notify_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Notification channels and routes (YAML): new tickets and escalations.")
@click.option("--quiet-after", default=60.0, show_default=True,
              help="Seconds without events after which an org's review deadlines are judged by the clock.")
@click.option("--live-within", default=2 * 86400.0, show_default=True,
              help="... for orgs whose newest events were at most this many seconds behind the clock (a live "
                   "stream, not a replay of history).")
@click.option("--stop-within", default=20.0, show_default=True,
              help="Seconds a stop signal gives the last checkpoint (the batch in hand) to commit.")
def worker(broker, rules, db, metrics_port, batch_size, checkpoint_events, checkpoint_every, alerts_within, loglevel, app_id, notify_path, quiet_after,
           live_within, stop_within):
    """Run the faust worker on the Kafka event topics (add workers to scale by partitions).

    SIGTERM or SIGINT: the batch in hand is scored and committed, then the worker leaves its group
    and exits 0, within --stop-within seconds (exit 1 if that last commit fails); a second signal stops at once."""
    from monitor.runners.scoring import partitionable
    from monitor.runners.topics import check_topics, default_broker
    from monitor.runners.graceful import GracefulWorker
    from monitor.runners.worker import create_app

    pack = _load_pack_or_exit(rules)
    if not partitionable(pack):
        err_console.print("every rule's key must include org_id for the worker (it partitions the stream by org)")
        sys.exit(EXIT_RULES)
    broker = broker or default_broker()
    problems = check_topics(broker)
    if problems:
        for p in problems:
            err_console.print(p)
        sys.exit(1)
    metrics, port = _serve_metrics(metrics_port)
    if port:
        console.print(f"metrics: http://127.0.0.1:{port}/metrics")
    from monitor.packs.reload import PackReloader

    reloader = PackReloader(rules or default_rules_dir(), pack, metrics,
                            accept=lambda p: None if partitionable(p) else "a rule's key lacks org_id (the worker partitions by org)")
    reloader.start()  # the rules folder is watched; SIGHUP reloads too
    app = create_app(pack, broker, None if db == "none" else db, metrics, batch_size=batch_size, app_id=app_id,
                     checkpoint_events=checkpoint_events, checkpoint_every=checkpoint_every,
                     alerts_within=alerts_within, reloader=reloader, notifier=_notifier(notify_path, metrics),
                     quiet_after=quiet_after, live_within=live_within)
    worker_ = GracefulWorker(app, loglevel=loglevel, quiet=True, finish_within=stop_within)
    # The Kafka clients log each request at debug level; formatting those costs more than scoring.
    level = getattr(logging, {"crit": "CRITICAL", "warn": "WARNING"}.get(loglevel, loglevel.upper()))
    for name in ("aiokafka", "kafka", "faust", "mode"):
        logging.getLogger(name).setLevel(max(level, logging.INFO))
    worker_.execute_from_commandline()
