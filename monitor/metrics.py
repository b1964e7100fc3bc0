"""Every Prometheus metric riskwatch exposes, declared once (contract 4).

The registry is passed in, so tests build a fresh one. Label values never
carry ids; free-text labels taken from data (``source``) are capped, and any
value past the cap is counted as ``other``.

>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> metrics = Metrics(registry)
>>> metrics.count_events({("finance", "erp-finance"): 3})
>>> registry.get_sample_value("riskwatch_events_in_total", {"domain": "finance", "source": "erp-finance"})
3.0
"""

from __future__ import annotations

import datetime as dt
from collections import Counter as Tally
from typing import Iterable

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.core.controls import REVIEW_KINDS

__all__ = ["Metrics", "MAX_SOURCES"]

MAX_SOURCES = 50  # distinct `source` label values before the rest become "other"

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
# now - occurred_at: from a second (streaming) to months (a backfill)
LAG_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400, 90 * 86400)


class Metrics:
    """The metric families, bound to one registry."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self._sources: set[str] = set()
        self.events_in = Counter("riskwatch_events_in_total", "Events received and decoded, by domain and source.",
                                 ["domain", "source"], registry=registry)
        self.events_rejected = Counter("riskwatch_events_rejected_total", "Records rejected to the dead-letter output.",
                                       ["source", "reason"], registry=registry)
        self.rule_hits = Counter("riskwatch_rule_hits_total", "Findings of each rule.",
                                 ["rule", "risk", "severity", "status"], registry=registry)
        self.alerts = Counter("riskwatch_alerts_total", "New alerts (first finding of a rule and key).",
                              ["risk", "severity", "domain", "status"], registry=registry)
        self.alert_updates = Counter("riskwatch_alert_updates_total", "Findings that updated an existing alert.",
                                     ["risk", "severity"], registry=registry)
        self.tickets_opened = Counter("riskwatch_tickets_opened_total", "Disposal tickets opened.",
                                      ["risk", "severity"], registry=registry)
        self.tickets_closed = Counter("riskwatch_tickets_closed_total", "Disposal tickets closed.",
                                      ["risk", "outcome"], registry=registry)
        self.tickets_overdue = Gauge("riskwatch_tickets_overdue", "Open tickets past their disposal deadline.",
                                     ["risk", "severity"], registry=registry)
        self.tickets_open = Gauge("riskwatch_tickets_open", "Open tickets.", ["risk", "severity"], registry=registry)
        self.scoring_latency = Histogram("riskwatch_scoring_latency_seconds", "Time to score one batch.",
                                         buckets=LATENCY_BUCKETS, registry=registry)
        self.checkpoint_seconds = Histogram(
            "riskwatch_checkpoint_seconds",
            "Time to commit one checkpoint (alerts, state and offsets, a Kafka transaction per input partition).",
            buckets=LATENCY_BUCKETS, registry=registry)
        self.batch_events = Histogram("riskwatch_batch_events", "Events per scored batch.",
                                      buckets=(1, 10, 100, 1000, 4096, 8192, 16384, 65536), registry=registry)
        self.consumer_lag = Gauge("riskwatch_consumer_lag", "Messages behind the end of each partition.",
                                  ["topic", "partition"], registry=registry)
        self.detector_score = Histogram("riskwatch_detector_score", "Anomaly scores of the detectors.",
                                        ["detector"], buckets=SCORE_BUCKETS, registry=registry)
        self.state_keys = Gauge("riskwatch_state_keys", "Keys held by the stateful rules.", registry=registry)
        self.late_events = Counter("riskwatch_late_events_total",
                                   "Events older than a window's allowed lateness.", registry=registry)
        self.tickets_escalated = Counter("riskwatch_tickets_escalated_total",
                                         "Overdue tickets escalated: level 1 to the compliance head, 2 to the general counsel.",
                                         ["level", "severity"], registry=registry)
        self.event_lag = Histogram("riskwatch_event_lag_seconds",
                                   "End-to-end lag: scoring time minus the event's occurred_at.",
                                   buckets=LAG_BUCKETS, registry=registry)
        self.notification_failures = Counter("riskwatch_notification_failures_total",
                                             "Notifications that could not be delivered, by channel.", ["channel"],
                                             registry=registry)
        self.rule_pack_reloads = Counter("riskwatch_rule_pack_reloads_total",
                                         "Reloads of the rules folder: ok, rejected (errors) or unchanged.", ["result"],
                                         registry=registry)
        self.matters_judged = Counter("riskwatch_matters_executed_total",
                                      "Executed matters judged by the review controls; reviewed=true when every "
                                      "required step passed before execution.", ["control", "matter_kind", "reviewed"],
                                      registry=registry)
        self.review_rate = Gauge("riskwatch_review_rate", "审查率: the share of executed matters whose every required "
                                 "review step passed before execution, in the latest month with executions.",
                                 ["matter_kind"], registry=registry)
        self.participation_rate = Gauge("riskwatch_project_participation_rate",
                                        "全程参与率: the share of watched major projects that moved on in the latest "
                                        "month whose every stage left was covered by legal participation first.",
                                        registry=registry)
        self.rule_pack = Gauge("riskwatch_rule_pack_info", "The rule pack in use (value 1).", ["version"],
                               registry=registry)
        for result in ("ok", "rejected", "unchanged"):  # a series from the start, so rates and alerts see 0 first
            self.rule_pack_reloads.labels(result)

    @staticmethod
    def observe_many(histogram, values) -> None:
        """``histogram.observe(v)`` for every value, in one step per bucket (a
        batch of scores or lags at once; the same counts as one at a time)."""
        values = np.asarray(values, dtype=float)
        values = values[~np.isnan(values)]
        if not len(values):
            return
        bounds = np.array(histogram._upper_bounds)
        counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
        for i, n in enumerate(counts.tolist()):
            if n:
                histogram._buckets[i].inc(n)
        histogram._sum.inc(float(values.sum()))

    def observe_lag(self, occurred_at: np.ndarray, now: dt.datetime | None = None) -> None:
        now = now or dt.datetime.now(dt.timezone.utc)
        self.observe_many(self.event_lag, now.timestamp() - np.asarray(occurred_at, dtype=float))

    def count_judged(self, judgements: Iterable) -> None:
        for j in judgements:
            if j.matter_kind in REVIEW_KINDS:  # a project's moves, key-post acts: rates of their own
                self.matters_judged.labels(j.control, j.matter_kind, "true" if j.reviewed else "false").inc()

    def set_review_rates(self, rows: Iterable[dict]) -> None:
        """The review rate per matter kind, from the ticket database's rows of a month
        (a project's rows are the participation rate)."""
        totals: dict[str, list[int]] = {}
        for row in rows:
            if row["matter_kind"] not in REVIEW_KINDS:
                continue
            t = totals.setdefault(row["matter_kind"], [0, 0])
            t[0] += row["reviewed"]
            t[1] += row["executed"]
        for kind, (reviewed, executed) in totals.items():
            self.review_rate.labels(kind).set(reviewed / executed if executed else float("nan"))

    def set_participation_rate(self, rows: Iterable[dict]) -> None:
        """全程参与率 of the whole group, from the ticket database's project rows of a month."""
        covered = moved = 0
        for row in rows:
            if row["matter_kind"] == "project":
                covered += row["reviewed"]
                moved += row["executed"]
        if moved:
            self.participation_rate.set(covered / moved)

    def set_ticket_gauges(self, open_by: dict[tuple[str, str], int], overdue_by: dict[tuple[str, str], int]) -> None:
        """Open and overdue tickets per (risk, severity), from the ticket store."""
        for (risk, severity), n in open_by.items():
            self.tickets_open.labels(risk, severity).set(n)
            self.tickets_overdue.labels(risk, severity).set(overdue_by.get((risk, severity), 0))

    def source_label(self, source: str) -> str:
        """``source`` as a label value, capped at MAX_SOURCES distinct values."""
        if source in self._sources:
            return source
        if len(self._sources) < MAX_SOURCES:
            self._sources.add(source)
            return source
        return "other"

    def count_events(self, by_domain_source: dict[tuple[str, str], int]) -> None:
        for (domain, source), n in by_domain_source.items():
            self.events_in.labels(domain, self.source_label(source)).inc(n)

    def count_rejected(self, rejections: Iterable) -> None:
        tally = Tally((self.source_label(r.source), r.reason) for r in rejections)
        for (source, reason), n in tally.items():
            self.events_rejected.labels(source, reason).inc(n)
