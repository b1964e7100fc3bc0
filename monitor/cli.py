"""The ``riskwatch`` command line (contract 3).

    riskwatch demo                      generate a stream, score it, open tickets, serve /metrics
    riskwatch generate --out FILE       write the demo stream and its ground truth
    riskwatch run --input F --alerts-out A [--rules DIR] [--db URL] [--rejected-out R]
    riskwatch rules lint [DIR]          validate every file an analyst writes
    riskwatch rules test [DIR]          run the test cases inside the rule files
    riskwatch rules diff --base REV|DIR --events F   the alerts a rules change adds and removes
    riskwatch rules coverage [DIR] [--events F]      risks with no live rule, rules that never fire, unused lists
    riskwatch rules versions [--db URL]              the rule pack versions that have scored
    riskwatch detectors list|train|evaluate   the anomaly detectors of rules/detectors.yaml
    riskwatch tickets list|show|ack|investigate|resolve|close|reopen|assign|comment|case|escalate|export
    riskwatch serve [--db URL]          the REST API and web UI; riskwatch users add|token manage its users
    riskwatch report --month YYYY-MM    the monthly compliance report (XLSX and HTML)
    riskwatch backtest --events F [--labels L] [--html R]   what the rules would have flagged, and how well
    riskwatch schema                    print the event JSON Schema
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import socket
import sys
import time
from collections import Counter
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from monitor.rulefiles import PackError, default_rules_dir, lint, load_pack
from monitor.rules import RulePack

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
    from monitor.notify import Notifier, load_config

    try:
        return Notifier(load_config(path), metrics)
    except ValueError as err:
        err_console.print(str(err), markup=False)
        sys.exit(EXIT_RULES)


def _score_file(pack, input_path: Path, alerts_out: Path | None, rejected_out: Path | None, db: str | None,
                metrics, show_progress: bool, batch_size: int, workers: int, reloader=None, notifier=None):
    from monitor.runner import EmbeddedRunner, rejection_line, write_alerts

    runner = EmbeddedRunner(pack, None, metrics, batch_size=batch_size, workers=workers, reloader=reloader,
                            notifier=notifier, open_store=(lambda: _store(db)) if db else None)
    if str(input_path) == "-":  # a stream: scored as it comes, rules reloaded between batches
        summary = runner.run_stream(sys.stdin.buffer)
        with open(rejected_out or Path("stdin.rejected.jsonl"), "wb") as rej:
            rej.writelines(rejection_line(r) for r in runner.rejected)
        if alerts_out is not None:
            write_alerts(alerts_out, sorted(runner.alerts.values(), key=lambda a: (a.first_seen, a.dedup_key)))
        return runner, summary
    if not show_progress:
        return runner, runner.run_file(input_path, alerts_out, rejected_out)
    total = sum(1 for _ in open(input_path, "rb"))
    with Progress(TextColumn("[bold]scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("events"),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task("score", total=total)
        summary = runner.run_file(input_path, alerts_out, rejected_out, progress=lambda n: bar.advance(task, n))
    return runner, summary


def _print_summary(summary, alerts: dict, pack: RulePack) -> None:
    t = Table(title="Run summary", show_header=False)
    t.add_row("events in", f"{summary.lines:,}")
    t.add_row("scored", f"{summary.scored:,}")
    t.add_row("rejected", f"{summary.rejected:,}" + (
        "  (" + ", ".join(f"{r} {n}" for r, n in summary.rejected_by_reason.most_common()) + ")" if summary.rejected else ""))
    t.add_row("in = scored + rejected", "yes" if summary.balanced else "NO")
    t.add_row("findings", f"{summary.findings:,}")
    t.add_row("alerts", f"{len(alerts):,}")
    t.add_row("tickets opened / updated", f"{summary.tickets_opened:,} / {summary.tickets_updated:,}")
    t.add_row("elapsed", f"{summary.elapsed:.2f} s")
    t.add_row("events per second", f"{summary.events_per_second:,.0f}" +
              (f"  ({summary.workers} scoring processes)" if summary.workers > 1 else ""))
    console.print(t)
    by_risk = Table(title="Alerts by risk and severity")
    for col in ("risk", "title", "severity", "alerts", "shadow"):
        by_risk.add_column(col)
    rows: dict[tuple[str, str], list[int]] = {}
    for (risk, severity, status), n in summary.alerts_by_risk.items():
        rows.setdefault((risk, severity), [0, 0])[status != "live"] += n
    for (risk, severity), (live, shadow) in sorted(rows.items()):
        by_risk.add_row(risk, pack.risks[risk].title_zh, severity, str(live), str(shadow) if shadow else "")
    console.print(by_risk)


@main.command()
@click.option("--input", "input_path", required=True, type=click.Path(allow_dash=True, dir_okay=False, path_type=Path),
              help="JSONL file of events (contract 1); - for standard input.")
@click.option("--alerts-out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Where to write alerts, one per line.")
@click.option("--rules", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Rules folder (default: the built-in pack).")
@click.option("--db", default="sqlite:///riskwatch.db", show_default=True, help="Ticket database URL; 'none' for no tickets.")
@click.option("--rejected-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Rejected records (default: <input stem>.rejected.jsonl beside the input).")
@click.option("--metrics-port", default=-1, show_default=True, help="Serve /metrics on this port while running (-1: off).")
@click.option("--batch-size", default=8192, show_default=True)
@click.option("--workers", type=int, help="Scoring processes, each taking a share of the orgs (default: cores, at most 2).")
@click.option("--quiet", is_flag=True, help="No progress bar or tables; print only the count line.")
@click.option("--detectors/--no-detectors", default=True, show_default=True,
              help="Run the anomaly detectors of detectors.yaml too, or the rules alone.")
@click.option("--watch/--no-watch", default=None,
              help="Reload the rules folder when it changes or on SIGHUP, between batches (default: on for stdin).")
@click.option("--notify", "notify_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Notification channels and routes (YAML): new tickets and escalations.")
def run(input_path, alerts_out, rules, db, rejected_out, metrics_port, batch_size, workers, quiet, detectors, watch,
        notify_path):
    """Score a JSONL file of events and write one alert per line."""
    if str(input_path) != "-" and not input_path.is_file():
        err_console.print(f"{input_path}: no such file", markup=False)
        sys.exit(2)
    pack = _load_pack_or_exit(rules)
    if not detectors:
        pack = pack.only({r.id for r in pack.rules})
    reloader = None
    if watch or (watch is None and str(input_path) == "-"):
        from monitor.reload import PackReloader

        reloader = PackReloader(rules or default_rules_dir(), pack)
        reloader.start()
    metrics, port = _serve_metrics(metrics_port)
    if port:
        console.print(f"metrics: http://127.0.0.1:{port}/metrics")
    from monitor.runner import default_workers

    if reloader is not None:
        reloader.metrics = metrics
    notifier = _notifier(notify_path, metrics)
    runner, summary = _score_file(pack, input_path, alerts_out, rejected_out, None if db == "none" else db,
                                  metrics, show_progress=not quiet and console.is_terminal, batch_size=batch_size,
                                  workers=workers or default_workers(), reloader=reloader, notifier=notifier)
    if notifier is not None and not notifier.flush(timeout=60):
        err_console.print("some notifications were still being sent at exit")
    if reloader is not None:
        reloader.stop()
        if len(reloader.versions) > 1 or reloader.rejected:
            console.print(f"rule pack versions used: {' → '.join(reloader.versions)}; {reloader.rejected} reload(s) rejected")
    if not quiet:
        _print_summary(summary, runner.alerts, pack)
    console.print(f"in {summary.lines} = scored {summary.scored} + rejected {summary.rejected}; "
                  f"{len(runner.alerts)} alerts; {summary.tickets_opened} tickets opened, "
                  f"{summary.tickets_updated} updated; {summary.events_per_second:,.0f} events/s")
    _exit_now(0 if summary.balanced else 1)


def _exit_now(code: int) -> None:
    """Exit without tearing down the scorer's state object by object.

    The state is hundreds of thousands of small objects; freeing them at
    interpreter exit takes longer than scoring a batch. Every output is
    written and closed by now, so skip it.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# --- generate and demo ------------------------------------------------------------------

