"""The default rule pack: coverage of the 15 scenarios, its own cases, the three lists."""

from __future__ import annotations

from collections import Counter

from monitor.analyst.generator import SCENARIOS, generate
from monitor.core.alerts import AlertBook
from monitor.core.event import decode_lines
from monitor.packs.ruletest import run_rule_tests
from tests.conftest import score_all


def test_every_rule_has_a_hit_and_a_near_miss(default_pack):
    for rule in default_pack.rules:
        expects = Counter(case.expect for case in rule.spec.tests)
        assert expects["hit"] >= 1 and expects["miss"] >= 1, rule.id


def test_every_embedded_case_passes(default_pack):
    failures = [(r.rule_id, r.name, r.detail) for r in run_rule_tests(default_pack) if not r.passed]
    assert failures == []


def test_the_fifteen_scenarios_have_rules(default_pack):
    ids = {r.id for r in default_pack.rules}
    assert {SCENARIOS[n] for n in range(1, 16)} <= ids
    assert "fin_duplicate_amount" in ids  # scenario 7's second half


def test_risk_list_covers_the_seed_areas(default_pack):
    risks = default_pack.risks.values()
    assert len(default_pack.risks) >= 25
    assert {r.area for r in risks} >= {"regulation", "procurement", "finance", "investment", "decision", "contract", "overseas"}
    basis = " ".join(b for r in risks for b in r.legal_basis)
    for law in ("《中华人民共和国招标投标法》", "《必须招标的工程项目规定》（国家发展改革委令第16号）",
                "《中央企业合规管理办法》（国务院国资委令第42号）", "《中央企业投资监督管理办法》"):
        assert law in basis
    assert all(r.owner in default_pack.posts for r in risks)


def test_regular_suppliers_are_never_paid_past_their_contract_over_years(default_pack):
    """Framework contracts are renewed as they are used up: over three years the
    payments-over-contract rule fires on the planted cases alone (before, every
    regular supplier paid every few days ran past its contract within months,
    and each later payment fired again with every payment before it)."""
    rule = "fin_payment_over_contract"
    stream = generate(events=20_000, seed=42, days=3 * 365)
    events, _ = decode_lines(stream.lines)
    findings, _ = score_all(default_pack.only({rule}), events, batch_size=4096)
    planted = [set(v.event_ids) for v in stream.truth.violations() if v.rule == rule]
    assert planted and {f.key for f in findings} == {f.key for f in findings if any(set(f.event_ids) & p for p in planted)}
    book = AlertBook(default_pack)
    book.merge(findings)
    assert len(book.alerts) == len(planted)


def test_every_risk_routes_to_a_department(default_pack):
    for risk in default_pack.risks.values():
        post = default_pack.post_for(risk)
        assert post is not None and post.department and risk.id in post.risks


def test_generated_stream_alerts_exactly_the_planted_violations(default_pack):
    """The rules flag every planted violation, and nothing else: no near-miss,
    no clean event, and none of the planted anomalies (no rule names those)."""
    stream = generate(events=20_000, seed=42)
    events, rejected = decode_lines(stream.lines)
    assert len(rejected) == stream.truth.malformed == 20
    findings, _ = score_all(default_pack, events, batch_size=4096)
    book = AlertBook(default_pack)
    book.merge([f for f in findings if not f.rule_id.startswith("det_")])
    alerted: dict[str, set[str]] = {}
    for alert in book.alerts.values():
        alerted.setdefault(alert.rule_id, set()).update(alert.event_ids)
    anomalous = {e for a in stream.truth.anomalies() for e in a.event_ids}
    assert anomalous and not anomalous & {e for ids in alerted.values() for e in ids}
    violations = stream.truth.violations()
    missed = [(v.rule, v.note) for v in violations if not set(v.event_ids) <= alerted.get(v.rule, set())]
    assert missed == []
    planted = {e for v in violations for e in v.event_ids}
    false_alarms = [(a.rule_id, a.message) for a in book.alerts.values() if not set(a.event_ids) & planted]
    assert false_alarms == []
    flagged = {e for ids in alerted.values() for e in ids}
    near_miss_alerts = [(n.rule, n.note) for n in stream.truth.near_misses()
                        if set(n.event_ids) - planted & flagged]
    assert near_miss_alerts == []
    assert len(violations) >= 32 and len(stream.truth.near_misses()) >= 20
