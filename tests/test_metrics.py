"""Metrics: contract-4 names, an injected registry, bounded label values."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from monitor.event import Rejection
from monitor.metrics import MAX_SOURCES, Metrics


def test_names_follow_the_contract():
    registry = CollectorRegistry()
    Metrics(registry)
    families = {m.name: m.type for m in registry.collect()}
    for name, kind in families.items():
        assert name.startswith("riskwatch_")
        if kind == "counter":
            assert not name.endswith("_total")  # the client adds _total to counter samples
    for required in ("riskwatch_events_in", "riskwatch_events_rejected", "riskwatch_rule_hits", "riskwatch_alerts",
                     "riskwatch_tickets_opened", "riskwatch_tickets_closed", "riskwatch_tickets_overdue",
                     "riskwatch_scoring_latency_seconds", "riskwatch_consumer_lag", "riskwatch_detector_score"):
        assert required in families, required


def test_two_registries_do_not_clash():
    a, b = CollectorRegistry(), CollectorRegistry()
    Metrics(a).count_events({("finance", "erp"): 2})
    Metrics(b)
    assert a.get_sample_value("riskwatch_events_in_total", {"domain": "finance", "source": "erp"}) == 2
    assert b.get_sample_value("riskwatch_events_in_total", {"domain": "finance", "source": "erp"}) is None


def test_source_labels_are_capped():
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.count_events({("finance", f"src{i}"): 1 for i in range(MAX_SOURCES + 25)})
    sources = {s.labels["source"] for m in registry.collect() if m.name == "riskwatch_events_in" for s in m.samples}
    assert len(sources) == MAX_SOURCES + 1 and "other" in sources
    assert registry.get_sample_value("riskwatch_events_in_total", {"domain": "finance", "source": "other"}) == 25


def test_rejections_are_counted_by_reason():
    registry = CollectorRegistry()
    Metrics(registry).count_rejected([Rejection(1, "not_json", "x", b"{", "erp"), Rejection(2, "not_json", "x", b"{", "erp")])
    assert registry.get_sample_value("riskwatch_events_rejected_total", {"source": "erp", "reason": "not_json"}) == 2