def _write_stream(stream, out: Path, labels: Path | None) -> Path:
    stream.write(out)
    labels = labels or out.with_name(out.stem + ".truth.jsonl")
    labels.write_bytes(stream.truth.to_jsonl())
    return labels


@main.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--events", default=100_000, show_default=True, help="About how many events.")
@click.option("--seed", default=20260601, show_default=True)
@click.option("--labels", type=click.Path(dir_okay=False, path_type=Path),
              help="Ground truth (default: <out stem>.truth.jsonl beside it).")
def generate(out, events, seed, labels):
    """Write the demo stream (and its ground truth) without scoring it."""
    from monitor.generator import generate as make

    stream = make(events=events, seed=seed)
    labels = _write_stream(stream, out, labels)
    console.print(f"wrote {len(stream.lines):,} lines to {out} ({len(stream.truth.violations())} planted violations, "
                  f"{len(stream.truth.near_misses())} near-misses, {stream.truth.malformed} malformed); truth in {labels}")


def _truth_table(truth, alerts: dict) -> Table:
    alerted: dict[str, set[str]] = {}
    for alert in alerts.values():
        alerted.setdefault(alert.rule_id, set()).update(alert.event_ids)
    t = Table(title="Planted cases (ground truth)")
    for col in ("scenario", "rule", "planted", "caught", "near-misses", "false alarms"):
        t.add_column(col, no_wrap=True)
    by_rule: dict[str, list] = {}
    for inst in truth.instances:
        row = by_rule.setdefault(inst.rule, [inst.scenario, 0, 0, 0])
        if inst.kind == "violation":
            row[1] += 1
            row[2] += set(inst.event_ids) <= alerted.get(inst.rule, set())
        elif inst.kind == "anomaly":  # a detector finds it when an alert holds any of its events
            row[1] += 1
            row[2] += bool(set(inst.event_ids) & alerted.get(inst.rule, set()))
        else:
            row[3] += 1
    planted_ids = {e for i in truth.instances if i.kind != "near_miss" for e in i.event_ids}
    false_alarms = Counter(a.rule_id for a in alerts.values() if not set(a.event_ids) & planted_ids)
    for rule, (scenario, planted, caught, near) in sorted(by_rule.items(), key=lambda kv: kv[1][0]):
        t.add_row(str(scenario), rule, str(planted), str(caught), str(near), str(false_alarms.get(rule, 0)))
    return t


