"""The review-process watch, worked by hand: each breach, each near miss,
silence on time passing, and silence that fires once across a restart."""

from __future__ import annotations

import math

import pytest

from monitor.core.controls import ChangeSpec, ControlSpec, StepSpec, compile_control_spec
from monitor.core.reviews import Matter, ReviewWatch

H = 3600.0
D = 86400.0
CONTRACTS = compile_control_spec(ControlSpec(
    control="RC-CON-01", title="major contracts", matter_kind="contract", risk="CON-01", min_amount=1_000_000, lateness="1h",
    steps=[StepSpec(step="legal_review", post="legal_compliance_officer", within="5d",
                    conditional_needs="compliance_review")],
    change=ChangeSpec(tolerance=0.10, review="legal_review", within="5d")))
DECISIONS = compile_control_spec(ControlSpec(
    control="RC-DEC-01", title="三重一大", matter_kind="decision", risk="GOV-01", lateness="1h",
    steps=[StepSpec(step="legal_review", post="legal_compliance_officer"),
           StepSpec(step="compliance_review", post="chief_compliance_officer")]))


def submitted(eid, t, matter="HT1", kind="contract", drafter="u-drafter", amount=2_000_000.0, org="SUB01"):
    return {"event_id": eid, "type": "matter_submitted", "org_id": org, "t": t, "amount": amount,
            "attributes": {"matter_id": matter, "matter_kind": kind, "drafter_id": drafter}}


def step(eid, t, name, opinion="pass", post="legal_compliance_officer", reviewer="u-legal", matter="HT1",
         kind="contract", org="SUB01"):
    return {"event_id": eid, "type": "review_step", "org_id": org, "t": t, "amount": None,
            "attributes": {"matter_id": matter, "matter_kind": kind, "step": name, "reviewer_post": post,
                           "reviewer_id": reviewer, "opinion": opinion, "opinion_no": f"YJ-{eid}"}}


def signed(eid, t, matter="HT1", amount=2_000_000.0, org="SUB01"):
    return {"event_id": eid, "type": "contract_signed", "org_id": org, "t": t, "amount": amount,
            "attributes": {"contract_id": matter}}


def changed(eid, t, amount, matter="HT1", org="SUB01"):
    return {"event_id": eid, "type": "contract_changed", "org_id": org, "t": t, "amount": amount,
            "attributes": {"contract_id": matter}}


def decided(eid, t, matter="JC1", org="SUB01"):
    return {"event_id": eid, "type": "decision", "org_id": org, "t": t, "amount": None,
            "attributes": {"decision_id": matter}}


def watch(events, until, controls=(CONTRACTS,), batches=None):
    """Apply the events (in the given batches, default one), then let stream time reach ``until``."""
    w = ReviewWatch(list(controls))
    matters: dict = {}
    findings = []
    for batch in batches or [events]:
        findings += w.apply(batch, matters)
        findings += w.advance({"SUB01": max(e["t"] for e in batch)}, matters)
    findings += w.advance({"SUB01": until}, matters)
    return findings, w, matters


def breaches(findings):
    return sorted(f.key[2] for f in findings)


# 1. executed before a required step ------------------------------------------------------------

def test_signed_before_the_legal_review_passed():
    findings, _, _ = watch([submitted("s", 0), signed("c", 10 * H)], until=12 * H)
    assert breaches(findings) == ["executed_early:legal_review"]
    assert findings[0].event_ids == ["s", "c"] and findings[0].values["matter_id"] == "HT1"


def test_a_review_passed_minutes_before_signing_is_fine():
    findings, _, _ = watch([submitted("s", 0), step("r", 10 * H - 300, "legal_review"), signed("c", 10 * H)],
                           until=20 * D)
    assert findings == []


def test_a_review_that_arrives_after_the_signing_but_happened_before_is_waited_for():
    early = [submitted("s", 0), signed("c", 10 * H)]
    late = [step("r", 9 * H, "legal_review")]  # the OA's feed runs 30 minutes behind the ERP's
    findings, _, _ = watch(None, until=20 * D, batches=[early, late])
    assert findings == []


def test_a_small_contract_is_not_this_controls_matter():
    findings, _, _ = watch([submitted("s", 0, amount=500_000), signed("c", 10 * H, amount=500_000)], until=20 * D)
    assert findings == []


def test_a_matter_the_oa_never_mentioned_is_left_to_the_flag_rules():
    findings, _, _ = watch([signed("c", 10 * H)], until=20 * D)
    assert findings == []


