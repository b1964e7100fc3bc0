"""The embedded runner: a JSONL file in, alerts, rejections and tickets out.

Two halves. ``BatchScorer`` decodes, scores and merges alerts for one
partition of the stream, and reports each batch as a ``BatchResult``.
``EmbeddedRunner`` owns the edges — the dead-letter file, the ticket store,
metrics, the summary — and applies those results. With ``workers > 1`` each
worker process reads the file and scores the events of its share of the orgs
(every stateful rule groups by ``org_id`` first, so each org's state lives in
one worker, as with Kafka partitions); the parent applies their results.

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
import traceback
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable

import msgspec
import numpy as np
import orjson

from monitor.core.alerts import Alert, AlertBook
from monitor.core.batch import EventBatch
from monitor.core.event import Rejection, decode_lines
from monitor.core.evidence import Evidence
from monitor.runners.heap import FrozenHeap
from monitor.metrics import Metrics
from monitor.cases.notify import announce
from monitor.core.rules import RulePack, changed_rules
from monitor.core.reviews import REVIEW_KINDS
from monitor.core.scorer import Scorer
from monitor.core.state import ScorerState, drop_rules

if TYPE_CHECKING:  # the ticket store's database code is imported by whoever opens one
    from monitor.cases.tickets import TicketStore

__all__ = ["BatchResult", "BatchScorer", "EmbeddedRunner", "RunSummary", "default_rejected_path", "partitionable"]

BATCH_SIZE = 8192
KEY_COUNT_SECONDS = 5.0  # the state-keys gauge is recounted at most this often (a scrape is every 15 s;
# counting walks every org's models: 50 ms with 3,840 orgs)
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


@dataclass
class BatchResult:
    """What one scored batch changed; small and picklable."""

    lines: int
    scored: int
    rejected: list[Rejection]
    events_by_source: Counter  # (domain, source) -> events
    hits_by_rule: Counter
    new_alerts: list[Alert]
    updated_alerts: list[Alert]
    scoring_seconds: float
    state_keys: int
    late_events: int  # running total in this scorer
    occurred_at: Any = None  # epoch seconds of the scored events (numpy), for the end-to-end lag
    detector_scores: dict = field(default_factory=dict)  # detector id -> this batch's scores (numpy)
    evidence: list = field(default_factory=list)  # (dedup key, event) for the tickets
    judgements: list = field(default_factory=list)  # executed matters the review controls judged


def default_rejected_path(input_path: Path) -> Path:
    """``events.jsonl`` -> ``events.rejected.jsonl`` beside it."""
    return input_path.with_name(input_path.stem + ".rejected.jsonl")


def rejection_line(r: Rejection) -> bytes:
    return orjson.dumps({"line": r.line, "reason": r.reason, "detail": r.detail, "source": r.source,
                         "raw": r.raw.rstrip(b"\r\n").decode("utf-8", errors="replace")}) + b"\n"


def partitionable(pack: RulePack) -> bool:
    """True when every rule's findings stay within one org, so the stream can
    be split by org_id across workers without changing any alert."""
    return all("org_id" in r.key for r in pack.rules)


class BatchScorer:
    """Decode, score and merge alerts, batch by batch, for one stream partition."""

    def __init__(self, pack: RulePack, keep_evidence: bool = True):
        self.scorer = Scorer(pack)
        self.state = ScorerState()
        self.book = AlertBook(pack)
        self.evidence = Evidence() if keep_evidence else None  # only a ticket store has a use for it
        self._keys_counted = (-math.inf, 0)  # (when, how many): counting walks every org's models

    def _state_keys(self) -> int:
        """The state's keys, for the gauge: counted at most every ``KEY_COUNT_SECONDS``."""
        when, count = self._keys_counted
        if time.monotonic() - when >= KEY_COUNT_SECONDS:
            self._keys_counted = (time.monotonic(), self.state.key_count())
        return self._keys_counted[1]

    def process(self, lines: list[bytes], first_line: int = 1, numbers: list[int] | None = None) -> BatchResult:
        raws: list[bytes] | None = [] if self.evidence is not None else None
        events, rejected = decode_lines(lines, first_line, numbers, raws)
        new: list[Alert] = []
        updated: list[Alert] = []
        findings = []
        evidence: list = []
        elapsed = 0.0
        by_source: Counter = Counter()
        if events:
            batch = EventBatch(events)
            started = time.perf_counter()
            findings = self.scorer.score(batch, self.state)
            elapsed = time.perf_counter() - started
            new, updated = self.book.merge_split(findings)
            if self.evidence is not None:
                held = self.scorer.held_rows.tolist()
                self.evidence.remember(map(events.__getitem__, held), map(raws.__getitem__, held))
                evidence = self.evidence.collect(new + updated, events) if new or updated else []
            rows = batch.all_rows
            by_source = Counter(zip(batch.column("domain", rows).tolist(), batch.column("source", rows).tolist()))
        times = batch.column("occurred_at", batch.all_rows) if events else None
        scores = {k: v.astype(np.float32) for k, v in self.scorer.detector_scores.items()} if events else {}
        return BatchResult(len(events) + len(rejected), len(events), rejected, by_source,
                           Counter(f.rule_id for f in findings), new, updated, elapsed,
                           self._state_keys(), self.state.late_events, times, scores,
                           evidence, self.scorer.take_judgements())


class _OrgOnly(msgspec.Struct):
    org_id: Any = None


def _partition_of(org: Any, workers: int) -> int:
    if not isinstance(org, str) or not org:
        return 0  # undecodable or org-less lines: worker 0 rejects them properly
    return zlib.crc32(org.encode()) % workers


