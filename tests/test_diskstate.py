"""The rules' state on disk (run --state-dir): a mapping like a dict, and a run like one in memory."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.analyst.generator import generate
from monitor.cases.tickets import MemoryTicketStore
from monitor.core.state import KeyTotal
from monitor.runners import diskstate
from monitor.runners.diskstate import DiskState, DiskStore, DiskTable
from monitor.runners.runner import EmbeddedRunner
from monitor.runners.scoring import BatchScorer
from tests.test_cli import riskwatch

KEYS = st.tuples(st.sampled_from(["ORG1", "ORG2"]), st.integers(0, 12).map(str))
OPS = st.lists(st.tuples(st.sampled_from(["get", "peek", "set", "del", "flush"]), KEYS, st.integers(0, 99)),
               max_size=120)


@pytest.fixture
def table(tmp_path):
    table = DiskTable.create(tmp_path / "state")
    yield table
    table.close()


def _total(value: int) -> KeyTotal:
    s = KeyTotal()
    s.insert(True, float(value), f"e{value}", float(value), ())
    return s


def _plain(store) -> dict:
    return {k: [e[1] for e in v.adds] for k, v in store.items()}


@settings(max_examples=150, deadline=None)
@given(ops=OPS)
def test_a_disk_store_holds_what_a_dict_holds_whatever_leaves_its_cache(tmp_path_factory, ops):
    table = DiskTable.create(tmp_path_factory.mktemp("state"))
    try:
        store, model = DiskStore(table, "r", "total"), {}
        for op, key, value in ops:
            if op in ("get", "peek"):
                held = getattr(store, op)(key)
                assert (held is None) == (key not in model)
                if held is not None:
                    assert [e[1] for e in held.adds] == model[key]
            elif op == "set":
                store[key] = _total(value)
                model[key] = [f"e{value}"]
            elif op == "del" and key in model:
                del store[key]
                del model[key]
            else:
                store.flush()
                if len(store.cache) > 4:  # a cache of four: half of it stays
                    store.evict(len(store.cache) - 2)
                table.commit()
            assert len(store) == len(model)
            assert _plain(store) == model
    finally:
        table.close()


def test_entries_leave_the_cache_for_the_table_and_come_back(table):
    store = DiskStore(table, "r", "total")
    for i in range(50):
        store[("ORG1", str(i))] = _total(i)
    store.flush()
    store.evict(45)
    table.commit()
    assert len(store.cache) == 5 and store.spilled
    assert sum(1 for _ in table.scan(store.prefix)) == 45  # what left the cache, written once
    assert [e[1] for e in store.get(("ORG1", "3")).adds] == ["e3"]
    assert len(store) == 50
    store.clear_all()
    table.commit()
    assert len(store) == 0 and list(store.items()) == [] and store.get(("ORG1", "3")) is None


def test_the_scratch_folder_is_removed_when_the_table_closes(tmp_path):
    table = DiskTable.create(tmp_path)
    assert table.folder.parent == tmp_path and table.folder.exists()
    table.close()
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def stream_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "events.jsonl"
    generate(events=20_000, seed=11).write(path)
    return path


def _lines(path: Path, size: int):
    lines = path.read_bytes().splitlines(keepends=True)
    for start in range(0, len(lines), size):
        yield start + 1, lines[start:start + size]


def test_the_stores_share_one_budget_each_keeping_its_share(tmp_path):
    state = DiskState(tmp_path / "state", max_cached=100)
    try:
        busy, quiet = state._store("busy", "total"), state._store("quiet", "total")
        for i in range(150):
            busy[("ORG1", str(i))] = _total(i)
        for i in range(50):
            quiet[("ORG1", str(i))] = _total(i)
        state.flush()
        assert (len(busy.cache), len(quiet.cache)) == (37, 12)  # down to half the budget, 3 to 1 as they held
        assert list(busy.cache)[0] == ("ORG1", "113")  # the entries used longest ago left
        assert [e[1] for e in busy[("ORG1", "0")].adds] == ["e0"] and len(busy) == 150  # from the table
        for i in range(40):
            quiet[("ORG2", str(i))] = _total(i)
        state.flush()
        assert len(busy.cache) + len(quiet.cache) == 90  # within the budget: nothing leaves
    finally:
        state.table.close()


def test_above_its_memory_aim_a_process_gives_up_cached_entries_and_takes_them_back_below(tmp_path, monkeypatch):
    resident = {"now": 0}
    monkeypatch.setattr(diskstate, "resident_bytes", lambda: resident["now"])
    monkeypatch.setattr(diskstate, "MIN_CACHED", 10)
    state = DiskState(tmp_path / "state", max_cached=1000, max_resident=100)
    try:
        store = state._store("busy", "total")
        for i in range(400):
            store[("ORG1", str(i))] = _total(i)
        state.flush()
        assert (len(store.cache), state.budget) == (400, 1000)  # under the aim: nothing leaves
        resident["now"] = 200
        state.flush()
        assert (len(store.cache), state.budget) == (200, 200)  # above: half leave, and the budget comes down
        state.flush()
        assert (len(store.cache), state.budget) == (100, 100)
        for _ in range(10):
            state.flush()
        assert (len(store.cache), state.budget) == (10, 10)  # never below MIN_CACHED
        resident["now"] = 50
        for i in range(400, 500):
            store[("ORG1", str(i))] = _total(i)
        state.flush()
        assert (len(store.cache), state.budget) == (5, 11)  # over the budget it had: half of it kept; it grows back
        assert len(store) == 500 and [e[1] for e in store[("ORG1", "0")].adds] == ["e0"]
    finally:
        state.table.close()


def test_a_scorer_on_disk_keeps_the_same_state_and_alerts_as_in_memory(default_pack, stream_file, tmp_path):
    memory = BatchScorer(default_pack, keep_evidence=False)
    disk = BatchScorer(default_pack, keep_evidence=False, state_dir=tmp_path, state_cache=100)
    for first, lines in _lines(stream_file, 700):
        memory.process(lines, first)
        disk.process(lines, first)
        for rule_id, store in {**memory.state.windows, **memory.state.totals}.items():
            held = disk.state.windows.get(rule_id) or disk.state.totals[rule_id]
            assert len(held) == len(store), rule_id  # the sweeps dropped the same keys
        assert len(disk.state.party_records) == len(memory.state.party_records)
        assert {c: len(m) for c, m in disk.state.matters.items() if m} == \
            {c: len(m) for c, m in memory.state.matters.items() if m}
        for detector_id, models in memory.state.detectors.items():
            on_disk = disk.state.detectors[detector_id]
            assert [m.key_count() for m in models.values() if hasattr(m, "key_count")] == \
                [m.key_count() for m in on_disk.values() if hasattr(m, "key_count")], detector_id
    spilled = {s.kind for s in disk.disk.stores if s.spilled}
    assert {"window", "total", "matter", "pickled"} <= spilled
    assert {k: sorted(a.event_ids) for k, a in disk.book.alerts.items()} == \
        {k: sorted(a.event_ids) for k, a in memory.book.alerts.items()}
    assert any(k.startswith("det_") for k in memory.book.alerts)
    disk.close()
    assert list(tmp_path.iterdir()) == []


def test_a_run_with_its_state_on_disk_gives_the_alerts_and_tickets_of_one_in_memory(default_pack, stream_file,
                                                                                  tmp_path):
    outputs = []
    for name, state_dir in (("memory", None), ("disk", tmp_path / "state")):
        store = MemoryTicketStore()
        runner = EmbeddedRunner(default_pack, store, batch_size=1000, state_dir=state_dir, state_cache=100)
        summary = runner.run_file(stream_file, tmp_path / f"{name}.jsonl", tmp_path / f"{name}.rejected.jsonl")
        assert summary.balanced
        outputs.append(((tmp_path / f"{name}.jsonl").read_bytes(), sorted(t["dedup_key"] for t in store.tickets())))
    assert outputs[0] == outputs[1] and outputs[0][1]
    assert list((tmp_path / "state").iterdir()) == []  # the scratch folder is gone


def test_two_scoring_processes_keep_their_state_on_disk_and_alert_as_in_memory(stream_file, tmp_path):
    # a process of its own: RocksDB opened by earlier tests in this one must not be forked
    alerts = []
    for name, extra in (("memory", []), ("disk", ["--state-dir", tmp_path / "state", "--state-cache", 100])):
        done = riskwatch("run", "--input", stream_file, "--alerts-out", tmp_path / f"{name}.jsonl", "--db", "none",
                         "--workers", 2, "--batch-size", 1000, "--quiet", *extra)
        assert done.returncode == 0, done.stderr
        alerts.append((tmp_path / f"{name}.jsonl").read_bytes())
    assert alerts[0] == alerts[1] and alerts[0].count(b"\n") > 10
    assert list((tmp_path / "state").iterdir()) == []  # both processes removed their folders


def test_a_reloaded_detector_starts_afresh_on_disk_as_in_memory(default_pack, rules_copy, stream_file, tmp_path):
    from monitor.packs.rulefiles import load_pack

    path = rules_copy / "detectors.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("settings: {window: 30, warmup: 8,",
                                                             "settings: {window: 20, warmup: 6,"), encoding="utf-8")
    changed = load_pack(rules_copy)
    memory = BatchScorer(default_pack, keep_evidence=False)
    disk = BatchScorer(default_pack, keep_evidence=False, state_dir=tmp_path, state_cache=100)
    for first, lines in _lines(stream_file, 700):
        if first > 10_000 and memory.pack is default_pack:
            assert memory.swap_pack(changed) == disk.swap_pack(changed) == {"det_amount_outlier"}
            assert "det_amount_outlier" not in disk.disk.by_detector  # its keys on disk are gone
        memory.process(lines, first)
        disk.process(lines, first)
    models = [disk.state.detectors["det_amount_outlier"], memory.state.detectors["det_amount_outlier"]]
    assert [m.key_count() for m in models[0].values()] == [m.key_count() for m in models[1].values()]
    assert len(disk.disk.by_detector["det_amount_outlier"]) == len(models[0])  # new stores for the new models
    assert {k: sorted(a.event_ids) for k, a in disk.book.alerts.items()} == \
        {k: sorted(a.event_ids) for k, a in memory.book.alerts.items()}
    disk.close()