# 2. executed after a rejection, or on an open conditional ------------------------------------

def test_signed_after_a_rejection():
    findings, _, _ = watch([submitted("s", 0), step("r", 5 * H, "legal_review", "reject"), signed("c", 10 * H)],
                           until=12 * H)
    assert breaches(findings) == ["after_reject:legal_review"]
    assert findings[0].event_ids == ["s", "r", "c"]


def test_a_conditional_opinion_needs_its_follow_up_step():
    open_ = [submitted("s", 0), step("r", 5 * H, "legal_review", "conditional"), signed("c", 10 * H)]
    findings, _, _ = watch(open_, until=12 * H)
    assert breaches(findings) == ["conditional_open:legal_review"]
    closed = open_[:2] + [step("k", 8 * H, "compliance_review", post="chief_compliance_officer"), signed("c", 10 * H)]
    assert watch(closed, until=20 * D)[0] == []  # the near miss: the follow-up passed before signing


# 3. wrong post, own draft --------------------------------------------------------------------

def test_a_step_by_the_wrong_post_or_by_the_drafter():
    findings, _, _ = watch([submitted("s", 0), step("r", 1 * H, "legal_review", post="finance_officer")], until=2 * H)
    assert breaches(findings) == ["wrong_post:legal_review"]
    findings, _, _ = watch([submitted("s", 0), step("r", 1 * H, "legal_review", reviewer="u-drafter")], until=2 * H)
    assert breaches(findings) == ["own_draft:legal_review"]


def test_the_drafter_is_caught_when_the_submission_arrives_after_the_review():
    findings, _, _ = watch(None, until=2 * H, batches=[[step("r", 1 * H, "legal_review", reviewer="u-drafter")],
                                                       [submitted("s", 0)]])
    assert breaches(findings) == ["own_draft:legal_review"]


# 4. out of order -------------------------------------------------------------------------------

def test_steps_out_of_the_lists_order():
    events = [submitted("s", 0, matter="JC1", kind="decision"),
              step("k", 2 * H, "compliance_review", post="chief_compliance_officer", matter="JC1", kind="decision"),
              step("r", 3 * H, "legal_review", matter="JC1", kind="decision"), decided("d", 5 * H)]
    findings, _, _ = watch(events, until=6 * H, controls=(DECISIONS,))
    assert breaches(findings) == ["out_of_order:compliance_review"]
    in_order = [events[0], events[2], dict(events[1], t=4 * H), events[3]]
    assert watch(in_order, until=6 * H, controls=(DECISIONS,))[0] == []


def test_a_decision_missing_its_compliance_review():
    events = [submitted("s", 0, matter="JC1", kind="decision"), step("r", 3 * H, "legal_review", matter="JC1",
                                                                      kind="decision"), decided("d", 5 * H)]
    findings, _, _ = watch(events, until=6 * H, controls=(DECISIONS,))
    assert breaches(findings) == ["executed_early:compliance_review"]


# 5. a material change after review -------------------------------------------------------------

def test_a_contract_raised_past_the_tolerance_needs_a_new_review():
    base = [submitted("s", 0), step("r", 1 * H, "legal_review"), signed("c", 2 * H)]
    raised = base + [changed("x", 10 * D, 2_500_000.0)]
    findings, _, _ = watch(raised, until=15 * D)  # the 5 days (and the hour's grace) not yet over
    assert findings == []
    findings, _, _ = watch(raised, until=15 * D + 2 * H)
    assert breaches(findings) == ["changed:legal_review"] and "x" in findings[0].event_ids
    rereviewed = raised + [step("r2", 12 * D, "legal_review")]
    assert watch(rereviewed, until=30 * D)[0] == []
    within_tolerance = base + [changed("x", 10 * D, 2_150_000.0)]
    assert watch(within_tolerance, until=30 * D)[0] == []


# 6. silence --------------------------------------------------------------------------------------

def test_silence_fires_at_the_limit_not_before_and_once():
    w = ReviewWatch([CONTRACTS])
    matters: dict = {}
    assert w.apply([submitted("s", 0)], matters) == []
    limit = 5 * D + CONTRACTS.lateness
    assert w.advance({"SUB01": limit - 1}, matters) == []
    fired = w.advance({"SUB01": limit}, matters)
    assert breaches(fired) == ["silent:legal_review"] and fired[0].event_ids == ["s"]
    assert fired[0].first_seen == 5 * D
    assert w.advance({"SUB01": limit + 10 * D}, matters) == []