def _pickled(result: BatchResult) -> bytes:
    """Pickled here, not in the queue's feeder thread, which would drop a result
    it cannot pickle with nothing but a printed traceback: a result that cannot
    be sent fails this worker, and so the run."""
    return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)


def _partition_worker(pack: RulePack, path: str, index: int, workers: int, batch_size: int, results,
                      keep_evidence: bool = True) -> None:
    """One worker: read the whole file, score the lines of its orgs, report each batch."""
    try:
        with FrozenHeap() as heap:
            scorer = BatchScorer(pack, keep_evidence)
            decode_org = msgspec.json.Decoder(_OrgOnly).decode
            lines: list[bytes] = []
            numbers: list[int] = []
            partitions: dict[Any, int] = {}  # org -> worker; a few dozen orgs, half a million lines
            with open(path, "rb") as f:
                for number, raw in enumerate(f, 1):
                    try:
                        org = decode_org(raw).org_id
                    except (msgspec.DecodeError, RecursionError):
                        org = None
                    try:
                        partition = partitions[org]
                    except KeyError:
                        partition = partitions[org] = _partition_of(org, workers)
                    except TypeError:  # an org_id that is a list or an object: rejected by worker 0
                        partition = 0
                    if partition != index:
                        continue
                    lines.append(raw)
                    numbers.append(number)
                    if len(lines) >= batch_size:
                        results.put(_pickled(scorer.process(lines, numbers=numbers)))
                        lines, numbers = [], []
                        heap.settle()
            if lines:
                results.put(_pickled(scorer.process(lines, numbers=numbers)))
        results.put(("done", index))
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the run
        results.put(("error", traceback.format_exc()))


def _check_alive(procs: list, finished: set[int]) -> None:
    """Fail the run when a worker died without saying so (killed, out of memory)."""
    for index, p in enumerate(procs):
        if index not in finished and not p.is_alive():
            raise RuntimeError(f"scoring worker {index} died (exit code {p.exitcode}) before finishing its share")


class EmbeddedRunner:
    """Scores a file or stream and applies the results to the edges."""

    def __init__(self, pack: RulePack, store: TicketStore | None = None, metrics: Metrics | None = None,
                 batch_size: int = BATCH_SIZE, clock: Callable[[], dt.datetime] | None = None, workers: int = 1,
                 reloader: Any = None, notifier: Any = None, open_store: Callable[[], TicketStore] | None = None):
        """``open_store``, instead of ``store``, opens the ticket store once the
        scoring workers are running: setting up a database (its imports and
        migrations) takes as long as scoring 50,000 events, and the workers
        need none of it."""
        self.pack = pack
        self.notifier = notifier  # a monitor.cases.notify.Notifier: new tickets and escalations, off the scoring path
        self.reloader = reloader  # a monitor.packs.reload.PackReloader: hot reload between batches (one process)
        if reloader is not None:
            workers = 1
        self.store = store
        self.metrics = metrics
        self.batch_size = batch_size
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.workers = workers if workers > 1 and partitionable(pack) else 1
        self._open_store = open_store
        self.keep_evidence = hasattr(store, "add_evidence") or open_store is not None
        self.local = BatchScorer(pack, self.keep_evidence)  # the in-process partition (workers == 1)
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
        self.flush_tickets()  # pending tickets belong to the old pack's version
        dropped = changed_rules(self.pack, new)
        drop_rules(self.local.state, dropped)
        self.pack = new
        self.local.scorer = Scorer(new)
        self.local.book = AlertBook(new, self.local.book.alerts)
        self._record_pack(new)
        return dropped

    def _maybe_reload(self) -> None:
        if self.reloader is not None and self.reloader.pending:
            new = self.reloader.poll()
            if new is not None:
                self.swap_pack(new)

    # --- applying results ----------------------------------------------------------
    def absorb(self, result: BatchResult, partition: int = 0) -> None:
        s = self.summary
        s.lines += result.lines
        s.scored += result.scored
        s.rejected += len(result.rejected)
        s.rejected_by_reason.update(r.reason for r in result.rejected)
        s.findings += sum(result.hits_by_rule.values())
        s.alerts_new += len(result.new_alerts)
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
        for rule_id, n in result.hits_by_rule.items():
            rule = self.pack.rule(rule_id)
            m.rule_hits.labels(rule_id, rule.risk.id, rule.severity, rule.status).inc(n)
        for alert in result.new_alerts:
            m.alerts.labels(alert.risk_id, alert.severity, alert.domain, alert.status).inc()
        for alert in result.updated_alerts:
            m.alert_updates.labels(alert.risk_id, alert.severity).inc()
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
        result = self.store.upsert(list(self._pending_tickets.values()), self.pack, self.clock())
        self._pending_tickets.clear()
        add_evidence = getattr(self.store, "add_evidence", None)
        if add_evidence is not None and self._pending_evidence:
            add_evidence(self._pending_evidence)
        self._pending_evidence = []
        self.summary.tickets_opened += len(result.opened)
        self.summary.tickets_updated += len(result.updated)
        announce(self.metrics, self.notifier, opened=result.opened)
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
        procs = [ctx.Process(target=_partition_worker, daemon=True,
                             args=(self.pack, str(path), i, self.workers, self.batch_size, results, self.keep_evidence))
                 for i in range(self.workers)]
        for p in procs:
            p.start()
        done = 0
        finished: set[int] = set()
        try:
            self.open_store()  # while the workers score
            while done < self.workers:
                try:
                    item = results.get(timeout=WORKER_POLL_SECONDS)
                except queue.Empty:
                    _check_alive(procs, finished)
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
                if progress:
                    progress(item.lines)
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

    def _finish(self, started: float) -> RunSummary:
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
    encoder = msgspec.json.Encoder()
    with open(path, "wb") as f:
        for alert in alerts:
            f.write(encoder.encode(alert) + b"\n")
