"""Run the test cases written inside rule files (``tests:`` under each rule).

A case lists partial events; missing fields get defaults (``event_id`` t1, t2…,
``source`` "rule-test", the domain of the type, ``org_id`` ORG-T, and
``occurred_at`` one hour apart from 2026-03-02 09:00 +08:00). The rule alone is
scored over them in order, with fresh state; ``expect: hit`` wants at least one
finding of that rule, ``expect: miss`` none.

A review control's cases (in review_controls.yaml) work the same way; stream
time then moves on by the case's ``then`` (so that silence can show), and
``breach`` names the breach a hit must be, e.g. ``silent:legal_review``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import msgspec
import orjson

from monitor.core.batch import EventBatch
from monitor.core.controls import ControlTest
from monitor.core.event import EVENT_TYPES, Event, decode_one
from monitor.core.rules import RulePack, RuleTest, parse_duration
from monitor.core.scorer import Scorer
from monitor.core.state import ScorerState

__all__ = ["CaseResult", "case_events", "run_control_tests", "run_rule_tests"]

_START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


@dataclass(frozen=True)
class CaseResult:
    rule_id: str
    name: str
    expect: str
    passed: bool
    detail: str = ""


def case_events(case: RuleTest | ControlTest) -> tuple[list[Event], list[str]]:
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


def run_control_tests(pack: RulePack, control_ids: set[str] | None = None) -> list[CaseResult]:
    """Run every review control's cases: one event per batch, then stream time moves on."""
    results = []
    for control in pack.controls:
        if control_ids and control.id not in control_ids:
            continue
        scorer = Scorer(pack.only({control.id}), statuses=("live", "shadow", "draft"))
        for raw in control.spec.tests:
            case = msgspec.convert(raw, ControlTest)
            events, errors = case_events(case)
            if errors or not events:
                results.append(CaseResult(control.id, case.name, case.expect, False, "; ".join(errors) or "no events"))
                continue
            state = ScorerState()
            hits = []
            for event in events:
                hits += [f for f in scorer.score(EventBatch([event]), state) if f.rule_id == control.id]
            later = max(e.occurred_at.timestamp() for e in events) + parse_duration(case.then)
            hits += [f for f in scorer.advance_time(state, {e.org_id: later for e in events}) if f.rule_id == control.id]
            found = [f.key[2] for f in hits]
            if case.breaches is not None:
                fired = sorted(found) == sorted(case.breaches)
            else:
                fired = (case.breach in found) if case.breach else bool(found)
            passed = fired == (case.expect == "hit") and (case.expect == "hit" or not found)
            expected = ", ".join(case.breaches) if case.breaches is not None else case.breach or "a breach"
            detail = "" if passed else (
                f"expected {expected}, got {', '.join(found) or 'none'}" if case.expect == "hit" else
                f"expected no breach, got {', '.join(found)}")
            results.append(CaseResult(control.id, case.name, case.expect, passed, detail))
    return results