def test_a_silent_matters_ticket_lists_its_execution_whether_read_before_or_after():
    """The signing on day 8, after the five days' limit, is on another topic:
    read before the silence is judged or only after, the ticket ends with the
    same events, the submission and then the signing."""
    from monitor.core.alerts import AlertBook
    from monitor.packs.rulefiles import default_rules_dir, load_pack

    pack = load_pack(default_rules_dir())
    late = signed("c", 8 * D)
    outcomes = []
    for order in ("signing first", "silence first"):
        w, matters, book = ReviewWatch([CONTRACTS]), {}, AlertBook(pack, {})
        w.apply([submitted("s", 0)], matters)
        if order == "signing first":
            w.apply([late], matters)
        book.merge_split(w.advance({"SUB01": 9 * D}, matters))
        if order == "silence first":
            book.merge_split(w.apply([late], matters))
        silent = [a for a in book.alerts.values() if a.dedup_key.endswith("silent:legal_review")]
        outcomes.append([a.event_ids for a in silent])
    assert outcomes[0] == outcomes[1] == [["s", "c"]]


def test_silence_fires_once_across_a_restart():
    w = ReviewWatch([CONTRACTS])
    matters: dict = {}
    w.apply([submitted("s", 0), submitted("s2", 1 * D, matter="HT2")], matters)
    first = w.advance({"SUB01": 5 * D + 2 * H}, matters)
    assert breaches(first) == ["silent:legal_review"]  # HT1's limit has passed, HT2's not yet
    # the state goes to the changelog as plain data and comes back in another process
    plain = {c: {k: m.to_plain() for k, m in store.items()} for c, store in matters.items()}
    recovered = {c: {k: Matter.from_plain(p) for k, p in store.items()} for c, store in plain.items()}
    again = ReviewWatch([CONTRACTS])
    again.restore(recovered)
    later = again.advance({"SUB01": 7 * D}, recovered)
    assert [f.key[1] for f in later] == ["HT2"]  # HT1 is not reported a second time


def test_a_reviewed_or_rejected_matter_is_not_silent():
    reviewed = [submitted("s", 0), step("r", 4 * D, "legal_review")]
    assert watch(reviewed, until=30 * D)[0] == []
    rejected = [submitted("s", 0), step("r", 1 * D, "legal_review", "reject")]
    assert watch(rejected, until=30 * D)[0] == []


# stream time held back by inputs not read that far -----------------------------------------------

def test_silence_waits_while_an_input_with_unread_records_is_behind():
    """A worker catching up reads the OA's topic ahead of the ERP's: the
    signing, still unread on the ERP's topic, is not judged missing."""
    held = ReviewWatch([CONTRACTS])
    matters: dict = {}
    held.apply([submitted("s", 0)], matters)
    # the OA's topic has been read to day 9, the ERP's to day 2 only
    assert held.advance({"SUB01": 9 * D}, matters, until=2 * D) == []
    assert held.take_held_back() == {"SUB01"}
    held.apply([signed("c", 3 * D)], matters)  # the signing comes in, before any legal review
    assert breaches(held.advance({"SUB01": 9 * D}, matters)) == ["executed_early:legal_review"]
    # judged on the OA's time alone, it would have been reported silent as well
    hasty = ReviewWatch([CONTRACTS])
    matters = {}
    hasty.apply([submitted("s", 0)], matters)
    assert breaches(hasty.advance({"SUB01": 9 * D}, matters)) == ["silent:legal_review"]


def test_a_steps_own_checks_wait_until_every_input_is_read_past_it():
    """The review by the drafter is read while the ERP's topic lags: it is
    checked once every input has been read past it, whatever the
    org's own stream time, and the ticket lists the matter's events up to the
    step, not the signing read meanwhile."""
    w = ReviewWatch([CONTRACTS])
    matters: dict = {}
    review = step("r", 2 * H, "legal_review", reviewer="u-drafter")
    assert w.apply([submitted("s", 0), review], matters, until=1 * H) == []
    assert w.advance({"SUB01": 2 * H}, matters, until=2 * H - 1) == []
    w.apply([signed("c", 3 * H)], matters, until=1 * H)
    fired = w.advance({"SUB01": 3 * H}, matters, until=2 * H)
    assert breaches(fired) == ["own_draft:legal_review"] and fired[0].event_ids == ["s", "r"]
    assert w.advance({"SUB01": 30 * D}, matters) == []  # nothing found twice; the signing was reviewed



