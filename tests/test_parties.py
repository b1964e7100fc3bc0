"""Master data as state: who stands behind a counterparty (monitor.core.parties)."""

from __future__ import annotations

import time

import orjson
import msgspec

from monitor.core.parties import COMMON_DETAIL, PartyRegistry, profile_details
from monitor.core.state import ScorerState
from monitor.runners.tablestate import TableState
from monitor.runners.worker import Message, WorkerCore
from tests.conftest import make_event, score_all


def employee(i, employee_id, **attributes):
    return make_event(i, type="employee_profile", attributes={"employee_id": employee_id, **attributes})


def supplier(i, supplier_id, **attributes):
    return make_event(i, type="supplier_profile", counterparty_id=supplier_id, counterparty_name=f"{supplier_id} 公司",
                      attributes=attributes)


def payment(i, supplier_id, **attributes):
    return make_event(i, type="payment", amount=80_000, counterparty_id=supplier_id,
                      attributes={"contract_id": "HT-1", **attributes})


def bid(i, bidder, amount, lot="L1", rank=2, **attributes):
    return make_event(i, type="tender_bid", amount=amount, counterparty_id=bidder,
                      attributes={"lot_id": lot, "rank": rank, **attributes})


def test_details_are_normalised_the_way_source_systems_differ():
    assert profile_details("employee", {"phone": "+86 138-0000-1111；0086 13900002222", "bank_account": "6222 0210-0101 2345",
                                        "address": "江城市　滨江路８号 3-201", "id_number": "11010119800101123x"}) == [
        ["phone", "13800001111"], ["phone", "13900002222"], ["bank", "6222021001012345"],
        ["address", "江城市滨江路8号3201"], ["pid", "11010119800101123X"]]
    # too short to identify anyone: left out
    assert profile_details("supplier", {"phone": "110", "bank_accounts": ["12"], "address": "北京"}) == []
    # a legal representative is known by the identity number, by the bare name only without one;
    # shareholders by their numbers, or by name when they are organisations
    assert profile_details("supplier", {"legal_rep": "赵 六", "shareholders": ["钱七", "江城恒达投资（有限合伙）"],
                                        "shareholder_ids": "330102197001011234"}) == [
        ["person", "赵六"], ["pid", "330102197001011234"], ["holder", "江城恒达投资有限合伙"]]
    assert profile_details("supplier", {"legal_rep": "赵六", "legal_rep_id": "330102197001011234"}) == [
        ["pid", "330102197001011234"]]
    assert profile_details("employee", {"name": "赵六"}) == []


def test_the_newest_record_wins_and_a_late_older_version_is_ignored():
    reg = PartyRegistry({}, {})
    reg.apply("O", "employee", "E1", 10.0, {"phone": "13800001111", "department": "采购部"})
    reg.apply("O", "supplier", "S1", 10.0, {"phone": "13800001111"})
    reg.apply("O", "employee", "E1", 30.0, {"phone": "13900009999", "department": "采购部"})  # changed phone
    reg.apply("O", "employee", "E1", 20.0, {"phone": "13800001111", "department": "采购部"})  # an older version, late
    assert reg.employee_links("O", "S1", at=40.0) == []
    assert reg.index == {("O", "phone", "13900009999"): [["E1", 30.0]]}


