"""Major projects with legal staff at every stage, worked by hand: each breach,
the near misses, one ticket per stage, once across a restart, and 全程参与率
counted on a hand-counted stream."""

from __future__ import annotations

import datetime as dt

from monitor.core.projects import participation_rates, stage_timeline
from monitor.core.controls import ControlSpec, StepSpec, compile_control_spec
from monitor.core.reviews import Matter, ReviewWatch

D = 86400.0
T0 = dt.datetime(2026, 7, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
PROJECTS = compile_control_spec(ControlSpec(
    control="RC-PRJ-01", title="major projects", matter_kind="project", risk="INV-05", lateness="1d",
    min_amount=50_000_000, watch_if=["overseas"],
    steps=[StepSpec(step="legal_participation", post="legal_compliance_officer", within="10d")]))


def stage(eid, day, name, project="XM1", total=80_000_000.0, overseas=False, org="SUB03"):
    return {"event_id": eid, "type": "project_stage", "org_id": org, "t": T0 + day * D, "amount": total,
            "attributes": {"project_id": project, "stage": name, "overseas": overseas}}


def took_part(eid, day, name, project="XM1", post="legal_compliance_officer", opinion="pass", org="SUB03"):
    return {"event_id": eid, "type": "review_step", "org_id": org, "t": T0 + day * D, "amount": None,
            "attributes": {"matter_id": project, "matter_kind": "project", "step": "legal_participation",
                           "stage": name, "reviewer_post": post, "reviewer_id": "E2007", "opinion": opinion,
                           "opinion_no": f"FW-{eid}"}}


def disbursed(eid, day, project="XM1", org="SUB03"):
    return {"event_id": eid, "type": "investment_disbursement", "org_id": org, "t": T0 + day * D,
            "amount": 5_000_000.0, "attributes": {"project_id": project}}


def run(events, until_day, watch=None, matters=None):
    w = watch or ReviewWatch([PROJECTS])
    matters = {} if matters is None else matters
    out = []
    for e in sorted(events, key=lambda e: e["t"]):
        out += w.apply([e], matters)
        out += w.advance({e["org_id"]: e["t"]}, matters)
    out += w.advance({"SUB03": T0 + until_day * D}, matters)
    return out, w, matters


def marks(findings):
    return [f.key[2] for f in findings]


def test_every_stage_covered_in_time_is_quiet_and_counts_as_covered():
    events = [stage("s1", 0, "initiation"), took_part("p1", 2, "initiation"),
              stage("s2", 5, "feasibility"), took_part("p2", 14, "feasibility"),  # day 9 of the stage
              stage("s3", 14 + 5 / 1440, "decision"),  # five minutes after its participation
              took_part("p3", 16, "decision")]
    found, w, _ = run(events, until_day=40)
    assert found == []
    assert [(j.matter_id, j.reviewed) for j in w.judged] == [("XM1@2026-07", True), ("XM1@2026-07", True)]


def test_a_stage_left_uncovered_lists_where_the_project_moved_on():
    found, _, _ = run([stage("s1", 0, "initiation"), stage("s2", 3, "feasibility"), took_part("p1", 4, "initiation")],
                      until_day=5)
    assert marks(found) == ["moved_on:initiation"]
    assert found[0].event_ids[:2] == ["s1", "s2"] and found[0].first_seen == T0 + 3 * D
    assert found[0].values["breach"] == "initiation left for feasibility with no legal participation for it"


def test_silence_one_ticket_per_stage_whichever_finds_it_first():
    # nothing in initiation for ten days (silence), then the project moves on uncovered: still one finding
    found, _, _ = run([stage("s1", 0, "initiation"), stage("s2", 20, "feasibility")], until_day=25)
    assert marks(found) == ["silent:initiation"] and found[0].event_ids == ["s1"]
    assert found[0].first_seen == T0 + 10 * D


def test_a_participation_by_another_post_or_rejecting_does_not_count():
    by_other = [stage("s1", 0, "initiation"), took_part("p1", 1, "initiation", post="investment_compliance_officer")]
    assert marks(run(by_other, until_day=12)[0]) == ["silent:initiation"]
    rejected = [stage("s1", 0, "initiation"), took_part("p1", 1, "initiation", opinion="reject")]
    assert marks(run(rejected, until_day=12)[0]) == ["silent:initiation"]


def test_money_before_contracting_was_covered():
    found, _, _ = run([stage("s1", 0, "contracting"), disbursed("d1", 2), took_part("p1", 3, "contracting")],
                      until_day=30)
    assert marks(found) == ["disbursed_early:contracting"] and found[0].event_ids[0] == "d1"
    quiet, _, _ = run([stage("s1", 0, "contracting"), took_part("p1", 1, "contracting"), disbursed("d1", 2)],
                      until_day=30)
    assert quiet == []


def test_which_projects_are_watched():
    small = [stage("s1", 0, "initiation", total=30_000_000.0), stage("s2", 20, "feasibility", total=30_000_000.0)]
    assert run(small, until_day=60)[0] == []
    small_abroad = [stage("s1", 0, "initiation", total=3_000_000.0, overseas=True)]
    assert marks(run(small_abroad, until_day=12)[0]) == ["silent:initiation"]


def test_a_late_synced_participation_within_the_lateness_counts():
    # the OA syncs at night: the participation dated before the move arrives after it
    events = [stage("s1", 0, "initiation"), stage("s2", 3, "feasibility")]
    w, matters = ReviewWatch([PROJECTS]), {}
    found = w.apply(events, matters) + w.advance({"SUB03": T0 + 3.5 * D}, matters)
    found += w.apply([took_part("p1", 2.9, "initiation")], matters)
    found += w.advance({"SUB03": T0 + 9 * D}, matters)
    assert found == []


def test_found_once_across_a_restart():
    w, matters = ReviewWatch([PROJECTS]), {}
    w.apply([stage("s1", 0, "initiation")], matters)
    plain = {c: {k: m.to_plain() for k, m in store.items()} for c, store in matters.items()}
    restored = {c: {k: Matter.from_plain(p) for k, p in store.items()} for c, store in plain.items()}
    again = ReviewWatch([PROJECTS])
    again.restore(restored)
    assert marks(again.advance({"SUB03": T0 + 12 * D}, restored)) == ["silent:initiation"]
    plain = {c: {k: m.to_plain() for k, m in store.items()} for c, store in restored.items()}
    later = {c: {k: Matter.from_plain(p) for k, p in store.items()} for c, store in plain.items()}
    third = ReviewWatch([PROJECTS])
    third.restore(later)
    assert third.apply([stage("s1", 0, "initiation")], later) == []
    assert third.advance({"SUB03": T0 + 40 * D}, later) == []


def test_the_participation_rate_on_a_hand_counted_stream():
    events = [
        # XM1: every stage covered (July: 2 moves, covered)
        stage("a1", 0, "initiation", "XM1"), took_part("a2", 1, "initiation", "XM1"),
        stage("a3", 5, "feasibility", "XM1"), took_part("a4", 6, "feasibility", "XM1"),
        stage("a5", 12, "decision", "XM1"), took_part("a6", 13, "decision", "XM1"),
        # XM2: initiation left uncovered in July; feasibility covered, left in August: still not covered
        stage("b1", 0, "initiation", "XM2"), stage("b2", 4, "feasibility", "XM2"), took_part("b3", 5, "feasibility", "XM2"),
        stage("b4", 35, "decision", "XM2"), took_part("b5", 36, "decision", "XM2"),
        # XM3: covered, moves in August only
        stage("c1", 25, "initiation", "XM3"), took_part("c2", 26, "initiation", "XM3"), stage("c3", 33, "feasibility", "XM3"),
        took_part("c4", 34, "feasibility", "XM3"),
        # XM4: a small domestic project, never judged
        stage("d1", 0, "initiation", "XM4", total=30_000_000.0), stage("d2", 3, "feasibility", "XM4", total=30_000_000.0),
    ]
    found, w, _ = run(events, until_day=60)
    assert marks(found) == ["moved_on:initiation"] and found[0].key[1] == "XM2"
    # July: XM1 covered, XM2 not (1 of 2); August: XM2 not (its initiation), XM3 covered (1 of 2)
    assert participation_rates(w.judged) == {("SUB03", "2026-07"): (1, 2), ("SUB03", "2026-08"): (1, 2)}


def test_the_stage_timeline_of_a_ticket():
    iso = lambda day: dt.datetime.fromtimestamp(T0 + day * D, dt.timezone.utc).isoformat()  # noqa: E731
    events = [{"type": "project_stage", "occurred_at": iso(0), "attributes": {"stage": "initiation"}},
              {"type": "review_step", "occurred_at": iso(2), "attributes": {"stage": "initiation", "reviewer_post":
               "legal_compliance_officer", "reviewer_id": "E2007", "opinion": "pass", "opinion_no": "FW-1"}},
              {"type": "project_stage", "occurred_at": iso(5), "attributes": {"stage": "feasibility"}}]
    rows = stage_timeline(events)
    assert [(r["stage"], r["reached_at"], r["moved_on_at"], [p["who"] for p in r["participation"]]) for r in rows] == [
        ("initiation", iso(0), iso(5), ["E2007"]), ("feasibility", iso(5), None, [])]


def test_a_project_ticket_shows_its_stages_and_the_rate_reaches_the_database_and_report(default_pack, tmp_path):
    from fastapi.testclient import TestClient

    from monitor.cases.auth import UserStore
    from monitor.cases.report import write_monthly_report
    from monitor.cases.tickets import SqlTicketStore
    from monitor.runners.runner import EmbeddedRunner
    from monitor.web.serve import create_app
    from tests.test_reviews import _line
    from tests.test_serve import login

    def at(day, hour=10, minute=0):
        return f"2026-07-{day:02d}T{hour:02d}:{minute:02d}:00+08:00"

    def stage_line(eid, when, name):
        return _line(eid, "project_stage", when, amount=80_000_000,
                     attributes={"project_id": "XM9", "stage": name, "overseas": False})

    lines = [stage_line("s1", at(1), "initiation"),
             _line("p1", "review_step", at(2), attributes={
                 "matter_id": "XM9", "matter_kind": "project", "step": "legal_participation", "stage": "initiation",
                 "reviewer_post": "legal_compliance_officer", "reviewer_id": "E2007", "opinion": "pass",
                 "opinion_no": "FW-P9"}),
             stage_line("s2", at(6), "feasibility"),
             stage_line("s3", at(9), "decision"),  # feasibility left with no one from legal
             _line("j1", "journal_entry", at(18), amount=1, attributes={"entry_no": "x"})]  # decision not yet silent
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(lines))
    store = SqlTicketStore(f"sqlite:///{tmp_path / 't.db'}")
    runner = EmbeddedRunner(default_pack, store, workers=1)
    summary = runner.run_file(path, tmp_path / "a.jsonl", tmp_path / "r.jsonl")
    assert (summary.projects_moved, summary.projects_covered, summary.matters_executed) == (1, 0, 0)
    [ticket] = [t for t in store.find() if t["rule_id"] == "RC-PRJ-01"]
    assert ticket["dedup_key"] == "RC-PRJ-01|SUB01|XM9|moved_on:feasibility" and ticket["owner_post"] == "legal_compliance_officer"
    assert store.latest_participation_rates() == [{"org_id": "SUB01", "matter_kind": "project", "month": "2026-07",
                                                   "reviewed": 0, "executed": 1, "rate": 0.0}]
    assert store.latest_review_rates() == []
    UserStore(store.engine).add("head", "head-pass-123", "head", [])
    client = TestClient(create_app(store, default_pack, session_secret="s"))
    login(client, "head", "head-pass-123")
    page = client.get(f"/tickets/{ticket['id']}").text
    stages = page.split('id="stages"')[1].split("</table>")[0]
    assert [s for s in ("initiation", "feasibility", "decision") if s in stages] == ["initiation", "feasibility", "decision"]
    assert "E2007" in stages and "FW-P9" in stages and 'class="at-issue"><td>feasibility' in stages

    import datetime as _dt

    from monitor.cases.monthly import monthly  # the report's month, with the rate beside the review rates

    month = monthly(store.find(limit=10**9), "2026-07", _dt.datetime(2026, 8, 1, tzinfo=_dt.timezone.utc))
    xlsx, html = write_monthly_report(tmp_path / "out", month, {}, store.review_rates("2026-07"))
    text = html.read_text(encoding="utf-8")
    assert "全程参与率" in text and text.split("全程参与率 / Legal participation")[1].split("</table>")[0].count("<td>SUB01</td>") == 1
