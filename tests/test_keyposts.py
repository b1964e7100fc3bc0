"""Staff on key posts, worked by hand: the warning, each near miss, one warning
per employee and month, once across a restart, bounded state, and the training
coverage on a hand-counted stream."""

from __future__ import annotations

import datetime as dt

from monitor.core.keyposts import KEEP_TRAININGS, training_coverage
from monitor.core.controls import ControlSpec, StepSpec, compile_control_spec
from monitor.core.reviews import Matter, ReviewWatch

D = 86400.0
CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 7, 1, 10, tzinfo=CST).timestamp()
KEY = compile_control_spec(ControlSpec(
    control="RC-KEY-01", title="key posts", matter_kind="key_post", risk="REG-03", severity="low", lateness="1d",
    min_amount=1_000_000, steps=[StepSpec(step="compliance_training", within="365d"),
                                 StepSpec(step="compliance_commitment")]))
KEY.key_posts = frozenset({"finance_manager", "procurement_manager", "legal_compliance_officer"})


def trained(eid, day, who="E1", kind="compliance", org="SUB01"):
    return {"event_id": eid, "type": "training_completed", "org_id": org, "t": T0 + day * D, "amount": None,
            "attributes": {"employee_id": who, "course": "合规管理办法", "course_kind": kind}}


def signed(eid, day, year=2026, who="E1", org="SUB01"):
    return {"event_id": eid, "type": "commitment_signed", "org_id": org, "t": T0 + day * D, "amount": None,
            "attributes": {"employee_id": who, "year": year}}


def approved(eid, day, amount=2_000_000.0, who="E1", post="finance_manager", org="SUB01"):
    return {"event_id": eid, "type": "payment", "org_id": org, "t": T0 + day * D, "amount": amount,
            "attributes": {"approver_id": who, "approver_post": post, "contract_id": "HT1"}}


def reviewed(eid, day, who="E1", opinion="pass", org="SUB01"):
    return {"event_id": eid, "type": "review_step", "org_id": org, "t": T0 + day * D, "amount": None,
            "attributes": {"matter_id": "HT1", "matter_kind": "contract", "step": "legal_review", "opinion": opinion,
                           "reviewer_post": "legal_compliance_officer", "reviewer_id": who, "opinion_no": "FW-1"}}


def run(events, until_day, watch=None, matters=None):
    w = watch or ReviewWatch([KEY])
    matters = {} if matters is None else matters
    out = []
    for e in sorted(events, key=lambda e: e["t"]):
        out += w.apply([e], matters)
        out += w.advance({e["org_id"]: e["t"]}, matters)
    out += w.advance({"SUB01": T0 + until_day * D}, matters)
    return out, w, matters


def test_trained_364_days_before_and_signed_is_quiet_365_and_a_day_is_not():
    ok = [trained("t1", -364), signed("c1", -100), approved("p1", 0)]
    assert run(ok, until_day=5)[0] == []
    late = [trained("t1", -366), signed("c1", -100), approved("p1", 0)]
    found = run(late, until_day=5)[0]
    assert [f.key for f in found] == [("SUB01", "E1", "untrained:2026-07")]
    assert found[0].values["breach"] == ("on key post finance_manager, payment without a compliance training "
                                         "in the 365 days before")


def test_the_near_misses_stay_quiet():
    assert run([approved("p1", 0, amount=300_000.0)], until_day=5)[0] == []  # an untrained manager, 300,000
    assert run([approved("p1", 0, amount=2_100_000.0, post="finance_clerk")], until_day=5)[0] == []  # a clerk
    assert run([reviewed("r1", 0, opinion="reject")], until_day=5)[0] == []  # a review not passed is not acting


def test_last_years_commitment_or_another_course_does_not_count():
    found = run([trained("t1", -10), signed("c1", -200, year=2025), reviewed("r1", 0)], until_day=5)[0]
    assert [f.values["breach"] for f in found] == [
        "on key post legal_compliance_officer, review_step without the 2026 compliance commitment"]
    found = run([trained("t1", -10, kind="safety"), signed("c1", -10), approved("p1", 0)], until_day=5)[0]
    assert len(found) == 1 and "training" in found[0].values["breach"]


def test_one_warning_per_employee_and_month_listing_the_acts():
    events = [approved("p1", 0), approved("p2", 3), approved("p3", 40), approved("x1", 1, who="E2")]
    found = run(events, until_day=45)[0]
    assert [(f.key[1], f.key[2], f.event_ids) for f in found] == [
        ("E1", "untrained:2026-07", ["p1"]), ("E2", "untrained:2026-07", ["x1"]),
        ("E1", "untrained:2026-07", ["p1", "p2"]),  # the same ticket, now listing both
        ("E1", "untrained:2026-08", ["p3"])]