def test_what_a_lagging_input_held_back_is_judged_after_a_restart_though_the_org_sends_nothing_more():
    w = ReviewWatch([CONTRACTS])
    matters: dict = {}
    w.apply([submitted("s", 0), signed("c", 10 * H)], matters)
    assert w.advance({"SUB01": 2 * D}, matters, until=5 * H) == []  # held back: an input lags
    recovered = {c: {k: Matter.from_plain(m.to_plain()) for k, m in store.items()} for c, store in matters.items()}
    again = ReviewWatch([CONTRACTS])
    again.restore(recovered)
    # the next batch holds another org only; the scorer adds the orgs held back
    orgs = {"SUB02"} | again.take_held_back()
    fired = again.advance({org: {"SUB01": 2 * D, "SUB02": 3 * D}[org] for org in sorted(orgs)}, recovered)
    assert breaches(fired) == ["executed_early:legal_review"]


# the plumbing ----------------------------------------------------------------------------------

def test_an_event_delivered_twice_counts_once():
    events = [submitted("s", 0), step("r", 5 * H, "legal_review", "reject"), signed("c", 10 * H)]
    once, _, _ = watch(events, until=12 * H)
    twice, _, _ = watch(None, until=12 * H, batches=[events, events])
    assert breaches(once) == breaches(twice) == ["after_reject:legal_review"]


def test_orgs_are_judged_on_their_own_stream_time():
    w = ReviewWatch([CONTRACTS])
    matters: dict = {}
    w.apply([submitted("s", 0, org="SUB01"), submitted("s", 0, org="SUB02")], matters)
    assert [f.key[0] for f in w.advance({"SUB02": 6 * D}, matters)] == ["SUB02"]
    assert [f.key[0] for f in w.advance({"SUB01": 6 * D}, matters)] == ["SUB01"]


def test_idle_matters_are_forgotten():
    w = ReviewWatch([CONTRACTS])
    matters: dict = {}
    w.apply([submitted("s", 0)], matters)
    w.forget_idle({"SUB01": CONTRACTS.expires - 1}, matters)
    assert len(matters["RC-CON-01"]) == 1
    w.forget_idle({"SUB01": CONTRACTS.expires + 1}, matters)
    assert matters["RC-CON-01"] == {}


@pytest.mark.parametrize("amount", [None, math.nan])
def test_a_matter_without_an_amount_is_not_a_major_contract(amount):
    findings, _, _ = watch([submitted("s", 0, amount=amount), signed("c", 10 * H, amount=amount)], until=20 * D)
    assert findings == []


# the flag rules and the process checks: one matter, one ticket ------------------------------

def _line(event_id, type_, when, **fields):
    import orjson

    from monitor.core.event import EVENT_TYPES

    record = {"event_id": event_id, "source": "test", "domain": EVENT_TYPES[type_], "type": type_,
              "occurred_at": when, "org_id": "SUB01", **fields}
    return orjson.dumps(record) + b"\n"


def _oa(event_id, type_, when, matter, **attributes):
    return _line(event_id, type_, when, attributes={"matter_id": matter, "matter_kind": "contract", **attributes})