def test_links_are_per_org_per_department_and_bounded_by_common_details():
    reg = PartyRegistry({}, {})
    reg.apply("O", "supplier", "S1", 0.0, {"bank_accounts": "6222021001012345", "phone": "01066001234"})
    reg.apply("O", "employee", "E1", 0.0, {"bank_account": "6222021001012345", "department": "财务部", "name": "李四"})
    reg.apply("P", "employee", "E9", 0.0, {"bank_account": "6222021001012345"})  # another org's staff
    links = reg.employee_links("O", "S1", at=1.0)
    assert [(l.party_id, l.shared) for l in links] == [("E1", (("bank", "6222021001012345"),))]
    assert links[0].describe() == "李四 (employee E1, 财务部): same bank account 6222021001012345"
    assert reg.employee_links("O", "S1", at=1.0, department="采购部") == []
    assert len(reg.employee_links("O", "S1", at=1.0, department="财务部")) == 1
    for n in range(COMMON_DETAIL + 1):  # a switchboard number
        reg.apply("O", "employee", f"X{n}", 0.0, {"phone": "010-66001234"})
    assert reg.index[("O", "phone", "01066001234")] == "common"
    assert [l.party_id for l in reg.employee_links("O", "S1", at=1.0)] == ["E1"]


def test_an_inactive_record_is_removed_with_its_index_entries():
    reg = PartyRegistry({}, {})
    reg.apply("O", "employee", "E1", 0.0, {"phone": "13800001111"})
    reg.apply("O", "employee", "E1", 5.0, {"phone": "13800001111", "active": False})
    assert reg.records == {} and reg.index == {}


def test_bidders_share_people_by_number_across_roles_and_names_only_without_numbers():
    reg = PartyRegistry({}, {})
    reg.apply("O", "supplier", "B1", 0.0, {"legal_rep": "赵六", "legal_rep_id": "330102197001011234"})
    reg.apply("O", "supplier", "B2", 0.0, {"shareholders": "钱七", "shareholder_ids": "330102197001011234"})
    reg.apply("O", "supplier", "B3", 0.0, {"legal_rep": "赵六", "legal_rep_id": "110101198505054321"})  # a namesake
    reg.apply("O", "supplier", "B4", 0.0, {"legal_rep": "孙八"})
    reg.apply("O", "supplier", "B5", 0.0, {"legal_rep": "孙八"})  # no numbers on either side: the name counts
    reg.apply("O", "supplier", "B6", 9.0, {"legal_rep": "孙八"})  # registered after the lot
    assert reg.shared_between("O", ["B1", "B2", "B3", "B4", "B5", "B6"], at=5.0) == [
        ("B1", "B2", (("pid", "330102197001011234"),)), ("B4", "B5", (("person", "孙八"),))]


def test_master_data_survives_a_snapshot_and_a_new_worker_over_the_same_table(default_pack):
    events = [employee(1, "E1", phone="13800001111", department="采购部", name="李四"),
              supplier(2, "S1", phone="138 0000 1111"), payment(3, "S1")]
    findings, state = score_all(default_pack, events)
    assert [f.rule_id for f in findings] == ["proc_supplier_employee_link"]
    restored = ScorerState.restore(state.snapshot())
    assert restored.party_records == state.party_records and restored.party_index == state.party_index

    table: dict[bytes, bytes] = {}
    first = WorkerCore(default_pack, table)
    first.process([Message("riskwatch.events.governance", 0, 0, orjson.dumps(msgspec.to_builtins(events[0]))),
                   Message("riskwatch.events.procurement", 0, 0, orjson.dumps(msgspec.to_builtins(events[1])))])
    assert any(b"\x1fplain\x1fparty_records\x1f" in k for k in table)
    second = WorkerCore(default_pack, table)  # restarted: only the table
    out = second.process([Message("riskwatch.events.finance", 0, 0, orjson.dumps(msgspec.to_builtins(events[2])))])
    assert [(a.rule_id, a.event_ids) for a in out.alerts] == [("proc_supplier_employee_link", ["e3"])]
    assert "李四 (employee E1, 采购部): same phone 13800001111" in out.alerts[0].message


def test_reading_master_data_writes_nothing_back(default_pack):
    table: dict[bytes, bytes] = {}
    ts = TableState(default_pack, table)
    reg = PartyRegistry(ts.state.party_records, ts.state.party_index)
    reg.apply("O", "supplier", "S1", 0.0, {"phone": "13800001111"})
    ts.flush()
    again = TableState(default_pack, table).state
    reg = PartyRegistry(again.party_records, again.party_index)
    assert reg.employee_links("O", "S1", at=1.0) == []
    assert ("O", "supplier", "S1") in again.party_records.cache  # it was read
    assert not again.party_records.touched and not again.party_index.touched


