"""The embedded runner: a JSONL file in, alerts, rejections and tickets out.

It wires the edges (file reading, dead-letter file, ticket store, metrics)
around the pure scorer. Nothing is lost: every line is either scored or
rejected with a reason, and the summary says so (in = scored + rejected).
"""

from __future__ import annotations

import datetime as dt
import gc
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

import msgspec
import orjson

from monitor.alerts import Alert, AlertBook
from monitor.batch import EventBatch
from monitor.event import Rejection, decode_lines
from monitor.metrics import Metrics
from monitor.rules import RulePack
from monitor.scorer import Scorer
from monitor.state import ScorerState
from monitor.tickets import TicketStore

__all__ = ["EmbeddedRunner", "RunSummary", "default_rejected_path"]

BATCH_SIZE = 8192
TICKET_FLUSH_SECONDS = 2.0


@dataclass
class RunSummary:
    lines: int = 0  # non-blank input records
    scored: int = 0
    rejected: int = 0
    findings: int = 0
    alerts_new: int = 0
    tickets_opened: int = 0
    tickets_updated: int = 0
    elapsed: float = 0.0
    rejected_by_reason: Counter = field(default_factory=Counter)
    alerts_by_risk: Counter = field(default_factory=Counter)  # (risk, severity, status) -> alerts

    @property
    def events_per_second(self) -> float:
        return self.lines / self.elapsed if self.elapsed else 0.0

    @property
    def balanced(self) -> bool:
        return self.lines == self.scored + self.rejected


def default_rejected_path(input_path: Path) -> Path:
    """``events.jsonl`` -> ``events.rejected.jsonl`` beside it."""
    return input_path.with_name(input_path.stem + ".rejected.jsonl")


def rejection_line(r: Rejection) -> bytes:
    return orjson.dumps({"line": r.line, "reason": r.reason, "detail": r.detail, "source": r.source,
                         "raw": r.raw.rstrip(b"\r\n").decode("utf-8", errors="replace")}) + b"\n"


class EmbeddedRunner:
    """Scores batches of JSONL lines with state kept in-process."""

    def __init__(self, pack: RulePack, store: TicketStore | None = None, metrics: Metrics | None = None,
                 batch_size: int = BATCH_SIZE, clock: Callable[[], dt.datetime] | None = None):
        self.pack = pack
        self.scorer = Scorer(pack)
        self.state = ScorerState()
        self.book = AlertBook(pack)
        self.store = store
        self.metrics = metrics
        self.batch_size = batch_size
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.summary = RunSummary()
        self._pending_tickets: dict[str, Alert] = {}
        self._last_flush = time.monotonic()
        self._late_seen = 0
        if metrics:
            metrics.rule_pack.labels(pack.version).set(1)

    def process(self, lines: list[bytes], first_line: int) -> list[Rejection]:
        """Decode, score and alert one batch; returns its rejections."""
        s = self.summary
        events, rejected = decode_lines(lines, first_line)
        s.lines += len(events) + len(rejected)
        s.rejected += len(rejected)
        s.rejected_by_reason.update(r.reason for r in rejected)
        if events:
            batch = EventBatch(events)
            started = time.perf_counter()
            findings = self.scorer.score(batch, self.state)
            elapsed = time.perf_counter() - started
            s.scored += len(events)
            s.findings += len(findings)
            before = len(self.book.alerts)
            changed = self.book.merge(findings)
            s.alerts_new += len(self.book.alerts) - before
            for alert in changed:
                if alert.status == "live":
                    self._pending_tickets[alert.dedup_key] = alert
            if self.metrics:
                self._observe(batch, findings, changed, elapsed, before)
        if self.metrics and rejected:
            self.metrics.count_rejected(rejected)
        if time.monotonic() - self._last_flush > TICKET_FLUSH_SECONDS:
            self.flush_tickets()
        return rejected

    def _observe(self, batch: EventBatch, findings, changed: list[Alert], elapsed: float, alerts_before: int) -> None:
        m = self.metrics
        rows = batch.all_rows
        m.count_events(Counter(zip(batch.column("domain", rows).tolist(), batch.column("source", rows).tolist())))
        m.scoring_latency.observe(elapsed)
        m.batch_events.observe(len(batch))
        rules = self.scorer.pack
        for rule_id, n in Counter(f.rule_id for f in findings).items():
            rule = rules.rule(rule_id)
            m.rule_hits.labels(rule_id, rule.risk.id, rule.severity, rule.status).inc(n)
        new_alerts = list(self.book.alerts.values())[alerts_before:]
        for alert in new_alerts:
            m.alerts.labels(alert.risk_id, alert.severity, alert.domain, alert.status).inc()
        for alert in changed:
            if alert not in new_alerts:
                m.alert_updates.labels(alert.risk_id, alert.severity).inc()
        m.state_keys.set(self.state.key_count())
        if self.state.late_events > self._late_seen:
            m.late_events.inc(self.state.late_events - self._late_seen)
            self._late_seen = self.state.late_events

    def flush_tickets(self) -> None:
        self._last_flush = time.monotonic()
        if self.store is None or not self._pending_tickets:
            self._pending_tickets.clear()
            return
        result = self.store.upsert(list(self._pending_tickets.values()), self.pack, self.clock())
        self._pending_tickets.clear()
        self.summary.tickets_opened += len(result.opened)
        self.summary.tickets_updated += len(result.updated)
        if self.metrics:
            for alert in result.opened:
                self.metrics.tickets_opened.labels(alert.risk_id, alert.severity).inc()
                self.metrics.tickets_open.labels(alert.risk_id, alert.severity).inc()

    def run_stream(self, stream: BinaryIO, rejected_out: BinaryIO | None,
                   progress: Callable[[int], None] | None = None) -> RunSummary:
        """Score every line of a binary stream in batches."""
        started = time.perf_counter()
        # Rule state is many small long-lived objects: full collections would
        # rescan it over and over. Freeze what exists and collect less often.
        gc.freeze()
        thresholds = gc.get_threshold()
        gc.set_threshold(100_000, 50, 100)
        try:
            return self._run(stream, rejected_out, progress, started)
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()

    def _run(self, stream, rejected_out, progress, started) -> RunSummary:
        line_no = 1
        while True:
            lines = list(itertools.islice(stream, self.batch_size))
            if not lines:
                break
            rejected = self.process(lines, line_no)
            if rejected and rejected_out is not None:
                rejected_out.writelines(rejection_line(r) for r in rejected)
            line_no += len(lines)
            if progress:
                progress(len(lines))
        self.flush_tickets()
        self.summary.alerts_by_risk = Counter((a.risk_id, a.severity, a.status) for a in self.book.alerts.values())
        self.summary.elapsed = time.perf_counter() - started
        return self.summary

    def run_file(self, input_path: Path, alerts_out: Path | None, rejected_out: Path | None,
                 progress: Callable[[int], None] | None = None) -> RunSummary:
        rejected_out = rejected_out or default_rejected_path(input_path)
        with open(input_path, "rb") as src, open(rejected_out, "wb") as rej:
            summary = self.run_stream(src, rej, progress)
        if alerts_out is not None:
            write_alerts(alerts_out, self.book.alerts.values())
        return summary


def write_alerts(path: Path, alerts: Iterable[Alert]) -> None:
    """One alert per line, in the order they were first raised."""
    encoder = msgspec.json.Encoder()
    with open(path, "wb") as f:
        for alert in alerts:
            f.write(encoder.encode(alert) + b"\n")