def test_the_flag_rule_and_the_process_check_never_open_two_tickets_for_one_matter(default_pack, tmp_path):
    from monitor.cases.tickets import MemoryTicketStore
    from monitor.runners.runner import EmbeddedRunner

    unreviewed = {"legal_review": "none"}
    lines = [
        # HT1: the OA reports it and no review; the ERP's flag says none too: the process check's ticket alone
        _oa("s1", "matter_submitted", "2026-03-02T09:00:00+08:00", "HT1", drafter_id="u1"),
        _line("c1", "contract_signed", "2026-03-03T09:00:00+08:00", amount=2_000_000, counterparty_id="S1",
              attributes={"contract_id": "HT1", **unreviewed}),
        # HT2: nothing from the OA: the flag rule's ticket alone
        _line("c2", "contract_signed", "2026-03-03T10:00:00+08:00", amount=2_000_000, counterparty_id="S1",
              attributes={"contract_id": "HT2", **unreviewed}),
        # HT3: signed (and flagged) before the OA's submission arrives: the flag's ticket stands for it
        _line("c3", "contract_signed", "2026-03-03T11:00:00+08:00", amount=3_000_000, counterparty_id="S1",
              attributes={"contract_id": "HT3", **unreviewed}),
        _oa("s3", "matter_submitted", "2026-03-01T09:00:00+08:00", "HT3", drafter_id="u1"),
        # HT4: below the control's amount: the OA knows it, but the flag rule covers small contracts
        _oa("s4", "matter_submitted", "2026-03-02T09:00:00+08:00", "HT4", drafter_id="u1"),
        _line("c4", "contract_signed", "2026-03-03T12:00:00+08:00", amount=200_000, counterparty_id="S1",
              attributes={"contract_id": "HT4", **unreviewed}),
        # stream time moves on past every limit
        _line("j1", "journal_entry", "2026-04-30T09:00:00+08:00", amount=1, attributes={"entry_no": "x"}),
    ]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(lines))
    store = MemoryTicketStore()
    runner = EmbeddedRunner(default_pack, store, batch_size=2, workers=1)
    runner.run_file(path, tmp_path / "alerts.jsonl", tmp_path / "rejected.jsonl")
    by_matter: dict[str, list[str]] = {}
    for alert in runner.alerts.values():
        contract = next((k for k in ("HT1", "HT2", "HT3", "HT4") if k in alert.dedup_key), None)
        if contract:
            by_matter.setdefault(contract, []).append(alert.rule_id)
    assert by_matter == {"HT1": ["RC-CON-01"], "HT2": ["proc_contract_without_legal_review"],
                         "HT3": ["proc_contract_without_legal_review"], "HT4": ["proc_contract_without_legal_review"]}
    ht1 = next(a for a in runner.alerts.values() if a.rule_id == "RC-CON-01")
    assert ht1.event_ids == ["s1", "c1"] and "executed before legal_review passed" in ht1.message
    assert ht1.risk_id == "CON-01" and ht1.owner == "legal_compliance_officer"


def test_the_ticket_page_shows_the_matters_timeline_and_the_step_at_issue(default_pack, tmp_path):
    from fastapi.testclient import TestClient

    from monitor.cases.auth import UserStore
    from monitor.cases.tickets import SqlTicketStore
    from monitor.runners.runner import EmbeddedRunner
    from monitor.web.serve import create_app
    from tests.test_serve import login

    lines = [_oa("s1", "matter_submitted", "2026-03-02T09:00:00+08:00", "HT7", drafter_id="u1"),
             _oa("r1", "review_step", "2026-03-02T15:00:00+08:00", "HT7", step="legal_review",
                 reviewer_post="legal_compliance_officer", reviewer_id="u2", opinion="reject", opinion_no="FW-9"),
             _line("c1", "contract_signed", "2026-03-03T09:00:00+08:00", amount=2_000_000, counterparty_id="S1",
                   attributes={"contract_id": "HT7", "legal_review": "passed"}),
             _line("j1", "journal_entry", "2026-03-20T09:00:00+08:00", amount=1, attributes={"entry_no": "x"})]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(lines))
    store = SqlTicketStore(f"sqlite:///{tmp_path / 't.db'}")
    EmbeddedRunner(default_pack, store, workers=1).run_file(path, tmp_path / "a.jsonl", tmp_path / "r.jsonl")
    [ticket] = [t for t in store.find() if t["rule_id"] == "RC-CON-01"]
    assert store.review_rates() == [{"org_id": "SUB01", "matter_kind": "contract", "month": "2026-03", "reviewed": 0,
                                     "executed": 1, "rate": 0.0}]
    UserStore(store.engine).add("head", "head-pass-123", "head", [])
    client = TestClient(create_app(store, default_pack, session_secret="s"))
    login(client, "head", "head-pass-123")
    page = client.get(f"/tickets/{ticket['id']}").text
    assert 'id="timeline"' in page and "after_reject legal_review" in page
    rows = page.split('id="timeline"')[1].split("</table>")[0]
    assert [t for t in ("matter_submitted", "review_step", "contract_signed") if t in rows] == [
        "matter_submitted", "review_step", "contract_signed"]
    assert "FW-9" in rows and "reject" in rows and "u2" in rows