@main.command()
@click.option("--events", default=100_000, show_default=True, help="About how many events to generate.")
@click.option("--seed", default=20260601, show_default=True)
@click.option("--out", default="riskwatch-demo", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the stream, alerts and the ticket database.")
@click.option("--metrics-port", default=9464, show_default=True, help="Port for /metrics (a free one if taken).")
@click.option("--hold", is_flag=True, help="Keep serving /metrics after scoring, until Ctrl-C.")
def demo(events, seed, out, metrics_port, hold):
    """Generate a realistic stream for a fictional group and score it end to end."""
    from monitor.generator import generate as make

    pack = _load_pack_or_exit(None)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    console.print(f"[bold]riskwatch demo[/bold]: 江城控股集团, 12 subsidiaries, 90 days, rule pack {pack.version} "
                  f"({len(pack.rules)} rules)")
    started = time.perf_counter()
    with console.status(f"generating about {events:,} events…"):
        stream = make(events=events, seed=seed)
        events_path = out / "events.jsonl"
        _write_stream(stream, events_path, out / "truth.jsonl")
    console.print(f"generated {len(stream.lines):,} events in {time.perf_counter() - started:.1f} s → {events_path}")
    metrics, port = _serve_metrics(metrics_port)
    console.print(f"metrics: [bold]http://127.0.0.1:{port}/metrics[/bold]")
    db_path = out / "tickets.db"
    from monitor.runner import default_workers

    runner, summary = _score_file(pack, events_path, out / "alerts.jsonl", out / "events.rejected.jsonl",
                                  f"sqlite:///{db_path}", metrics, show_progress=True, batch_size=8192,
                                  workers=default_workers())
    _print_summary(summary, runner.alerts, pack)
    console.print(_truth_table(stream.truth, runner.alerts))
    console.print(f"alerts: {out / 'alerts.jsonl'}   tickets: {db_path} ({summary.tickets_opened} open)   "
                  f"rejected: {out / 'events.rejected.jsonl'}")
    console.print(f"in {summary.lines} = scored {summary.scored} + rejected {summary.rejected}; "
                  f"total {time.perf_counter() - started:.1f} s")
    if hold:
        console.print(f"serving metrics on port {port}; Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


# --- rules ------------------------------------------------------------------------------

@main.group()
def rules() -> None:
    """Validate and test rules folders."""


@rules.command("lint")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--today", type=click.DateTime(["%Y-%m-%d"]), help="Date for exception expiry (default: today).")
def rules_lint(directory, today):
    """Validate rule packs, risk_list.yaml, duties.yaml, params.yaml and lists/*.csv."""
    directory = directory or default_rules_dir()
    try:
        pack, problems = lint(directory, today.date() if today else None)
    except PackError as err:
        pack, problems = None, err.problems
    for problem in problems:
        (err_console if problem.level == "error" else console).print(str(problem), markup=False)
    errors = sum(1 for p in problems if p.level == "error")
    warnings = len(problems) - errors
    if pack is None:
        err_console.print(f"{errors} error(s), {warnings} warning(s)", markup=False)
        sys.exit(EXIT_RULES)
    console.print(f"ok: {len(pack.rules)} rules, {len(pack.detectors)} detectors, {len(pack.risks)} risks, {len(pack.lists)} lists, "
                  f"version {pack.version}; {warnings} warning(s)")


@rules.command("test")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--rule", "rule_ids", multiple=True, help="Only these rules.")
def rules_test(directory, rule_ids):
    """Run the test cases written inside the rule files."""
    from monitor.ruletest import run_rule_tests

    pack = _load_pack_or_exit(directory)
    results = run_rule_tests(pack, set(rule_ids) or None)
    per_rule: dict[str, list] = {}
    for r in results:
        per_rule.setdefault(r.rule_id, []).append(r)
    failed = 0
    for rule_id, cases in per_rule.items():
        bad = [c for c in cases if not c.passed]
        failed += len(bad)
        mark = "[green]PASS[/green]" if not bad else "[red]FAIL[/red]"
        console.print(f"{mark} {rule_id}: {len(cases) - len(bad)}/{len(cases)} cases")
        for c in bad:
            console.print(f"     ✗ {c.name}: {c.detail}", markup=False)
    untested = [r.id for r in pack.rules if r.id not in per_rule and not rule_ids]
    for rule_id in untested:
        console.print(f"[yellow]NONE[/yellow] {rule_id}: no test cases")
    console.print(f"{len(results) - failed} passed, {failed} failed")
    if failed:
        sys.exit(1)


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


def _scored_alerts(pack: RulePack, events_path: Path, workers: int | None, label: str):
    """Score a file with a pack (drafts as shadow), no tickets; returns (runner, summary)."""
    from monitor.runner import EmbeddedRunner, default_workers

    runner = EmbeddedRunner(pack.with_drafts(), None, None, workers=workers or default_workers())
    shown = console.is_terminal
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  disable=not shown) as bar:
        # counting the lines reads the file once more: only for a bar someone sees
        task = bar.add_task(label, total=sum(1 for _ in open(events_path, "rb")) if shown else None)
        summary = runner.score_file(events_path, lambda n: bar.advance(task, n))
    return runner, summary


def _fmt(v, pct: bool = True) -> str:
    if v is None or v != v:
        return "—"
    return f"{100 * v:.1f}%" if pct else f"{v:,.2f}"


@main.command("backtest")
@click.option("--rules", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Rules folder (default: the built-in pack).")
@click.option("--events", "events_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Past events, JSONL in the event contract.")
@click.option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="event_id -> label (yes/no or the rule that should flag it): CSV, JSONL, or a generator truth file.")
@click.option("--label-column", default="label", show_default=True)
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write an HTML report with charts.")
@click.option("--workers", type=int, help="Scoring processes (default: cores, at most 2).")
def backtest_cmd(rules, events_path, labels_path, label_column, html_path, workers):
    """What the rules would have flagged over past events; with labels, how well."""
    from monitor.backtest import alerts_frame, backtest

    pack = _load_pack_or_exit(rules)
    labels = read_labels(labels_path, label_column) if labels_path else None
    started = time.perf_counter()
    runner, summary = _scored_alerts(pack, events_path, workers, "backtest")
    ids = [r.id for r in pack.rules] + [d.id for d in pack.detectors]
    statuses = {r.id: r.status for r in [*pack.rules, *pack.detectors]}
    result = backtest(alerts_frame(runner.alerts.values()), labels, ids)
    t = Table(title=f"Backtest — pack {pack.version} over {events_path.name}: {summary.lines:,} records, "
                    f"{summary.rejected:,} rejected, {result.overall['alerts']:,} alerts in {result.overall['days']:.0f} days")
    cols = ["rule", "status", "alerts", "events", "per day", "max/day", "per week"]
    if result.labelled:
        cols += ["true", "precision", "recall", "F1"]
    for c in cols:
        t.add_column(c, justify="left" if c in ("rule", "status") else "right")
    for r in result.per_rule.to_dict("records"):
        row = [r["rule_id"], statuses[r["rule_id"]], str(r["alerts"]), str(r["hits"]), f"{r['alerts_per_day']:.2f}",
               str(r["max_alerts_in_a_day"]), f"{r['alerts_per_week']:.1f}"]
        if result.labelled:
            row += [str(r["true_alerts"]), _fmt(r["precision"]), _fmt(r["recall"]), _fmt(r["f1"])]
        t.add_row(*row)
    console.print(t)
    if result.labelled:
        o = result.overall
        console.print(f"overall: {o['labelled_events']:,} labelled events; precision {_fmt(o['precision'])}, "
                      f"recall {_fmt(o['recall'])}, F1 {_fmt(o['f1'])}")
        for rule, messages in result.false_alarms.items():
            for m in messages[:3]:
                console.print(f"  false alarm  {rule}: {m}", markup=False)
        for rule, items in result.misses.items():
            console.print(f"  missed       {'(no rule)' if rule == '*' else rule}: {', '.join(items)}", markup=False)
    if html_path:
        from monitor.report import write_backtest_report

        write_backtest_report(html_path, result, statuses, {
            "title": events_path.name, "rules_dir": str(rules or default_rules_dir()), "version": pack.version,
            "events_file": str(events_path), "lines": summary.lines, "scored": summary.scored, "rejected": summary.rejected})
        console.print(f"report: {html_path}")
    console.print(f"in {summary.lines} = scored {summary.scored} + rejected {summary.rejected}; "
                  f"{time.perf_counter() - started:.1f} s")
    _exit_now(0)


# --- tickets ----------------------------------------------------------------------------
@main.group()
def tickets() -> None:
    """Disposal tickets: list, show, move along the workflow, assign, comment, export."""


def _db_option(f):
    return click.option("--db", default="sqlite:///riskwatch.db", show_default=True, help="The ticket database URL.")(f)


def _store(db: str):
    """The ticket store at ``db``; one that cannot be opened is a clear message and exit 2."""
    from sqlalchemy.exc import SQLAlchemyError

    from monitor.tickets import SqlTicketStore

    try:
        return SqlTicketStore(db)
    except SQLAlchemyError as err:
        err_console.print(f"--db: cannot open the ticket database: {err}", markup=False)
        sys.exit(2)


def _now():
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc)


