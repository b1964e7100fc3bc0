"""The scorer's stateful forms: windows, totals, redelivery, order, bounds, snapshots."""

from __future__ import annotations

import datetime as dt
import random

from monitor.core.alerts import AlertBook
from monitor.core.batch import EventBatch
from monitor.analyst.generator import generate
from monitor.core.event import decode_lines
from monitor.core.scorer import Scorer
from monitor.core.state import ScorerState
from tests.conftest import CST, make_event, score_all

DAY = dt.timedelta(days=1)
T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=CST)


def po(i, day, amount, cp="S1", category="goods", method="inquiry", org="ORG1"):
    return make_event(i, type="purchase_order", amount=amount, counterparty_id=cp, org_id=org,
                      occurred_at=T0 + day * DAY, attributes={"category": category, "method": method, "po_no": f"PO{i}"})


def alerts_of(pack, events, batch_size=1000):
    findings, state = score_all(pack, events, batch_size)
    book = AlertBook(pack)
    book.merge(findings)
    return {a.dedup_key: sorted(a.event_ids) for a in book.alerts.values()}, state


def test_split_purchase_window_fires_once_with_every_order(default_pack):
    pack = default_pack.only({"proc_split_purchase"})
    events = [po(1, 0, 800_000), po(2, 10, 700_000), po(3, 20, 600_000), po(4, 45, 100_000)]
    alerts, _ = alerts_of(pack, events)
    assert alerts == {"proc_split_purchase|ORG1|S1|goods": ["e1", "e2", "e3"]}


def test_window_gives_the_same_alert_when_events_arrive_a_little_out_of_order(default_pack):
    pack = default_pack.only({"proc_split_purchase"})
    in_order = [po(1, 0, 1_100_000), po(2, 0.6, 950_000)]
    assert alerts_of(pack, in_order)[0] == alerts_of(pack, in_order[::-1])[0] == {
        "proc_split_purchase|ORG1|S1|goods": ["e1", "e2"]}


def test_events_later_than_the_allowed_lateness_are_counted_not_scored(default_pack):
    pack = default_pack.only({"proc_split_purchase"})
    alerts, state = alerts_of(pack, [po(1, 40, 100), po(2, 5, 1_100_000), po(3, 6, 950_000)], batch_size=1)
    assert state.late_events == 2 and alerts == {}


def test_redelivered_events_count_once(default_pack):
    pack = default_pack.only({"proc_split_purchase", "fin_duplicate_invoice", "fin_payment_over_contract"})
    once = [po(1, 0, 1_100_000), po(2, 1, 800_000),
            make_event(5, counterparty_id="S9", amount=100, attributes={"invoice_no": "FP1", "contract_id": "HT1"}),
            make_event(6, type="contract_signed", amount=1000, attributes={"contract_id": "HT1"})]
    twice = once + once[::-1]
    assert alerts_of(pack, twice, batch_size=1)[0] == alerts_of(pack, once)[0] == {}


def test_payments_against_a_contract_give_the_same_alert_in_any_arrival_order(default_pack):
    pack = default_pack.only({"fin_payment_over_contract"})
    contract = make_event(1, type="contract_signed", amount=1_000_000, occurred_at=T0, attributes={"contract_id": "HT1"})
    change = make_event(2, type="contract_changed", amount=1_200_000, occurred_at=T0 + 20 * DAY,
                        attributes={"contract_id": "HT1", "original_amount": 1_000_000, "approval_ref": "A1"})
    pays = [make_event(10 + i, amount=a, occurred_at=T0 + d * DAY, attributes={"contract_id": "HT1"})
            for i, (a, d) in enumerate([(600_000, 5), (500_000, 10), (50_000, 25), (200_000, 30)])]
    events = [contract, change, *pays]
    expected = {"fin_payment_over_contract|ORG1|HT1": ["e1", "e10", "e11", "e12", "e13", "e2"]}
    rng = random.Random(3)
    for _ in range(20):
        shuffled = events[:]
        rng.shuffle(shuffled)
        assert alerts_of(pack, shuffled, batch_size=rng.choice([1, 2, 100]))[0] == expected