def test_a_link_does_not_depend_on_how_the_stream_is_batched(default_pack):
    events = [employee(1, "E1", bank_account="6222021001012345", department="采购部"),
              payment(2, "S1"),  # before the supplier's record: no link yet
              supplier(3, "S1", bank_accounts="6222 0210 0101 2345"),
              make_event(4, type="purchase_order", amount=90_000, counterparty_id="S1",
                         attributes={"category": "goods", "method": "inquiry", "department": "采购部"}),
              payment(5, "S1")]
    results = []
    for size in (1, 2, 5):
        findings, _ = score_all(default_pack, events, batch_size=size)
        results.append(sorted((f.rule_id, tuple(f.event_ids)) for f in findings
                              if f.rule_id.startswith("proc_supplier_employee")))
    assert results[0] == results[1] == results[2] == [
        ("proc_supplier_employee_link", ("e5",)), ("proc_supplier_employee_same_department", ("e4",))]


def test_a_colluding_lot_says_who_shares_what_and_grows_with_its_bids(default_pack):
    events = [supplier(1, "B1", legal_rep="赵六"), supplier(2, "B2", legal_rep="赵 六"),
              bid(3, "B1", 1_000_000, rank=1), bid(4, "B2", 1_080_000), bid(5, "B3", 1_120_000)]
    findings, _ = score_all(default_pack, events, batch_size=1)
    collusion = [f for f in findings if f.rule_id == "proc_bidder_collusion"]
    assert [f.event_ids for f in collusion] == [["e3", "e4"], ["e3", "e4", "e5"]]
    assert collusion[-1].values["linked"] == "B1–B2: person 赵六"
    assert collusion[-1].values["linked_counterparty_id"] == 2.0


def test_a_link_waits_until_the_master_data_topic_has_caught_up(default_pack):
    """The HR topic is read behind the others: the order by the insider's department
    is judged once that topic has reached its time, whatever the reading order, and
    the wait survives a restart."""
    staff = employee(1, "E1", phone="13800001111", department="采购部", name="李四")
    profile = supplier(2, "S1", phone="13800001111")
    order = make_event(3, type="purchase_order", amount=90_000, counterparty_id="S1",
                       attributes={"category": "goods", "method": "inquiry", "department": "采购部"})

    def msg(topic, offset, event):
        return Message(f"riskwatch.events.{topic}", 0, offset, orjson.dumps(msgspec.to_builtins(event)))

    hr_unread = [("riskwatch.events.governance", 0)]
    table: dict[bytes, bytes] = {}
    first = WorkerCore(default_pack, table)
    first.process([msg("governance", 0, make_event(0, type="employee_profile", attributes={"employee_id": "E0"}))])
    out = first.process([msg("procurement", 0, profile), msg("procurement", 1, order)], unread=hr_unread)
    assert out.alerts == [] and first.scorer.waiting_count(first.tables.state) == 2  # both name a counterparty
    second = WorkerCore(default_pack, table)  # restarted while the order waits
    out = second.process([msg("governance", 1, staff)])  # every input read now
    assert [(a.rule_id, a.event_ids) for a in out.alerts] == [("proc_supplier_employee_same_department", ["e3"])]
    assert [e["event_id"] for _, e in out.evidence] == ["e3"]
    assert second.scorer.waiting_count(second.tables.state) == 0

    # in the order of business time, with nothing unread, the same alert at once
    third = WorkerCore(default_pack, {})
    out = third.process([msg("governance", 0, staff), msg("procurement", 0, profile), msg("procurement", 1, order)])
    assert [(a.rule_id, a.event_ids) for a in out.alerts] == [("proc_supplier_employee_same_department", ["e3"])]


