"""Foreign legal disputes, worked by hand: the early warning once per case, the
response's silence on time passing (stream time and the clock), once across a
restart, and the cases that stay quiet."""

from __future__ import annotations

from monitor.core.controls import ControlSpec, StepSpec, compile_control_spec
from monitor.core.reviews import Matter, ReviewWatch

D = 86400.0
CASES = compile_control_spec(ControlSpec(
    control="RC-LAW-01", title="foreign disputes", matter_kind="legal_case", risk="OVS-04", lateness="1d",
    min_amount=10_000_000, only={"role": ["defendant"]}, unless={"jurisdiction": ["CN"]},
    steps=[StepSpec(step="response", within="15d")]))


def case(eid, t, status, case_id="LC1", jurisdiction="DE", role="defendant", claim=20_000_000.0, org="SUB12"):
    return {"event_id": eid, "type": "legal_case", "org_id": org, "t": t, "amount": claim,
            "attributes": {"case_id": case_id, "jurisdiction": jurisdiction, "role": role, "status": status,
                           "court": "Landgericht Hamburg"}}


def run(batches, until):
    w, matters, out = ReviewWatch([CASES]), {}, []
    for batch in batches:
        out += w.apply(batch, matters)
        out += w.advance({"SUB12": max(e["t"] for e in batch)}, matters)
    out += w.advance({"SUB12": until}, matters)
    return out


def test_a_major_case_abroad_is_warned_of_at_its_filing_once_and_its_silence_fires_after_15_days():
    found = run([[case("c1", 0.0, "filed")], [case("c2", 2 * D, "served")], [case("c3", 10 * D, "hearing")]],
                until=2 * D + 16 * D + 1)
    assert [(f.key[2], f.event_ids, f.first_seen) for f in found] == [
        ("warning", ["c1"], 0.0),
        ("silent:response", ["c1", "c2", "c3"], 2 * D + 15 * D)]
    assert found[0].values["breach"] == ("major case abroad: defendant before Landgericht Hamburg (DE), "
                                         "claim 20,000,000 CNY, filed")


def test_silence_waits_for_the_lateness_of_a_late_synced_response():
    early = run([[case("c1", 0.0, "served")]], until=15 * D + 0.5 * D)
    assert [f.key[2] for f in early] == ["warning"]  # past the limit, not yet past its lateness
    answered_late = run([[case("c1", 0.0, "served")], [case("c2", 14 * D, "responded")]], until=40 * D)
    assert [f.key[2] for f in answered_late] == ["warning"]
    settled = run([[case("c1", 0.0, "served")], [case("c2", 12 * D, "settled")]], until=40 * D)
    assert [f.key[2] for f in settled] == ["warning"]
    on_day_16 = run([[case("c1", 0.0, "served")], [case("c2", 16 * D, "responded")]], until=40 * D)
    assert [f.key[2] for f in on_day_16] == ["warning", "silent:response"]


def test_quiet_cases():
    assert run([[case("c1", 0.0, "served", jurisdiction="CN", claim=900_000_000.0)]], until=60 * D) == []
    assert run([[case("c1", 0.0, "served", claim=9_999_999.0)]], until=60 * D) == []
    assert run([[case("c1", 0.0, "served", role="plaintiff", claim=80_000_000.0)]], until=60 * D) == []


def test_a_claim_raised_past_the_threshold_is_warned_of_then():
    found = run([[case("c1", 0.0, "served", claim=5_000_000.0)], [case("c2", 3 * D, "responded", claim=15_000_000.0)]],
                until=60 * D)
    assert [(f.key[2], f.first_seen) for f in found] == [("warning", 3 * D)]


def test_the_silence_fires_once_across_a_restart_and_by_the_clock():
    w, matters = ReviewWatch([CASES]), {}
    assert [f.key[2] for f in w.apply([case("c1", 0.0, "served")], matters)] == ["warning"]
    # restarted before the limit: the matter comes back from its plain form, the schedule is rebuilt
    plain = {cid: {k: m.to_plain() for k, m in store.items()} for cid, store in matters.items()}
    restored = {cid: {k: Matter.from_plain(p) for k, p in store.items()} for cid, store in plain.items()}
    again = ReviewWatch([CASES])
    again.restore(restored)
    assert again.apply([case("c1", 0.0, "served")], restored) == []  # the same event delivered again
    # the org's topic gone quiet: the worker's clock moves its stream time on
    assert [f.key[2] for f in again.advance({"SUB12": 17 * D}, restored)] == ["silent:response"]
    plain = {cid: {k: m.to_plain() for k, m in store.items()} for cid, store in restored.items()}
    third = ReviewWatch([CASES])
    later = {cid: {k: Matter.from_plain(p) for k, p in store.items()} for cid, store in plain.items()}
    third.restore(later)
    assert third.advance({"SUB12": 30 * D}, later) == []