def test_snapshot_and_restore_mid_stream_changes_nothing(default_pack):
    stream = generate(events=6000, seed=11, malformed=0)
    events, _ = decode_lines(stream.lines)
    scorer = Scorer(default_pack)
    straight = ScorerState()
    all_at_once = [f.event_ids for b in range(0, len(events), 500)
                   for f in scorer.score(EventBatch(events[b:b + 500]), straight)]
    state = ScorerState()
    resumed = []
    for b in range(0, len(events), 500):
        if b == 3000:
            state = ScorerState.restore(state.snapshot())
        resumed += [f.event_ids for f in scorer.score(EventBatch(events[b:b + 500]), state)]
    assert resumed == all_at_once and len(resumed) > 20


def test_batch_size_does_not_change_the_alerts(default_pack):
    stream = generate(events=5000, seed=5, malformed=0)
    events, _ = decode_lines(stream.lines)
    by_one, _ = alerts_of(default_pack, events, batch_size=1)
    by_many, _ = alerts_of(default_pack, events, batch_size=4096)
    assert by_one == by_many and len(by_one) > 20


def test_window_state_is_bounded_by_the_window(default_pack):
    pack = default_pack.only({"fin_duplicate_amount"})
    events = [make_event(i, amount=1000 + i, counterparty_id=f"S{i % 50}", occurred_at=T0 + i * 0.25 * DAY,
                         attributes={"invoice_no": f"F{i}"}) for i in range(2000)]
    _, state = alerts_of(pack, events, batch_size=100)
    # 7-day window plus a day of lateness, swept every half window: about 12 days of payments at most.
    assert state.key_count() <= 12 * 4 + 1


def test_total_state_expires_after_idle_time(default_pack):
    pack = default_pack.only({"fin_payment_over_contract"})
    events = [make_event(i, amount=10, occurred_at=T0 + i * 5 * DAY, attributes={"contract_id": f"HT{i}"})
              for i in range(300)]
    _, state = alerts_of(pack, events, batch_size=10)
    assert state.key_count() < 100  # 400 days idle at one payment every 5 days, swept every 200 days


def test_findings_carry_times_and_message_values(default_pack):
    pack = default_pack.only({"proc_split_purchase"})
    events = [po(1, 0, 1_100_000), po(2, 3, 950_000)]
    findings, _ = score_all(pack, events)
    (f,) = findings
    assert (f.first_seen, f.last_seen) == ((T0).timestamp(), (T0 + 3 * DAY).timestamp())
    assert {k: f.values[k] for k in ("count", "sum_amount", "org_id", "counterparty_id")} == {
        "count": 2.0, "sum_amount": 2_050_000.0, "org_id": "ORG1", "counterparty_id": "S1"}


def test_draft_rules_are_not_scored(default_pack):
    pack = default_pack.only({"gov_regulation_without_legal_review"})
    pack.rules[0].status = "draft"
    try:
        event = make_event(1, type="regulation_issued", attributes={"regulation_id": "Z1", "legal_review": "none"})
        assert score_all(pack, [event])[0] == []
    finally:
        pack.rules[0].status = "live"


def test_idle_state_is_judged_by_its_own_orgs_business_time(default_pack):
    """One org racing ahead in business time (its partition read first) must not
    sweep away another org's open window."""
    pack = default_pack.only({"fin_duplicate_amount"})
    slow_first = make_event(1, org_id="SLOW", amount=5000.0, counterparty_id="S1", occurred_at=T0,
                            attributes={"invoice_no": "F1"})
    fast = [make_event(10 + i, org_id="FAST", amount=100.0 + i, counterparty_id="S2",
                       occurred_at=T0 + (60 + i) * DAY, attributes={"invoice_no": f"G{i}"}) for i in range(3)]
    slow_second = make_event(2, org_id="SLOW", amount=5000.0, counterparty_id="S1", occurred_at=T0 + 3 * DAY,
                             attributes={"invoice_no": "F2"})
    alerts, _ = alerts_of(pack, [slow_first, *fast, slow_second], batch_size=1)
    assert alerts == {"fin_duplicate_amount|SLOW|S1|5000": ["e1", "e2"]}