def test_a_training_synced_late_within_the_lateness_counts():
    w, matters = ReviewWatch([KEY]), {}
    found = w.apply([signed("c1", -30), approved("p1", 0)], matters)
    found += w.advance({"SUB01": T0 + 0.5 * D}, matters)
    found += w.apply([trained("t1", -2)], matters)  # dated before the act, arriving after it
    found += w.advance({"SUB01": T0 + 5 * D}, matters)
    assert found == []


def test_found_once_across_a_restart_and_the_state_stays_bounded():
    w, matters = ReviewWatch([KEY]), {}
    w.apply([approved("p1", 0)], matters)
    plain = {c: {k: m.to_plain() for k, m in store.items()} for c, store in matters.items()}
    restored = {c: {k: Matter.from_plain(p) for k, p in store.items()} for c, store in plain.items()}
    again = ReviewWatch([KEY])
    again.restore(restored)
    assert [f.key[2] for f in again.advance({"SUB01": T0 + 2 * D}, restored)] == ["untrained:2026-07"]
    plain = {c: {k: m.to_plain() for k, m in store.items()} for c, store in restored.items()}
    later = {c: {k: Matter.from_plain(p) for k, p in store.items()} for c, store in plain.items()}
    third = ReviewWatch([KEY])
    third.restore(later)
    assert third.apply([approved("p1", 0)], later) == [] and third.advance({"SUB01": T0 + 9 * D}, later) == []
    # a year of trainings and approvals: only the latest trainings and recent months' acts are kept
    w, matters = ReviewWatch([KEY]), {}
    events = [trained(f"t{i}", i * 30 - 300) for i in range(12)] + [signed("c1", -300, year=2025), signed("c2", 10)]
    events += [approved(f"p{i}", 10 + i * 2) for i in range(150)]
    run(events, until_day=320, watch=w, matters=matters)
    m = matters["RC-KEY-01"][("SUB01", "E1")]
    assert sum(k[2] == "trained" for k in m.marks) == KEEP_TRAININGS
    assert len(m.marks) < 80 and len(m.found) < 80 and len(m.ids) < 80 and m.steps == []


def test_the_training_coverage_on_a_hand_counted_stream():
    events = [
        # E1 trained and signed: acts twice in July, once in August
        trained("a1", -30, who="E1"), signed("a2", -30, who="E1"),
        approved("a3", 1, who="E1"), approved("a4", 5, who="E1"), approved("a5", 35, who="E1"),
        # E2 signed, never trained: acts in July
        signed("b1", -30, who="E2"), reviewed("b2", 2, who="E2"),
        # E3 trained, not signed: acts in July; signs on day 20, acts again in July and in August
        trained("c1", -100, who="E3"), approved("c2", 3, who="E3"), signed("c3", 20, who="E3"),
        approved("c4", 25, who="E3"), approved("c5", 40, who="E3"),
        # E4, a clerk: not a key post
        approved("d1", 4, who="E4", post="finance_clerk"),
    ]
    found, w, _ = run(events, until_day=60)
    assert sorted((f.key[1], f.key[2]) for f in found) == [("E2", "untrained:2026-07"), ("E3", "untrained:2026-07")]
    # July: E1, E2, E3 acted; trained E1, E3; signed (as of their last act in July) E1, E2, E3
    # August: E1, E3 acted, both trained and signed
    assert training_coverage(w.judged) == {("SUB01", "2026-07"): (3, 2, 3), ("SUB01", "2026-08"): (2, 2, 2)}


