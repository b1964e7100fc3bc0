"""The embedded runner: a JSONL file in, alerts, rejections and tickets out.

``BatchScorer`` (``monitor.runners.scoring``) decodes, scores and merges
alerts for one partition of the stream and reports each batch as a
``BatchResult``. ``EmbeddedRunner`` owns the edges — the dead-letter file, the
ticket store, metrics, the summary, hot reloads — and applies those results.
With ``workers > 1`` scoring processes each take a share of the orgs
(``monitor.runners.partitions``); the parent applies their results.

Nothing is lost: every line is scored or rejected with a reason, and the
summary says so (in = scored + rejected).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import multiprocessing
import os
import pickle
import queue
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable

import msgspec
import orjson

from monitor.cases.notify import announce
from monitor.core.alerts import Alert
from monitor.core.controls import REVIEW_KINDS
from monitor.core.event import Rejection
from monitor.core.rules import RulePack
from monitor.metrics import Metrics
from monitor.runners.heap import FrozenHeap
from monitor.runners.partitions import PackSwitches, check_alive, partition_worker, reload_across_workers
from monitor.runners.scoring import BatchResult, BatchScorer, partitionable

if TYPE_CHECKING:  # the ticket store's database code is imported by whoever opens one
    from monitor.cases.tickets import TicketStore

__all__ = ["BatchResult", "BatchScorer", "EmbeddedRunner", "RunSummary", "default_rejected_path", "partitionable"]

BATCH_SIZE = 8192
TICKET_FLUSH_SECONDS = 2.0
ESCALATION_CHECK_SECONDS = 60.0
WORKER_POLL_SECONDS = 1.0  # how often the parent looks for a worker that died silently


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
    workers: int = 1
    rejected_by_reason: Counter = field(default_factory=Counter)
    alerts_by_risk: Counter = field(default_factory=Counter)  # (risk, severity, status) -> alerts
    matters_executed: int = 0  # judged by the review controls
    matters_reviewed: int = 0  # ... with every required step passed before execution
    projects_moved: int = 0  # watched projects that moved on to a later stage (全程参与率), as of their last move
    projects_covered: int = 0  # ... with every stage they left covered by legal participation first

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
    """Scores a file or stream and applies the results to the edges."""

    def __init__(self, pack: RulePack, store: TicketStore | None = None, metrics: Metrics | None = None,
                 batch_size: int = BATCH_SIZE, clock: Callable[[], dt.datetime] | None = None, workers: int = 1,
                 reloader: Any = None, notifier: Any = None, open_store: Callable[[], TicketStore] | None = None,
                 state_dir: Path | None = None, state_cache: int | None = None, state_memory: int | None = None):
        """``open_store``, instead of ``store``, opens the ticket store once the
        scoring workers are running: setting up a database (its imports and
        migrations) takes as long as scoring 50,000 events, and the workers
        need none of it. ``state_dir``: keep the per-key state on disk there
        (``monitor.runners.diskstate``), ``state_cache`` entries in memory in each scoring process, which
        aims to stay under ``state_memory`` resident bytes."""
        self.pack = pack
        self.notifier = notifier  # a monitor.cases.notify.Notifier: new tickets and escalations, off the scoring path
        self.reloader = reloader  # a monitor.packs.reload.PackReloader: hot reload between batches
        self.store = store
        self.metrics = metrics
        self.batch_size = batch_size
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.workers = workers if workers > 1 and partitionable(pack) else 1
        self.packs: dict[str, RulePack] = {pack.version: pack}  # every version announced, in order
        self.switches: list[tuple[int, str]] = []  # (line after which it scores, version), with workers
        self._open_store = open_store
        self.keep_evidence = hasattr(store, "add_evidence") or open_store is not None
        self.state_on_disk = (state_dir, state_cache, state_memory)
        self.local = BatchScorer(pack, self.keep_evidence, *self.state_on_disk)  # the in-process partition (workers == 1)
        self.alerts: dict[str, Alert] = {}  # dedup key -> latest version
        self.summary = RunSummary(workers=self.workers)
        self.rejected: list[Rejection] = []
        self._pending_tickets: dict[str, Alert] = {}
        self._pending_evidence: list[tuple[str, dict]] = []
        self._pending_reviews: list = []  # judged executions, for the ticket database's review rate
        self.judgements: list = []  # every execution judged in this run
        self._last_flush = time.monotonic()
        self._last_escalation_check = -math.inf
        self._late: dict[int, int] = {}
        self._keys: dict[int, int] = {}
        self._scored_by: set[str] = set()  # pack versions of the results absorbed
        if metrics:
            metrics.rule_pack.labels(pack.version).set(1)
        self._record_pack(pack)

    def open_store(self) -> None:
        """Open the ticket store given as ``open_store``, once."""
        if self._open_store is not None:
            self.store, self._open_store = self._open_store(), None
            self._record_pack(self.pack)

    def _record_pack(self, pack: RulePack) -> None:
        record = getattr(self.store, "record_pack", None)
        if record is not None:
            record(pack, self.clock())

    def swap_pack(self, new: RulePack) -> set[str]:
        """Score with ``new`` from the next batch on; keep the state of every rule
        whose definition did not change. Returns the rules whose state was dropped."""
        self._adopt(new)
        return self.local.swap_pack(new)

    def _adopt(self, new: RulePack) -> None:
        self.packs[new.version] = new
        self.pack = new
        self._record_pack(new)

    def _maybe_reload(self, switches: PackSwitches | None = None) -> None:
        if self.reloader is None or not self.reloader.pending:
            return
        new = self.reloader.poll()
        if new is None:
            return
        if switches is None:
            self.swap_pack(new)
            return
        r = self.reloader
        after = switches.publish(r.snapshot, new.version, r.snapshot_day, r.narrow)
        self.switches.append((after, new.version))
        self._adopt(new)

    @property
    def versions_used(self) -> list[str]:
        """The pack versions that scored, in order (a reload announced after the last line scored none)."""
        return [v for v in self.packs if v in self._scored_by]

    # --- applying results ----------------------------------------------------------
    def absorb(self, result: BatchResult, partition: int = 0) -> None:
        s = self.summary
        s.lines += result.lines
        s.scored += result.scored
        s.rejected += len(result.rejected)
        s.rejected_by_reason.update(r.reason for r in result.rejected)
        s.findings += sum(result.hits_by_rule.values())
        s.alerts_new += len(result.new_alerts)
        self._scored_by.add(result.pack_version)
        self.rejected += result.rejected
        for alert in itertools.chain(result.new_alerts, result.updated_alerts):
            self.alerts[alert.dedup_key] = alert
            if alert.status == "live":
                self._pending_tickets[alert.dedup_key] = alert
        self._pending_evidence += result.evidence
        self._pending_reviews += result.judgements
        self.judgements += result.judgements
        executions = [j for j in result.judgements if j.matter_kind in REVIEW_KINDS]
        s.matters_executed += len(executions)
        s.matters_reviewed += sum(j.reviewed for j in executions)
        if self.metrics:
            self._observe(result, partition)
        if time.monotonic() - self._last_flush > TICKET_FLUSH_SECONDS:
            self.flush_tickets()

    def _observe(self, result: BatchResult, partition: int) -> None:
        m = self.metrics
        m.count_events(result.events_by_source)
        m.count_rejected(result.rejected)
        if result.scored:
            m.scoring_latency.observe(result.scoring_seconds)
            m.batch_events.observe(result.scored)
            m.observe_lag(result.occurred_at, self.clock())
        for detector_id, scores in result.detector_scores.items():
            m.observe_many(m.detector_score.labels(detector_id), scores)
        pack = self.packs.get(result.pack_version, self.pack)  # with workers, the old pack's batches still come in
        for rule_id, n in result.hits_by_rule.items():
            rule = pack.rule(rule_id)
            m.rule_hits.labels(rule_id, rule.risk.id, rule.severity, rule.status).inc(n)
        # counted per label set first: a labelled child costs microseconds to find, and a flood of hits is one set
        for labels, n in Counter((a.risk_id, a.severity, a.domain, a.status) for a in result.new_alerts).items():
            m.alerts.labels(*labels).inc(n)
        for labels, n in Counter((a.risk_id, a.severity) for a in result.updated_alerts).items():
            m.alert_updates.labels(*labels).inc(n)
        m.count_judged(result.judgements)
        self._keys[partition] = result.state_keys
        m.state_keys.set(sum(self._keys.values()))
        late = result.late_events - self._late.get(partition, 0)
        if late > 0:
            m.late_events.inc(late)
            self._late[partition] = result.late_events

    def check_escalations(self, force: bool = False) -> list[dict]:
        """The periodic overdue check (at most once a minute unless forced)."""
        escalate = getattr(self.store, "escalate", None)
        if escalate is None or (not force and time.monotonic() - self._last_escalation_check < ESCALATION_CHECK_SECONDS):
            return []
        self._last_escalation_check = time.monotonic()
        done = escalate(self.pack, self.clock())
        announce(self.metrics, self.notifier, escalated=done)
        return done

    def flush_tickets(self) -> None:
        self.open_store()
        self._last_flush = time.monotonic()
        self.check_escalations()
        record_reviews = getattr(self.store, "record_reviews", None)
        if record_reviews is not None and self._pending_reviews:
            record_reviews(self._pending_reviews)
            if self.metrics:
                self.metrics.set_review_rates(self.store.latest_review_rates())
                self.metrics.set_participation_rate(self.store.latest_participation_rates())
        self._pending_reviews = []
        if self.store is None or not self._pending_tickets:
            self._pending_tickets.clear()
            self._pending_evidence = []
            return
        by_version: dict[str, list[Alert]] = {}
        for alert in self._pending_tickets.values():
            by_version.setdefault(alert.pack_version, []).append(alert)
        opened: list[Alert] = []
        for version, alerts in by_version.items():  # each with the owners and deadlines of the pack that raised it
            result = self.store.upsert(alerts, self.packs.get(version, self.pack), self.clock())
            opened += result.opened
            self.summary.tickets_updated += len(result.updated)
        self._pending_tickets.clear()
        add_evidence = getattr(self.store, "add_evidence", None)
        if add_evidence is not None and self._pending_evidence:
            add_evidence(self._pending_evidence)
        self._pending_evidence = []
        self.summary.tickets_opened += len(opened)
        announce(self.metrics, self.notifier, opened=opened)
        if self.metrics:
            self.metrics.set_ticket_gauges(self.store.open_by_risk(), self.store.overdue_by_risk(self.clock()))

    # --- running ---------------------------------------------------------------------
    def run_stream(self, stream: BinaryIO, progress: Callable[[int], None] | None = None) -> RunSummary:
        """Score every line of a binary stream in this process."""
        started = time.perf_counter()
        self.open_store()
        with FrozenHeap() as heap:
            line_no = 1
            while True:
                self._maybe_reload()
                lines = list(itertools.islice(stream, self.batch_size))
                if not lines:
                    break
                result = self.local.process(lines, line_no)
                self.absorb(result)
                line_no += len(lines)
                if progress:
                    progress(len(lines))
                heap.settle()
        return self._finish(started)

    def _run_partitioned(self, path: Path, progress: Callable[[int], None] | None) -> RunSummary:
        started = time.perf_counter()
        ctx = multiprocessing.get_context("fork")  # workers inherit the compiled pack
        results = ctx.Queue(maxsize=64)
        switches = None
        if self.reloader is not None:  # (a stream read in one process reloads as before)
            reload_across_workers(self.reloader)
            switches = PackSwitches(ctx, self.workers)
        procs = [ctx.Process(target=partition_worker, daemon=True,
                             args=(self.pack, str(path), i, self.workers, self.batch_size, results, self.keep_evidence,
                                   switches, self.state_on_disk))
                 for i in range(self.workers)]
        for p in procs:
            p.start()
        # The runner too keeps a heap of long-lived objects (the pack, its lists'
        # name index, the alerts so far, the ticket store's modules): frozen, the
        # collector stops rescanning it while the runner shares the cores with the workers.
        with FrozenHeap() as heap:
            try:
                self.open_store()  # while the workers score
                heap.settle()
                self._collect(procs, results, switches, progress, heap)
            except BaseException:
                for p in procs:
                    p.kill()  # a failed run (or a ticket database that cannot be opened) stops its workers now
                raise
            finally:
                for p in procs:
                    p.join(timeout=5)
                    if p.is_alive():
                        p.kill()
            return self._finish(started)

    def _collect(self, procs: list, results, switches: PackSwitches | None,
                 progress: Callable[[int], None] | None, heap: FrozenHeap) -> None:
        """Absorb the workers' batch results until each has said it is done."""
        done = 0
        finished: set[int] = set()
        while done < len(procs):
            self._maybe_reload(switches)
            try:
                item = results.get(timeout=WORKER_POLL_SECONDS)
            except queue.Empty:
                check_alive(procs, finished)
                continue
            if isinstance(item, bytes):
                item = pickle.loads(item)
            elif isinstance(item, tuple):
                if item[0] == "error":
                    raise RuntimeError(f"a scoring worker failed:\n{item[1]}")
                done += 1
                finished.add(item[1])
                continue
            self.absorb(item)
            heap.settle()
            if progress:
                progress(item.lines)

    def _finish(self, started: float) -> RunSummary:
        self.local.close()
        self.flush_tickets()
        latest: dict[tuple[str, str], Any] = {}
        for j in self.judgements:  # each project as of its last move
            if j.matter_kind == "project":
                key = (j.org_id, j.matter_id.rpartition("@")[0])
                if key not in latest or j.executed_at >= latest[key].executed_at:
                    latest[key] = j
        self.summary.projects_moved = len(latest)
        self.summary.projects_covered = sum(j.reviewed for j in latest.values())
        self.summary.alerts_by_risk = Counter((a.risk_id, a.severity, a.status) for a in self.alerts.values())
        self.summary.elapsed = time.perf_counter() - started
        self.rejected.sort(key=lambda r: r.line)
        return self.summary

    def score_file(self, input_path: Path, progress: Callable[[int], None] | None = None) -> RunSummary:
        """Score a JSONL file; the alerts stay in ``self.alerts``, rejections in ``self.rejected``."""
        if self.workers > 1:
            return self._run_partitioned(input_path, progress)
        with open(input_path, "rb") as src:
            return self.run_stream(src, progress)

    def run_file(self, input_path: Path, alerts_out: Path | None, rejected_out: Path | None,
                 progress: Callable[[int], None] | None = None) -> RunSummary:
        """Score a JSONL file; write alerts (one per line) and rejections."""
        summary = self.score_file(input_path, progress)
        with open(rejected_out or default_rejected_path(input_path), "wb") as rej:
            rej.writelines(rejection_line(r) for r in self.rejected)
        if alerts_out is not None:
            write_alerts(alerts_out, sorted(self.alerts.values(), key=lambda a: (a.first_seen, a.dedup_key)))
        return summary


def default_workers() -> int:
    """One scoring process per core, at most two by default."""
    return max(1, min(2, os.cpu_count() or 1))


def write_alerts(path: Path, alerts: Iterable[Alert]) -> None:
    """One alert per line."""
    with open(path, "wb") as f:
        f.write(msgspec.json.Encoder().encode_lines(list(alerts)))
