"""The embedded runner: counts balance, workers split by org without changing any alert."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
from prometheus_client import CollectorRegistry

from monitor.analyst.generator import generate
from monitor.metrics import Metrics
from monitor.runners.runner import EmbeddedRunner, partitionable
from monitor.cases.tickets import MemoryTicketStore


@pytest.fixture(scope="module")
def stream_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "events.jsonl"
    generate(events=15_000, seed=8).write(path)
    return path


def run(pack, path, tmp_path, workers):
    registry = CollectorRegistry()
    store = MemoryTicketStore()
    runner = EmbeddedRunner(pack, store, Metrics(registry), batch_size=1000, workers=workers)
    summary = runner.run_file(path, tmp_path / f"alerts{workers}.jsonl", tmp_path / f"rejected{workers}.jsonl")
    return runner, summary, registry, store


def test_two_workers_give_the_same_alerts_rejections_and_tickets(default_pack, stream_file, tmp_path):
    assert partitionable(default_pack)
    one, s1, r1, t1 = run(default_pack, stream_file, tmp_path, 1)
    two, s2, r2, t2 = run(default_pack, stream_file, tmp_path, 2)
    assert (s1.workers, s2.workers) == (1, 2)
    assert (tmp_path / "alerts1.jsonl").read_bytes() == (tmp_path / "alerts2.jsonl").read_bytes()
    assert (tmp_path / "rejected1.jsonl").read_bytes() == (tmp_path / "rejected2.jsonl").read_bytes()
    lines = sum(1 for line in stream_file.read_bytes().splitlines() if line.strip())
    assert (s1.lines, s1.scored, s1.rejected) == (s2.lines, s2.scored, s2.rejected) == (lines, lines - 15, 15)
    assert sorted(t["dedup_key"] for t in t1.tickets()) == sorted(t["dedup_key"] for t in t2.tickets())
    for name, labels in [("riskwatch_events_in_total", {"domain": "finance", "source": "erp-finance"}),
                         ("riskwatch_events_rejected_total", {"source": "unknown", "reason": "not_json"})]:
        assert r1.get_sample_value(name, labels) == r2.get_sample_value(name, labels) > 0


def test_every_line_is_scored_or_rejected_and_counted(default_pack, stream_file, tmp_path):
    runner, summary, registry, _ = run(default_pack, stream_file, tmp_path, 1)
    lines = [l for l in stream_file.read_bytes().splitlines() if l.strip()]
    assert summary.balanced and summary.lines == len(lines)
    rejected = [orjson.loads(l) for l in (tmp_path / "rejected1.jsonl").read_bytes().splitlines()]
    assert [r["line"] for r in rejected] == sorted(r["line"] for r in rejected)
    assert Counter(r["reason"] for r in rejected) == summary.rejected_by_reason
    scored = sum(s.value for m in registry.collect() if m.name == "riskwatch_events_in" for s in m.samples
                 if s.name.endswith("_total"))
    assert scored == summary.scored


def test_a_pack_keyed_across_orgs_runs_in_one_process(default_pack, stream_file, tmp_path):
    pack = default_pack.only({"gov_sanctioned_counterparty"})
    rule = pack.rules[0]
    original = rule.key
    rule.key = ("counterparty_id",)
    try:
        assert not partitionable(pack)
        assert EmbeddedRunner(pack, workers=2).workers == 1
    finally:
        rule.key = original


def test_shadow_rules_alert_but_open_no_tickets(default_pack, stream_file, tmp_path):
    rule = default_pack.rule("fin_duplicate_amount")
    rule.status = "shadow"
    try:
        runner, summary, registry, store = run(default_pack, stream_file, tmp_path, 1)
    finally:
        rule.status = "live"
    shadow = [a for a in runner.alerts.values() if a.rule_id == "fin_duplicate_amount"]
    assert shadow and all(a.status == "shadow" for a in shadow)
    assert not any(t["rule_id"] == "fin_duplicate_amount" for t in store.tickets())
    assert registry.get_sample_value("riskwatch_alerts_total", {"risk": "FIN-02", "severity": "high", "domain": "finance",
                                                                 "status": "shadow"}) == len(shadow)


def test_tickets_keep_the_events_behind_them(default_pack, stream_file, tmp_path):
    """Every event an alert names is kept for its ticket, even when it arrived batches
    before the alert (a window or a running total held it)."""
    from monitor.cases.tickets import SqlTicketStore

    store = SqlTicketStore(f"sqlite:///{tmp_path / 't.db'}")
    runner = EmbeddedRunner(default_pack, store, batch_size=250, workers=2)
    runner.run_file(stream_file, None, tmp_path / "rej.jsonl")
    tickets = store.find()
    assert len(tickets) > 30
    for t in tickets:
        kept = store.evidence(t["dedup_key"])
        assert [e["event_id"] for e in kept] == sorted(t["event_ids"], key=lambda i: next(
            e["occurred_at"] for e in kept if e["event_id"] == i)) and len(kept) == len(t["event_ids"])
    split = next(t for t in tickets if t["rule_id"] == "proc_split_purchase")
    assert {e["type"] for e in store.evidence(split["dedup_key"])} == {"purchase_order"}
    assert len(store.evidence(split["dedup_key"])) >= 2


def test_an_org_id_of_the_wrong_kind_is_rejected_by_two_workers_as_by_one(default_pack, tmp_path):
    base = {"event_id": "x", "source": "erp", "domain": "finance", "type": "payment",
            "occurred_at": "2026-03-02T10:00:00+08:00", "amount": 10}
    records = [dict(base, event_id=f"e{i}", org_id=org) for i, org in
               enumerate(["ORG01", ["ORG01"], {"id": "ORG01"}, None, "", 7, "ORG02"])]
    path = tmp_path / "odd.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    results = [run(default_pack, path, tmp_path, workers)[1] for workers in (1, 2)]
    for summary in results:
        assert (summary.lines, summary.scored, summary.rejected) == (7, 2, 5)
    assert (tmp_path / "rejected1.jsonl").read_bytes() == (tmp_path / "rejected2.jsonl").read_bytes()


def _in_a_worker(parent: int, misbehave):
    """BatchScorer.process that misbehaves in the scoring workers only."""
    import os

    from monitor.runners.runner import BatchScorer

    original = BatchScorer.process

    def process(self, *args, **kwargs):
        if os.getpid() != parent:
            return misbehave(original(self, *args, **kwargs))
        return original(self, *args, **kwargs)
    return process


@pytest.mark.parametrize("how", ["dies", "cannot send its result"])
def test_a_worker_that_fails_fails_the_run_instead_of_hanging_it(default_pack, stream_file, tmp_path, monkeypatch, how):
    import os
    import signal

    from monitor.runners.runner import BatchScorer

    def dies(result):
        os._exit(9)  # as the kernel's OOM killer would leave it: no word to the parent

    def cannot_send(result):
        result.new_alerts = [lambda: None]  # a result that cannot be pickled
        return result

    monkeypatch.setattr(BatchScorer, "process", _in_a_worker(os.getpid(), dies if how == "dies" else cannot_send))

    def hung(signum, frame):
        raise TimeoutError("the run hung")

    signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        with pytest.raises(RuntimeError, match="worker"):
            EmbeddedRunner(default_pack, batch_size=1000, workers=2).run_file(stream_file, tmp_path / "a.jsonl",
                                                                              tmp_path / "r.jsonl")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
