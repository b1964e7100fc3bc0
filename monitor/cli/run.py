"""Scoring files: ``riskwatch run``, ``generate``, ``demo``, ``schema``."""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import click
import orjson
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from monitor.cli.app import _exit_now, _load_pack_or_exit, _notifier, _serve_metrics, _store, console, err_console, main
from monitor.core.rules import RulePack
from monitor.packs.rulefiles import default_rules_dir

def _score_file(pack, input_path: Path, alerts_out: Path | None, rejected_out: Path | None, db: str | None,
                metrics, show_progress: bool, batch_size: int, workers: int, reloader=None, notifier=None,
                state_dir: Path | None = None, state_cache: int | None = None, state_memory: int | None = None):
    from monitor.runners.runner import EmbeddedRunner, rejection_line, write_alerts

    runner = EmbeddedRunner(pack, None, metrics, batch_size=batch_size, workers=workers, reloader=reloader,
                            notifier=notifier, open_store=(lambda: _store(db)) if db else None,
                            state_dir=state_dir, state_cache=state_cache, state_memory=state_memory)
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


def _print_summary(summary, alerts: dict, packs: list[RulePack]) -> None:
    """``packs``: every pack that scored, oldest first (a reload may retitle or drop a risk)."""
    risks = {k: v for pack in packs for k, v in pack.risks.items()}
    t = Table(title="Run summary", show_header=False)
    t.add_row("events in", f"{summary.lines:,}")
    t.add_row("scored", f"{summary.scored:,}")
    t.add_row("rejected", f"{summary.rejected:,}" + (
        "  (" + ", ".join(f"{r} {n}" for r, n in summary.rejected_by_reason.most_common()) + ")" if summary.rejected else ""))
    t.add_row("in = scored + rejected", "yes" if summary.balanced else "NO")
    t.add_row("findings", f"{summary.findings:,}")
    t.add_row("alerts", f"{len(alerts):,}")
    t.add_row("tickets opened / updated", f"{summary.tickets_opened:,} / {summary.tickets_updated:,}")
    if summary.projects_moved:
        t.add_row("participation rate (全程参与率)", f"{summary.projects_covered / summary.projects_moved:.1%}  ("
                  f"{summary.projects_covered:,} of {summary.projects_moved:,} major projects with legal staff at every "
                  f"stage they left)")
    if summary.matters_executed:
        t.add_row("review rate (审查率)", f"{summary.matters_reviewed / summary.matters_executed:.1%}  ("
                  f"{summary.matters_reviewed:,} of {summary.matters_executed:,} executed matters reviewed in full first)")
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
        by_risk.add_row(risk, risks[risk].title_zh, severity, str(live), str(shadow) if shadow else "")
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
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the rules' windows and running totals, the review controls' matters, the master data and "
                   "the detectors' per-key state on disk (RocksDB), in a scratch folder under this one removed at "
                   "the end: memory stays near flat however long or dense the stream, at some cost in speed. "
                   "Default: in memory.")
@click.option("--state-cache", type=click.IntRange(min=100), default=200_000, show_default=True,
              help="With --state-dir: decoded entries each scoring process keeps in memory, all its rules, matters, "
                   "master data and detector models together (each keeps a share in proportion to what it holds).")
@click.option("--state-memory", type=click.IntRange(min=64), metavar="MIB",
              help="With --state-dir: the resident memory (MiB) each scoring process aims to stay under; above it "
                   "the caches give up entries (an entry grows with the stream's density, so a count alone does "
                   "not bound memory). Default: no aim, --state-cache alone.")
def run(input_path, alerts_out, rules, db, rejected_out, metrics_port, batch_size, workers, quiet, detectors, watch,
        notify_path, state_dir, state_cache, state_memory):
    """Score a JSONL file of events and write one alert per line."""
    if str(input_path) != "-" and not input_path.is_file():
        err_console.print(f"{input_path}: no such file", markup=False)
        sys.exit(2)
    pack = _load_pack_or_exit(rules)
    if not detectors:
        pack = pack.rules_alone()
    reloader = None
    if watch or (watch is None and str(input_path) == "-"):
        from monitor.packs.reload import PackReloader

        reloader = PackReloader(rules or default_rules_dir(), pack, narrow=None if detectors else RulePack.rules_alone)
        reloader.start()
    metrics, port = _serve_metrics(metrics_port)
    if port:
        console.print(f"metrics: http://127.0.0.1:{port}/metrics")
    from monitor.runners.runner import default_workers

    if reloader is not None:
        reloader.metrics = metrics
    notifier = _notifier(notify_path, metrics)
    runner, summary = _score_file(pack, input_path, alerts_out, rejected_out, None if db == "none" else db,
                                  metrics, show_progress=not quiet and console.is_terminal, batch_size=batch_size,
                                  workers=workers or default_workers(), reloader=reloader, notifier=notifier,
                                  state_dir=state_dir, state_cache=state_cache,
                                  state_memory=state_memory << 20 if state_memory else None)
    if notifier is not None and not notifier.flush(timeout=60):
        err_console.print("some notifications were still being sent at exit")
    if reloader is not None:
        reloader.stop()
        used = runner.versions_used
        if len(used) > 1 or reloader.rejected:
            switched = "".join(f"; pack {v} from line {after + 1}" for after, v in runner.switches if v in used)
            console.print(f"rule pack versions used: {' → '.join(used)}; {reloader.rejected} reload(s) rejected"
                          f"{switched}")
    if not quiet:
        _print_summary(summary, runner.alerts, list(runner.packs.values()))
    console.print(f"in {summary.lines} = scored {summary.scored} + rejected {summary.rejected}; "
                  f"{len(runner.alerts)} alerts; {summary.tickets_opened} tickets opened, "
                  f"{summary.tickets_updated} updated; {summary.events_per_second:,.0f} events/s")
    _exit_now(0 if summary.balanced else 1)


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
    from monitor.analyst.generator import generate as make

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
    by_rule: dict[tuple, list] = {}  # (scenario, rule): a review control is planted once per breach
    for inst in truth.instances:
        row = by_rule.setdefault((inst.scenario, inst.rule), [inst.scenario, 0, 0, 0])
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
    for (_, rule), (scenario, planted, caught, near) in sorted(by_rule.items()):
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
    from monitor.analyst.generator import generate as make

    pack = _load_pack_or_exit(None)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    console.print(f"[bold]riskwatch demo[/bold]: 江城控股集团, 12 subsidiaries, 90 days, rule pack {pack.version} "
                  f"({len(pack.rules)} rules, {len(pack.controls)} review controls)")
    started = time.perf_counter()
    with console.status(f"generating about {events:,} events…"):
        stream = make(events=events, seed=seed)
        events_path = out / "events.jsonl"
        _write_stream(stream, events_path, out / "truth.jsonl")
    console.print(f"generated {len(stream.lines):,} events in {time.perf_counter() - started:.1f} s → {events_path}")
    metrics, port = _serve_metrics(metrics_port)
    console.print(f"metrics: [bold]http://127.0.0.1:{port}/metrics[/bold]")
    db_path = out / "tickets.db"
    from monitor.runners.runner import default_workers

    runner, summary = _score_file(pack, events_path, out / "alerts.jsonl", out / "events.rejected.jsonl",
                                  f"sqlite:///{db_path}", metrics, show_progress=True, batch_size=8192,
                                  workers=default_workers())
    _print_summary(summary, runner.alerts, [pack])
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


@main.command()
def schema():
    """Print the event contract as JSON Schema."""
    from monitor.core.event import event_json_schema

    sys.stdout.write(orjson.dumps(event_json_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")