def test_the_review_rate_of_a_hand_counted_stream():
    from monitor.core.reviews import review_rates

    w = ReviewWatch([CONTRACTS])
    matters: dict = {}
    events = []
    for i, (reviewed, month_day) in enumerate([(True, 0), (False, 0), (True, 0), (True, 40 * D)]):
        m = f"HT{i}"
        events += [submitted(f"s{i}", month_day, matter=m)]
        if reviewed:
            events += [step(f"r{i}", month_day + H, "legal_review", matter=m)]
        events += [signed(f"c{i}", month_day + 2 * H, matter=m)]
    events.append(signed("c-small", 3 * H, matter="HT-small", amount=10.0))  # not the control's: not counted
    w.apply(events, matters)
    w.advance({"SUB01": 60 * D}, matters)
    assert review_rates(w.judged) == {("SUB01", "contract", "1970-01"): (2, 3), ("SUB01", "contract", "1970-02"): (1, 1)}


# the list's linter -----------------------------------------------------------------------------

BROKEN = """controls:
  - control: RC-CON-09
    title: t
    matter_kind: contract
    risk: CON-1
    steps:
      - {step: legal_review, post: legal_complaince_officer, within: 5days}
    supersedes: [proc_contract_without_legal_reveiw]
  - control: RC-CON-09
    title: t
    matter_kind: contract
    risk: CON-01
    steps: [{step: legal_review, post: legal_compliance_officer}]
    change: {tolerance: contract_change_tolerence}
    executed_by: [contract_sgned]
  - control: rc-lower
    title: t
    matter_kind: contract
    risk: CON-01
    stpes: []
"""


def test_the_list_is_linted_at_file_line_col_with_did_you_mean(rules_copy):
    from monitor.packs.rulefiles import lint

    (rules_copy / "review_controls.yaml").write_text(BROKEN, encoding="utf-8")
    pack, problems = lint(rules_copy)
    assert pack is None
    found = {(p.line, p.col, p.level, p.message) for p in problems if p.file.endswith("review_controls.yaml")}
    expected = {
        (5, 11, "error", "unknown risk 'CON-1' (did you mean 'CON-01'?)"),
        (7, 36, "error", "unknown post 'legal_complaince_officer' (did you mean 'legal_compliance_officer'?)"),
        (7, 70, "error", "bad duration '5days': use a number and one of s, m, h, d, w (e.g. 30d)"),
        (8, 18, "warning", "supersedes unknown rule 'proc_contract_without_legal_reveiw' "
                           "(did you mean 'proc_contract_without_legal_review'?)"),
        (9, 14, "error", "duplicate control id (first at line 2)"),
        (14, 25, "error", "unknown number parameter 'contract_change_tolerence' (did you mean 'contract_change_tolerance'?)"),
        (15, 19, "error", "unknown event type 'contract_sgned' (did you mean 'contract_signed'?)"),
        (20, 5, "error", "unknown field 'stpes' (did you mean 'steps'?)"),
    }
    assert found == expected, sorted(found ^ expected)


@pytest.mark.parametrize("workers", [1, 2])
def test_silence_in_the_embedded_runner_fires_at_the_limit_not_before(default_pack, tmp_path, workers):
    """Stream time is the org's newest business time: a later event of the same
    org (any event) moves it past the limit of 5 days and the day's grace."""
    from monitor.runners.runner import EmbeddedRunner

    def run(later: str) -> list[str]:
        path = tmp_path / "in.jsonl"
        path.write_bytes(_line("s1", "matter_submitted", "2026-03-02T09:00:00+08:00", amount=2_000_000,
                               attributes={"matter_id": "HT5", "matter_kind": "contract", "drafter_id": "u1"})
                         + _line("j1", "journal_entry", later, amount=1, attributes={"entry_no": "x"}))
        runner = EmbeddedRunner(default_pack, workers=workers, batch_size=1)
        runner.run_file(path, tmp_path / "a.jsonl", tmp_path / "r.jsonl")
        return sorted(a.dedup_key for a in runner.alerts.values() if a.rule_id == "RC-CON-01")

    assert run("2026-03-08T08:59:59+08:00") == []
    assert run("2026-03-08T09:00:00+08:00") == ["RC-CON-01|SUB01|HT5|silent:legal_review"]


def test_the_generator_knows_how_many_events_its_review_plants_emit():
    from monitor.analyst.generator import DEFAULT_START, _Builder
    from monitor.analyst.reviewplants import REVIEW_EVENTS_PER_ROUND, ReviewPlants

    builder = _Builder(4000, 1, DEFAULT_START, 90)
    before = len(builder.events)
    ReviewPlants(builder, 1).plant(1)
    assert len(builder.events) - before == REVIEW_EVENTS_PER_ROUND
