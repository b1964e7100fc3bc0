"""Metrics: contract-4 names, an injected registry, bounded label values."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from monitor.core.event import Rejection
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


def test_observe_many_counts_like_one_at_a_time():
    import numpy as np

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.random(5000), [0.1, 0.2, 1.0, 0.0, np.nan, 7.0]])
    a, b = CollectorRegistry(), CollectorRegistry()
    many, one = Metrics(a), Metrics(b)
    many.observe_many(many.detector_score.labels("det_x"), values)
    for v in values[~np.isnan(values)]:
        one.detector_score.labels("det_x").observe(v)
    samples = lambda r: sorted((s.name, tuple(sorted(s.labels.items())), round(s.value, 6))  # noqa: E731
                               for m in r.collect() if m.name == "riskwatch_detector_score" for s in m.samples
                               if not s.name.endswith("_created"))
    assert samples(a) == samples(b) and len(samples(a)) == 15


def test_label_values_stay_bounded_on_a_large_stream(default_pack, tmp_path):
    """No id (event, org, counterparty, alert) ever becomes a label value: over the
    whole demo stream every label takes only a handful of values."""
    from monitor.analyst.generator import generate
    from monitor.runners.runner import EmbeddedRunner
    from monitor.cases.tickets import MemoryTicketStore

    path = tmp_path / "events.jsonl"
    stream = generate(events=60_000, seed=3)
    stream.write(path)
    registry = CollectorRegistry()
    EmbeddedRunner(default_pack, MemoryTicketStore(), Metrics(registry)).run_file(path, None, tmp_path / "rej.jsonl")
    values: dict[str, set] = {}
    series = 0
    for family in registry.collect():
        for sample in family.samples:
            series += 1
            for name, value in sample.labels.items():
                values.setdefault(name, set()).add(value)
    ids = {line.split(b'"event_id":"')[1].split(b'"')[0].decode() for line in stream.lines[:2000] if b'"event_id":"' in line}
    orgs = {f"SUB{i:02d}" for i in range(1, 13)}
    for name, seen in values.items():
        assert not seen & (ids | orgs), name
    limits = {"domain": 4, "source": 5, "rule": 37, "risk": 37, "severity": 4, "status": 3, "reason": 8,
              "detector": 7, "le": 50, "result": 3, "version": 1}
    assert {k: len(v) for k, v in values.items() if len(v) > limits.get(k, 10)} == {}
    assert series < 1500