def _ticket_action(fn):
    """Run a store call; a TicketError or WorkflowError is a clear message and exit 1."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from monitor.tickets import TicketError
        from monitor.workflow import WorkflowError

        try:
            return fn(*args, **kwargs)
        except (TicketError, WorkflowError) as err:
            err_console.print(str(err), markup=False)
            sys.exit(1)
    return wrapper


@tickets.command("list")
@_db_option
@click.option("--status", type=click.Choice(["open", "acknowledged", "investigating", "resolved", "closed"]))
@click.option("--risk")
@click.option("--org")
@click.option("--department")
@click.option("--overdue", is_flag=True, help="Only tickets past their disposal deadline.")
def tickets_list(db, status, risk, org, department, overdue):
    """Tickets, newest first, by filter."""
    rows = _store(db).find(status, risk, org, department, _now() if overdue else None)
    t = Table(title=f"{len(rows)} ticket(s)")
    for c in ("id", "status", "risk", "severity", "org", "owner", "due", "escalated", "title"):
        t.add_column(c)
    for r in rows:
        t.add_row(str(r["id"]), r["status"], r["risk_id"], r["severity"], r["org_id"] or "", r["owner_post"],
                  str(r["due_at"])[:16], f"{r['escalation_level']} → {r['escalated_to']}" if r["escalation_level"] else "",
                  r["title"])
    console.print(t)


@tickets.command("show")
@_db_option
@click.argument("ticket_id", type=int)
@_ticket_action
def tickets_show(db, ticket_id):
    """One ticket with its audit trail."""
    store = _store(db)
    r = store.get(ticket_id)
    for key in ("id", "status", "outcome", "title", "message", "risk_id", "severity", "org_id", "owner_post",
                "owner_department", "assignee", "event_ids", "opened_at", "ack_due_at", "due_at", "escalation_level",
                "escalated_to", "typical_case", "case_summary", "pack_version"):
        console.print(f"{key:>17}: {r[key]}", markup=False)
    console.print("audit trail:")
    for a in store.audit(ticket_id):
        move = f"{a['from_status'] or ''} → {a['to_status']}" if a["to_status"] else ""
        console.print(f"  {str(a['at'])[:19]}  {a['actor']:<16} {a['action']:<12} {move:<28} {a['reason'] or ''}", markup=False)


def _move_command(name: str, to: str, help_: str, with_outcome: bool = False):
    @tickets.command(name, help=help_)
    @_db_option
    @click.argument("ticket_id", type=int)
    @click.option("--as", "actor", required=True, help="Who does it (recorded in the audit trail).")
    @click.option("--reason", help="Why (recorded in the audit trail).")
    @click.option("--outcome", type=click.Choice(["confirmed_violation", "false_positive", "remediated"]),
                  required=with_outcome, hidden=not with_outcome)
    @_ticket_action
    def command(db, ticket_id, actor, reason, outcome):
        r = _store(db).move(ticket_id, to, actor, _now(), reason, outcome)
        console.print(f"ticket {ticket_id}: {r['status']}" + (f" ({r['outcome']})" if r["outcome"] else ""))
    return command


_move_command("ack", "acknowledged", "Acknowledge a ticket.")
_move_command("investigate", "investigating", "Start investigating a ticket.")
_move_command("resolve", "resolved", "Resolve a ticket with an outcome.", with_outcome=True)
_move_command("close", "closed", "Close a resolved ticket.")
_move_command("reopen", "open", "Reopen a resolved or closed ticket.")


@tickets.command("assign")
@_db_option
@click.argument("ticket_id", type=int)
@click.option("--to", "assignee", required=True)
@click.option("--as", "actor", required=True)
@click.option("--reason")
@_ticket_action
def tickets_assign(db, ticket_id, assignee, actor, reason):
    """Assign a ticket to a person."""
    _store(db).assign(ticket_id, assignee, actor, _now(), reason)
    console.print(f"ticket {ticket_id}: assigned to {assignee}")


@tickets.command("comment")
@_db_option
@click.argument("ticket_id", type=int)
@click.argument("text")
@click.option("--as", "actor", required=True)
@_ticket_action
def tickets_comment(db, ticket_id, text, actor):
    """Add a comment to a ticket's audit trail."""
    _store(db).comment(ticket_id, actor, text, _now())
    console.print(f"ticket {ticket_id}: comment added")