def test_the_coverage_reaches_the_database_and_the_monthly_report(default_pack, tmp_path):
    from monitor.cases.monthly import monthly
    from monitor.cases.report import write_monthly_report
    from monitor.cases.tickets import SqlTicketStore
    from monitor.runners.runner import EmbeddedRunner
    from tests.test_reviews import _line

    def at(day):
        return f"2026-07-{day:02d}T10:00:00+08:00"

    lines = [_line("t1", "training_completed", "2026-05-01T10:00:00+08:00",
                   attributes={"employee_id": "E1", "course": "合规", "course_kind": "compliance"}),
             _line("c1", "commitment_signed", "2026-01-05T10:00:00+08:00", attributes={"employee_id": "E1", "year": 2026}),
             _line("c2", "commitment_signed", "2026-01-05T10:00:00+08:00", attributes={"employee_id": "E2", "year": 2026}),
             _line("s1", "contract_signed", at(2), amount=600_000, counterparty_id="S1",
                   attributes={"contract_id": "HT1", "legal_review": "passed", "signer_id": "E1",
                               "signer_post": "procurement_manager"}),
             _line("s2", "contract_signed", at(3), amount=700_000, counterparty_id="S2",
                   attributes={"contract_id": "HT2", "legal_review": "passed", "signer_id": "E2",
                               "signer_post": "procurement_manager"}),
             _line("j1", "journal_entry", at(20), amount=1, attributes={"entry_no": "x"})]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(lines))
    store = SqlTicketStore(f"sqlite:///{tmp_path / 't.db'}")
    EmbeddedRunner(default_pack, store, workers=1).run_file(path, tmp_path / "a.jsonl", tmp_path / "r.jsonl")
    assert [t["dedup_key"] for t in store.find() if t["rule_id"] == "RC-KEY-01"] == ["RC-KEY-01|SUB01|E2|untrained:2026-07"]
    rows = store.review_rates("2026-07")
    assert {(r["matter_kind"], r["reviewed"], r["executed"]) for r in rows} == {("training", 1, 2), ("commitment", 2, 2)}
    assert store.latest_review_rates() == []  # not a review rate
    import datetime as _dt

    month = monthly(store.find(limit=10**9), "2026-07", _dt.datetime(2026, 8, 1, tzinfo=_dt.timezone.utc))
    _, html = write_monthly_report(tmp_path / "out", month, {}, rows)
    table = html.read_text(encoding="utf-8").split("Key-post staff trained and committed")[1].split("</table>")[0]
    assert "<td>SUB01</td><td>2</td><td>1</td><td>50.0%</td><td>2</td><td>100.0%</td>" in table


def test_the_batch_prefilter_keeps_every_act_the_control_keys_and_drops_the_rest():
    """``ReviewWatch.may_read`` narrows a batch's payments on its columns before any row
    dict is made: it must keep every row ``key`` keys (a missed act is a missed warning)."""
    import itertools

    import msgspec

    from monitor.core.batch import EventBatch
    from monitor.core.event import decode_lines

    posts = ["finance_manager", "cashier", "", None, 7, True]
    amounts = [2_000_000.0, 1_000_000.0, 999_999.0, None]
    kinds = ["payment", "contract_signed", "review_step", "training_completed", "journal_entry"]
    lines, rows = [], []
    for n, (kind, post, amount) in enumerate(itertools.product(kinds, posts, amounts)):
        attrs = {"approver_id": "E1", "approver_post": post, "signer_id": "E2", "signer_post": post,
                 "reviewer_id": "E3", "reviewer_post": post, "opinion": "pass", "employee_id": "E4"}
        event = {"event_id": f"e{n}", "source": "s", "domain": "finance", "type": kind,
                 "occurred_at": "2026-07-01T10:00:00+08:00", "org_id": "SUB01", "attributes": attrs}
        if amount is not None:
            event["amount"] = amount
        lines.append(msgspec.json.encode(event))
        rows.append({"event_id": f"e{n}", "type": kind, "org_id": "SUB01", "t": T0, "amount": amount,
                     "attributes": attrs})
    events, rejected = decode_lines(lines)
    assert not rejected
    batch = EventBatch(events)
    kept = ReviewWatch([KEY]).may_read(batch, batch.all_rows)
    some = batch.all_rows[::-3]  # any rows, in any order: the answer is per row
    assert ReviewWatch([KEY]).may_read(batch, some).tolist() == kept[some].tolist()
    keyed = [KEY.process.key(KEY, row) is not None for row in rows]
    watched = [row["type"] in KEY.watched_types for row in rows]
    assert all(kept[i] for i, k in enumerate(keyed) if k)
    assert not any(kept[i] for i, w in enumerate(watched) if not w)
    dropped = [rows[i]["attributes"]["approver_post"] for i in range(len(rows))
               if rows[i]["type"] == "payment" and not kept[i]]
    assert "cashier" in dropped and "finance_manager" in dropped  # off a key post, or under the min amount
    keyed_payments = [rows[i]["amount"] for i, k in enumerate(keyed) if k and rows[i]["type"] == "payment"]
    assert keyed_payments == [2_000_000.0, 1_000_000.0]  # on a key post and of the min amount or more
    assert sum(kept[i] for i in range(len(rows)) if rows[i]["type"] == "payment") == 2