def test_what_waits_is_judged_by_the_clock_once_the_inputs_caught_up_with_no_batch_after(default_pack):
    """The last batch of a stream left the order waiting (the HR topic still had records
    fetched but not handed over); no batch comes after. The worker's timer judges it
    once nothing is unread, with the order as the alert's evidence."""
    staff = employee(1, "E1", phone="13800001111", department="采购部", name="李四")
    profile = supplier(2, "S1", phone="13800001111")
    order = make_event(3, type="purchase_order", amount=90_000, counterparty_id="S1",
                       attributes={"category": "goods", "method": "inquiry", "department": "采购部"})

    def msg(topic, offset, event):
        return Message(f"riskwatch.events.{topic}", 0, offset, orjson.dumps(msgspec.to_builtins(event)))

    table: dict[bytes, bytes] = {}
    core = WorkerCore(default_pack, table)
    core.process([msg("governance", 0, staff)], unread=[("riskwatch.events.governance", 0)])
    out = core.process([msg("procurement", 0, profile), msg("procurement", 1, order)],
                       unread=[("riskwatch.events.governance", 0)])
    assert out.alerts == [] and core.scorer.waiting_count(core.tables.state) == 2
    out = core.tick(time.time(), unread=[("riskwatch.events.governance", 0)])  # still behind: still waits
    assert out.alerts == [] and core.scorer.waiting_count(core.tables.state) == 2
    assert core.release(unread=[("riskwatch.events.governance", 0)]).alerts == []  # a stop while behind: waits on
    core.write_state()
    for judge in ("tick", "release"):  # the timer, or a graceful stop, once every input is read
        again = WorkerCore(default_pack, dict(table))
        out = again.tick(time.time(), unread=[]) if judge == "tick" else again.release(unread=[])
        assert [(a.rule_id, a.event_ids) for a in out.alerts] == [("proc_supplier_employee_same_department", ["e3"])]
        assert out.alerts[0].message.endswith("linked to 李四 (employee E1, 采购部): same phone 13800001111")  # this state's registry
        assert [e["event_id"] for _, e in out.evidence] == ["e3"]
        assert again.scorer.waiting_count(again.tables.state) == 0


def test_an_employees_old_detail_is_gone_at_once_though_the_table_still_holds_it(default_pack):
    # A worker restarted from its table (nothing cached), reading the employee's change
    # and the order in one batch: the old phone's index entry is deleted but stays in the
    # table until the flush. A read in between must not bring it back (a kill once
    # raised a supplier-employee alert on a phone the employee no longer had).
    table: dict[bytes, bytes] = {}
    ts = TableState(default_pack, table)
    reg = PartyRegistry(ts.state.party_records, ts.state.party_index)
    reg.apply("O", "employee", "E1", 0.0, {"phone": "13800001111", "department": "采购部"})
    ts.flush()
    restarted = TableState(default_pack, table)
    reg = PartyRegistry(restarted.state.party_records, restarted.state.party_index)
    reg.apply("O", "employee", "E1", 10.0, {"phone": "13900002222", "department": "采购部"})
    reg.apply("O", "supplier", "S1", 20.0, {"phone": "13800001111"})
    assert reg.employee_links("O", "S1", at=30.0) == []  # before the flush
    assert ("O", "phone", "13800001111") not in restarted.state.party_index
    restarted.flush()
    again = TableState(default_pack, table).state
    assert PartyRegistry(again.party_records, again.party_index).employee_links("O", "S1", at=30.0) == []
    reg = PartyRegistry(again.party_records, again.party_index)
    reg.apply("O", "supplier", "S2", 20.0, {"phone": "13900002222"})
    assert [link.party_id for link in reg.employee_links("O", "S2", at=30.0)] == ["E1"]  # the new phone links