@tickets.command("case")
@_db_option
@click.argument("ticket_id", type=int)
@click.option("--summary", required=True, help="What the case teaches (典型案例摘要).")
@click.option("--as", "actor", required=True)
@_ticket_action
def tickets_case(db, ticket_id, summary, actor):
    """Mark a closed ticket as a typical case (典型案例)."""
    _store(db).mark_typical(ticket_id, actor, summary, _now())
    console.print(f"ticket {ticket_id}: marked as a typical case")


@tickets.command("escalate")
@_db_option
@click.option("--rules", type=click.Path(exists=True, file_okay=False, path_type=Path))
def tickets_escalate(db, rules):
    """Run the overdue check once: escalate what is due (the runners do it periodically)."""
    done = _store(db).escalate(_load_pack_or_exit(rules), _now())
    for d in done:
        console.print(f"ticket {d['ticket_id']} ({d['risk_id']}, {d['severity']}): escalated to level {d['level']}, {d['to']}")
    console.print(f"{len(done)} ticket(s) escalated")


@tickets.command("export")
@_db_option
@click.option("--kind", type=click.Choice(["violations", "cases", "tickets"]), required=True,
              help="violations: the violation record (违规行为记录); cases: typical cases (典型案例).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="A .csv or .xlsx file.")
def tickets_export(db, kind, out):
    """Export the violation record, typical cases or all tickets to CSV or XLSX."""
    from monitor.exports import write_export

    n = write_export(out, kind, _store(db).export_rows(kind))
    console.print(f"wrote {n} row(s) to {out}")


@main.command("report")
@_db_option
@click.option("--month", required=True, help="YYYY-MM: tickets whose finding falls in this month.")
@click.option("--org", default=None, help="Only this org.")
@click.option("--rules", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", default=".", show_default=True, type=click.Path(file_okay=False, path_type=Path))
def report_cmd(db, month, org, rules, out_dir):
    """The monthly compliance report (XLSX and HTML): tickets by org, risk and severity,
    disposal rate and median time, SLA breaches, top risks, typical cases."""
    import re as _re

    from monitor.monthly import monthly
    from monitor.report import write_monthly_report

    if not _re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        err_console.print(f"--month {month}: use YYYY-MM, e.g. 2026-03")
        sys.exit(2)
    pack = _load_pack_or_exit(rules)
    m = monthly(_store(db).find(limit=10**9), month, _now(), org)
    titles = {r.id: r.title_zh for r in pack.risks.values()}
    xlsx, html = write_monthly_report(out_dir, m, titles)
    s = m.summary
    console.print(f"{month}{' ' + org if org else ''}: {s['tickets']} tickets, {s['disposed']} disposed, "
                  f"{s['sla_breaches']} SLA breaches → {xlsx}, {html}")


# --- serve and users ------------------------------------------------------------------------
@main.command()
@_db_option
@click.option("--rules", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--metrics-port", default=9466, show_default=True, help="Port for /metrics (-1: off).")
@click.option("--notify", "notify_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Notification channels and routes (YAML): escalations found by the periodic check.")
def serve(db, rules, host, port, metrics_port, notify_path):
    """The REST API (/api, OpenAPI at /docs) and the web UI for compliance managers.

    Session cookies are signed with $RISKWATCH_SESSION_SECRET (set it, or sessions end with the process)."""
    import threading

    import uvicorn

    from monitor.serve import create_app

    pack = _load_pack_or_exit(rules)
    store = _store(db)
    metrics, mport = _serve_metrics(metrics_port)
    if mport:
        console.print(f"metrics: http://127.0.0.1:{mport}/metrics")
    notifier = _notifier(notify_path, metrics)

    def periodic_check() -> None:
        from monitor.notify import announce

        while True:
            try:
                announce(metrics, notifier, escalated=store.escalate(pack, _now()))
                if metrics is not None:
                    metrics.set_ticket_gauges(store.open_by_risk(), store.overdue_by_risk(_now()))
            except Exception as err:  # noqa: BLE001 - the check must outlive a database hiccup
                logging.getLogger("riskwatch.serve").error("periodic check failed: %s", err)
            time.sleep(60)

    threading.Thread(target=periodic_check, name="riskwatch-escalation", daemon=True).start()
    app = create_app(store, pack, os.environ.get("RISKWATCH_SESSION_SECRET"), metrics=metrics)
    console.print(f"riskwatch serve: http://{host}:{port}/  (API docs: /docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@main.group()
def users() -> None:
    """Users of riskwatch serve: add them, give them API tokens."""


@users.command("add")
@_db_option
@click.argument("username")
@click.option("--role", type=click.Choice(["viewer", "officer", "head", "admin"]), required=True)
@click.option("--department", "departments", multiple=True, help="An officer's department (repeatable), e.g. 财务资金部.")
@click.option("--name", "display_name")
@click.password_option(help="At least 10 characters (asked for when not given).")
def users_add(db, username, role, departments, display_name, password):
    """Add a user, or replace one."""
    from monitor.auth import UserStore

    try:
        UserStore(_store(db).engine).add(username, password, role, list(departments), display_name)
    except ValueError as err:
        err_console.print(str(err))
        sys.exit(1)
    console.print(f"user {username}: {role}" + (f" of {', '.join(departments)}" if departments else ""))


@users.command("token")
@_db_option
@click.argument("username")
@click.option("--label", default="")
def users_token(db, username, label):
    """A new API token for a user (shown once; only its hash is kept)."""
    from monitor.auth import UserStore

    try:
        console.print(UserStore(_store(db).engine).new_token(username, label))
    except ValueError as err:
        err_console.print(str(err))
        sys.exit(1)


# --- detectors ------------------------------------------------------------------------
@main.group()
def detectors() -> None:
    """Train and evaluate the anomaly detectors of rules/detectors.yaml."""


def _read_events(path: Path):
    from monitor.event import decode_lines

    with open(path, "rb") as f:
        lines = f.readlines()
    events, rejected = decode_lines(lines)
    return lines, events, rejected


@detectors.command("list")
@click.option("--rules", type=click.Path(exists=True, file_okay=False, path_type=Path))
def detectors_list(rules):
    """The detectors of the pack: model, scope, key, threshold and risk."""
    pack = _load_pack_or_exit(rules)
    t = Table(title=f"Detectors (pack {pack.version})")
    for col in ("detector", "model", "when", "by", "threshold", "risk", "status"):
        t.add_column(col)
    for d in pack.detectors:
        trained = "" if d.model != "isolation_forest" else (" (trained)" if d.trained is not None else " (not trained)")
        t.add_row(d.id, d.model + trained, d.spec.when, ", ".join(d.by), f"{d.threshold:g}",
                  f"{d.risk.id} {d.risk.title_zh}", d.status)
    console.print(t)


@detectors.command("train")
@click.option("--history", "history", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Past events (JSONL, event contract) to learn what is normal from.")
@click.option("--rules", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--detector", "detector_id", default=None, help="Which isolation_forest entry (default: the first).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Model file (default: the entry's model_file, beside detectors.yaml).")
@click.option("--trees", default=100, show_default=True)
@click.option("--seed", default=42, show_default=True)
def detectors_train(history, rules, detector_id, out, trees, seed):
    """Fit the IsolationForest on history and save it (plain arrays, safe to load)."""
    from detectors.modelfile import save_model, train_isolation_forest
    from detectors.payments import FEATURES, training_matrix
    from monitor.batch import EventBatch
    from monitor.detecting import detector_columns

    rules_dir = rules or default_rules_dir()
    pack = _load_pack_or_exit(rules_dir)
    forests = [d for d in pack.detectors if d.model == "isolation_forest" and (detector_id in (None, d.id))]
    if not forests:
        err_console.print(f"no isolation_forest detector{' ' + detector_id if detector_id else ''} in {rules_dir}/detectors.yaml")
        sys.exit(EXIT_RULES)
    det = forests[0]
    _, events, rejected = _read_events(history)
    batch = EventBatch(events)
    rows = batch.all_rows[det.when.fn(batch, batch.all_rows)]
    if len(rows) < 256:
        err_console.print(f"{history}: only {len(rows)} events match {det.id}'s `when` ({det.spec.when}); need at least 256")
        sys.exit(1)
    matrix = training_matrix(detector_columns(batch, rows, det.by, ("key", "amount", "t", "hour", "weekday", "individual")))
    forest = train_isolation_forest(matrix, n_estimators=trees, seed=seed)
    path = out or Path(rules_dir) / (det.spec.model_file or "models/payment_iforest.npz")
    save_model(path, forest, trained_on=len(rows), source=history.name)
    console.print(f"{det.id}: trained an IsolationForest ({trees} trees) on {len(rows):,} of {len(events):,} events "
                  f"({len(rejected)} rejected lines skipped), features {', '.join(FEATURES)} → {path}")


def _labels(lines: list[bytes], column: str) -> list:
    """The label of each decodable line: a top-level key, or attributes.<key>."""
    import msgspec

    decode = msgspec.json.Decoder().decode
    out = []
    for raw in lines:
        if not raw.strip():
            continue
        try:
            record = decode(raw)
        except msgspec.DecodeError:
            out.append(None)
            continue
        value = record.get(column) if isinstance(record, dict) else None
        if value is None and isinstance(record, dict) and isinstance(record.get("attributes"), dict):
            value = record["attributes"].get(column.removeprefix("attributes."))
        out.append(value)
    return out


def _truthy(v) -> int:
    return int(v is True or (isinstance(v, (int, float)) and v > 0) or str(v).strip().lower() in ("true", "yes", "1", "y"))


@detectors.command("evaluate")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labelled events (JSONL, event contract), or a CSV of numeric features.")
@click.option("--label", "label", required=True, help="The label column: true/1/yes = anomalous.")
@click.option("--detector", "detector_ids", multiple=True, help="Only these detectors (repeatable).")
@click.option("--rules", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--k", "k", type=int, default=None, help="k for precision@k (default: the number of positives).")
def detectors_evaluate(input_path, label, detector_ids, rules, k):
    """ROC AUC, PR AUC and precision@k per detector, streaming in order (learn after score)."""
    import numpy as np

    from monitor.evaluation import evaluate, evaluate_features

    if input_path.suffix.lower() == ".csv":
        import pandas as pd

        frame = pd.read_csv(input_path)
        if label not in frame.columns:
            err_console.print(f"{input_path}:1: no column '{label}' (has: {', '.join(frame.columns)})")
            sys.exit(1)
        y = frame.pop(label).map(_truthy).to_numpy()
        numeric = frame.select_dtypes("number")
        results = evaluate_features(numeric.to_numpy(dtype=float), y, list(numeric.columns), k=k)
        scope = f"{len(frame):,} rows, features {', '.join(numeric.columns)}"
    else:
        pack = _load_pack_or_exit(rules)
        lines, events, rejected = _read_events(input_path)
        labels = _labels(lines, label)
        rejected_lines = {r.line for r in rejected}
        numbered = [n for n, raw in enumerate(lines, 1) if raw.strip()]
        y = np.array([_truthy(v) for n, v in zip(numbered, labels) if n not in rejected_lines])
        if not y.any():
            err_console.print(f"{input_path}: no line has a true '{label}' (top level or in attributes)")
            sys.exit(1)
        unknown = set(detector_ids) - {d.id for d in pack.detectors}
        if unknown:
            err_console.print(f"unknown detector(s): {', '.join(sorted(unknown))}")
            sys.exit(1)
        results = evaluate(pack, events, y, only=set(detector_ids) or None, k=k)
        scope = f"{len(events):,} events ({len(rejected)} rejected lines skipped), {int(y.sum()):,} labelled anomalous"
    t = Table(title=f"Detector evaluation — {input_path.name}: {scope}")
    for col in ("detector", "model", "in scope", "positives", "ROC AUC", "PR AUC", "k", "precision@k", "≥ threshold"):
        t.add_column(col, justify="right" if col not in ("detector", "model") else "left")
    fmt = lambda v: "—" if v != v else f"{v:.3f}"  # noqa: E731
    for r in results:
        t.add_row(r.detector, r.model, f"{r.events:,}", f"{r.positives:,}", fmt(r.roc_auc), fmt(r.pr_auc), str(r.k),
                  fmt(r.precision_at_k), "" if r.threshold != r.threshold else f"{r.alerts:,}")
    console.print(t)


@rules.command("coverage")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--events", "events_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Also backtest over these events and list the rules that never fired.")
@click.option("--workers", type=int)
def rules_coverage(directory, events_path, workers):
    """Risks with no live rule, rules that never fire, lists no rule uses."""
    from monitor.coverage import coverage

    pack = _load_pack_or_exit(directory)
    fired = None
    if events_path:
        runner, _ = _scored_alerts(pack, events_path, workers, "backtest")
        fired = {a.rule_id for a in runner.alerts.values()}
    c = coverage(pack, fired)
    console.print(f"risk list: {len(pack.risks)} risks, {len(pack.risks) - len(c.uncovered_risks)} with a live rule or detector")
    for risk_id in c.uncovered_risks:
        risk = pack.risks[risk_id]
        trying = c.not_live_risks.get(risk_id)
        console.print(f"  no live rule: {risk_id} {risk.title_zh} / {risk.title_en}"
                      + (f" (not live yet: {', '.join(trying)})" if trying else ""), markup=False)
    console.print(f"lists no rule uses: {', '.join(c.unused_lists) or 'none'}")
    if fired is not None:
        console.print(f"never fired over {events_path.name}: {', '.join(c.never_fired) or 'none'}")
    _exit_now(0)


@rules.command("versions")
@click.option("--db", default="sqlite:///riskwatch.db", show_default=True, help="The ticket database runners record into.")
def rules_versions(db):
    """The rule pack versions that have scored, and the tickets each last changed."""
    from monitor.tickets import SqlTicketStore

    rows = SqlTicketStore(db).pack_versions()
    t = Table(title=f"Rule pack versions in {db}")
    for c in ("version", "first loaded", "last loaded", "loads", "rules", "detectors", "tickets"):
        t.add_column(c, justify="right" if c in ("loads", "rules", "detectors", "tickets") else "left")
    when = lambda v: "—" if v is None else v.strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731
    for r in rows:
        t.add_row(r["version"], when(r["first_loaded_at"]), when(r["last_loaded_at"]), str(r["loads"]),
                  "—" if r["rules"] is None else str(r["rules"]), "—" if r["detectors"] is None else str(r["detectors"]),
                  str(r["tickets"]))
    console.print(t)


def _base_rules(base: str, head: Path) -> tuple[Path, object]:
    """A folder as it is, or the head folder's path at a git revision (checked out to a temporary folder)."""
    import subprocess
    import tarfile
    import tempfile

    if Path(base).is_dir():
        return Path(base), None
    try:
        root = Path(subprocess.run(["git", "-C", str(head), "rev-parse", "--show-toplevel"], check=True,
                                   capture_output=True, text=True).stdout.strip())
        relative = head.resolve().relative_to(root.resolve())
        archive = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", base, "--", str(relative)],
                                 check=True, capture_output=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError, ValueError) as err:
        detail = getattr(err, "stderr", b"") or str(err)
        detail = detail.decode(errors="replace") if isinstance(detail, bytes) else detail
        err_console.print(f"--base {base}: neither a folder nor a git revision of {head} ({detail.strip()})", markup=False)
        sys.exit(EXIT_RULES)
    tmp = tempfile.TemporaryDirectory(prefix="riskwatch-base-")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp.name, filter="data")
    return Path(tmp.name) / relative, tmp


@rules.command("diff")
@click.option("--base", required=True, help="The rules before the change: a folder, or a git revision (e.g. main, HEAD~1).")
@click.option("--head", "head", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The rules after it (default: the built-in pack's folder).")
@click.option("--events", "events_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--examples", default=3, show_default=True)
@click.option("--workers", type=int)
def rules_diff(base, head, events_path, examples, workers):
    """The alerts a rules change adds, removes and changes over the same events."""
    from monitor.rulediff import diff_alerts

    head = head or default_rules_dir()
    base_dir, keep = _base_rules(base, head)
    base_pack, head_pack = _load_pack_or_exit(base_dir), _load_pack_or_exit(head)
    base_run, _ = _scored_alerts(base_pack, events_path, workers, "base")
    head_run, summary = _scored_alerts(head_pack, events_path, workers, "head")
    diffs = diff_alerts(base_run.alerts, head_run.alerts, examples)
    t = Table(title=f"rules diff over {events_path.name} ({summary.lines:,} records): base {base} (pack {base_pack.version}) → "
                    f"head {head} (pack {head_pack.version})")
    for c in ("rule", "base alerts", "head alerts", "added", "removed", "changed"):
        t.add_column(c, justify="left" if c == "rule" else "right")
    for d in diffs:
        if not d.unchanged:
            t.add_row(d.rule_id, str(d.base), str(d.head), f"+{d.added}", f"-{d.removed}", f"~{d.changed}")
    console.print(t)
    for d in diffs:
        for m in d.examples_added:
            console.print(f"  + {d.rule_id}: {m}", markup=False)
        for m in d.examples_removed:
            console.print(f"  - {d.rule_id}: {m}", markup=False)
        for m in d.examples_changed:
            console.print(f"  ~ {d.rule_id}: {m}", markup=False)
    changed = [d for d in diffs if not d.unchanged]
    rules_changed = {r.id for r in head_pack.rules} ^ {r.id for r in base_pack.rules}
    console.print(f"{len(changed)} rule(s) alert differently; {sum(d.added for d in diffs)} alerts added, "
                  f"{sum(d.removed for d in diffs)} removed, {sum(d.changed for d in diffs)} changed"
                  + (f"; rules only in one pack: {', '.join(sorted(rules_changed))}" if rules_changed else ""))
    if keep is not None:
        keep.cleanup()
    _exit_now(0)


def _broker_option(f):
    return click.option("--broker", default=None, help="Kafka broker URL (default: $RISKWATCH_BROKER or kafka://127.0.0.1:9092).")(f)


@main.group()
def topics() -> None:
    """Create or check the Kafka topics (contract 5)."""


@topics.command("create")
@_broker_option
@click.option("--partitions", default=8, show_default=True, help="Partitions of the event and alert topics.")
def topics_create(broker, partitions):
    """Create the topics that are missing."""
    from monitor.topics import create_topics, default_broker

    created, existing = create_topics(broker or default_broker(), partitions)
    for name in created:
        console.print(f"created {name}")
    for name in existing:
        console.print(f"exists  {name}")


@topics.command("check")
@_broker_option
def topics_check(broker):
    """Say whether every topic is there; exit 1 if not."""
    from monitor.topics import check_topics, default_broker

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
    from connectors.sink import KafkaSink
    from monitor.topics import default_broker

    try:
        spec = load_mapping(mapping) if mapping else JSONL_CONTRACT
    except MappingError as err:
        for problem in err.problems:
            err_console.print(str(problem), markup=False)
        sys.exit(EXIT_RULES)
    sink = KafkaSink(broker or default_broker())
    try:
        report = run_file_connector(input_path, spec, sink)
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
    from connectors.sink import KafkaSink
    from connectors.sql import CursorStore, run_sql_connector
    from monitor.topics import default_broker

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
@_broker_option
def connect_http(host, port, max_bytes, max_records, broker):
    """Accept events over HTTP (POST /events) and send them to Kafka."""
    from aiohttp import web

    from connectors.http import HttpLimits, create_http_app
    from connectors.sink import KafkaSink
    from monitor.topics import default_broker

    sink = KafkaSink(broker or default_broker(), client_id="riskwatch-http")
    app = create_http_app(sink, HttpLimits(max_bytes, max_records))
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
@click.option("--loglevel", default="warn", show_default=True, type=click.Choice(["crit", "error", "warn", "info", "debug"]))
@click.option("--app-id", default="riskwatch", show_default=True,
              help="Consumer group and table name prefix: workers with the same id share the work.")
@click.option("--notify", "notify_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Notification channels and routes (YAML): new tickets and escalations.")
def worker(broker, rules, db, metrics_port, batch_size, checkpoint_events, loglevel, app_id, notify_path):
    """Run the faust worker on the Kafka event topics (add workers to scale by partitions)."""
    import faust

    from monitor.runner import partitionable
    from monitor.topics import check_topics, default_broker
    from monitor.worker import create_app

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
    from monitor.reload import PackReloader

    reloader = PackReloader(rules or default_rules_dir(), pack, metrics,
                            accept=lambda p: None if partitionable(p) else "a rule's key lacks org_id (the worker partitions by org)")
    reloader.start()  # the rules folder is watched; SIGHUP reloads too
    app = create_app(pack, broker, None if db == "none" else db, metrics, batch_size=batch_size, app_id=app_id,
                     checkpoint_events=checkpoint_events, reloader=reloader, notifier=_notifier(notify_path, metrics))
    worker_ = faust.Worker(app, loglevel=loglevel, quiet=True)
    # The Kafka clients log each request at debug level; formatting those costs more than scoring.
    level = getattr(logging, {"crit": "CRITICAL", "warn": "WARNING"}.get(loglevel, loglevel.upper()))
    for name in ("aiokafka", "kafka", "faust", "mode"):
        logging.getLogger(name).setLevel(max(level, logging.INFO))
    worker_.execute_from_commandline()


@main.command()
def schema():
    """Print the event contract as JSON Schema."""
    from monitor.event import event_json_schema

    sys.stdout.write(orjson.dumps(event_json_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")


if __name__ == "__main__":
    main()
