"""Run the test cases written inside rule files (``tests:`` under each rule).

A case lists partial events; missing fields get defaults (``event_id`` t1, t2…,
``source`` "rule-test", the domain of the type, ``org_id`` ORG-T, and
``occurred_at`` one hour apart from 2026-03-02 09:00 +08:00). The rule alone is
scored over them in order, with fresh state; ``expect: hit`` wants at least one
finding of that rule, ``expect: miss`` none.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import orjson

from monitor.core.batch import EventBatch
from monitor.core.event import EVENT_TYPES, Event, decode_one
from monitor.core.rules import RulePack, RuleTest
from monitor.core.scorer import Scorer
from monitor.core.state import ScorerState

__all__ = ["CaseResult", "run_rule_tests", "case_events"]

_START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


@dataclass(frozen=True)
class CaseResult:
    rule_id: str
    name: str
    expect: str
    passed: bool
    detail: str = ""


def case_events(case: RuleTest) -> tuple[list[Event], list[str]]:
    """The case's events with defaults filled in, and any that fail the contract."""
    events, errors = [], []
    for i, partial in enumerate(case.events):
        record = {
            "event_id": f"t{i + 1}",
            "source": "rule-test",
            "domain": EVENT_TYPES.get(str(partial.get("type")), "finance"),
            "occurred_at": (_START + dt.timedelta(hours=i)).isoformat(),
            "org_id": "ORG-T",
            **partial,
        }
        decoded = decode_one(orjson.dumps(record, default=str), i + 1)
        if isinstance(decoded, Event):
            events.append(decoded)
        else:
            errors.append(f"event {i + 1}: {decoded.detail}")
    return events, errors


def run_rule_tests(pack: RulePack, rule_ids: set[str] | None = None) -> list[CaseResult]:
    """Run every rule's cases; one event per batch, in the order written."""
    results = []
    for rule in pack.rules:
        if rule_ids and rule.id not in rule_ids:
            continue
        scorer = Scorer(pack.only({rule.id}), statuses=("live", "shadow", "draft"))
        for case in rule.spec.tests:
            events, errors = case_events(case)
            if errors:
                results.append(CaseResult(rule.id, case.name, case.expect, False, "; ".join(errors)))
                continue
            state = ScorerState()
            hits = []
            for event in events:
                hits += [f for f in scorer.score(EventBatch([event]), state) if f.rule_id == rule.id]
            fired = bool(hits)
            passed = fired == (case.expect == "hit")
            detail = "" if passed else (
                "expected a hit, got none" if case.expect == "hit" else
                f"expected no hit, got {len(hits)} (events {', '.join(hits[0].event_ids)})")
            results.append(CaseResult(rule.id, case.name, case.expect, passed, detail))
    return results
