"""The analyst's workflow: backtest, rules diff, coverage, exceptions, hot reload, versions."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import msgspec
import orjson
import pytest
from prometheus_client import CollectorRegistry

from monitor.analyst.backtest import alerts_frame, backtest
from monitor.core.batch import EventBatch
from monitor.metrics import Metrics
from monitor.packs.reload import PackReloader
from monitor.packs.rulefiles import lint, load_pack
from monitor.core.rules import changed_rules
from monitor.runners.runner import EmbeddedRunner
from monitor.core.scorer import Scorer
from monitor.core.state import ScorerState, drop_rules
from monitor.cases.tickets import MemoryTicketStore, SqlTicketStore
from tests.conftest import make_event
from tests.test_cli import riskwatch


def payment(i: int, amount: float, day: int = 2, contract: str | None = None, org: str = "SUB01") -> bytes:
    e = make_event(i, amount=amount, org_id=org, counterparty_id=f"S{i}", counterparty_name=f"供应商{i}",
                   occurred_at=f"2026-03-{day:02d}T10:00:00+08:00",
                   attributes={"payment_no": f"FK{i}", **({"contract_id": contract} if contract else {})})
    return orjson.dumps(msgspec.to_builtins(e)) + b"\n"


@pytest.fixture()
def small_case(tmp_path) -> tuple[Path, Path]:
    """Four payments without a contract: three at or over the 50,000 limit, one under it.
    Labels: e1 and e2 are violations of the rule, e3 is not (a mislabelled-free false alarm),
    e4 is a violation the rule cannot see (under the limit)."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(payment(1, 80_000, 2) + payment(2, 50_000, 9) + payment(3, 120_000, 9) + payment(4, 30_000, 20)
                       + payment(5, 90_000, 21, contract="HT1"))
    labels = tmp_path / "labels.csv"
    labels.write_text("event_id,label\ne1,fin_payment_without_contract\ne2,fin_payment_without_contract\n"
                      "e3,no\ne4,fin_payment_without_contract\ne5,no\n", encoding="utf-8")
    return events, labels


def test_backtest_figures_match_a_hand_count(small_case, tmp_path):
    events, labels = small_case
    out = riskwatch("backtest", "--events", events, "--labels", labels, "--html", tmp_path / "report.html", "--workers", 1)
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if "│ fin_payment_without_contract" in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    # rule, status, alerts, events, per day, max/day, per week, true, precision, recall, F1
    # 3 alerts (e1, e2, e3) over days 2..9 (7 days): 3/7 a day; 2 in one day; 2 true;
    # precision 2/3; recall 2 of the 3 labelled events; F1 2/3.
    assert cells == ["fin_payment_without_contract", "live", "3", "3", "0.43", "2", "3.0", "2", "66.7%", "66.7%", "66.7%"]
    assert "overall: 3 labelled events; precision 66.7%, recall 66.7%, F1 66.7%" in out.stdout
    assert "missed       fin_payment_without_contract: e4" in out.stdout
    assert "false alarm  fin_payment_without_contract: SUB01: payment FK3 of 120,000 CNY" in out.stdout
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html and "fin_payment_without_contract" in html and "66.7%" in html


def test_backtest_function_with_yes_no_labels():
    from types import SimpleNamespace as A

    alerts = alerts_frame([
        A(rule_id="r", dedup_key="r|1", first_seen="2026-06-01T00:00:00Z", event_ids=["a", "b"], status="live", message="m1", score=1),
        A(rule_id="r", dedup_key="r|2", first_seen="2026-06-03T00:00:00Z", event_ids=["c"], status="live", message="m2", score=1),
        A(rule_id="s", dedup_key="s|1", first_seen="2026-06-08T00:00:00Z", event_ids=["d"], status="shadow", message="m3", score=1),
    ])
    result = backtest(alerts, {"a": "yes", "c": True, "x": 1, "d": "no"}, ["r", "s", "t"])
    per = result.per_rule.set_index("rule_id")
    assert per.loc["r", ["alerts", "hits", "true_alerts"]].tolist() == [2, 3, 2]
    assert per.loc["r", "precision"] == 1.0 and per.loc["r", "recall"] == pytest.approx(2 / 3)
    assert per.loc["s", "precision"] == 0.0 and per.loc["t", "alerts"] == 0
    assert result.overall["precision"] == pytest.approx(2 / 3) and result.overall["recall"] == pytest.approx(2 / 3)
    assert result.misses == {"*": ["x"]} and result.false_alarms["s"] == ["m3"]


def test_bad_label_files_name_the_line_and_field(small_case, tmp_path):
    events, _ = small_case
    bad = tmp_path / "labels.jsonl"
    bad.write_text('{"event_id": "e1", "label": true}\n{"label": false}\n', encoding="utf-8")
    out = riskwatch("backtest", "--events", events, "--labels", bad)
    assert out.returncode == 1 and f"{bad}:2: field 'event_id' is missing or not a string" in out.stderr


def test_rules_diff_shows_what_a_threshold_change_does(small_case, rules_copy, tmp_path):
    events, _ = small_case
    head = tmp_path / "head"
    subprocess.run(["cp", "-r", str(rules_copy), str(head)], check=True)
    params = head / "params.yaml"
    params.write_text(params.read_text(encoding="utf-8").replace("no_contract_payment_limit: 50000",
                                                                 "no_contract_payment_limit: 100000"), encoding="utf-8")
    out = riskwatch("rules", "diff", "--base", rules_copy, "--head", head, "--events", events, "--workers", 1)
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if "│ fin_payment_without_contract" in line)
    assert [c.strip() for c in row.split("│")[1:-1]] == ["fin_payment_without_contract", "3", "1", "+0", "-2", "~0"]
    assert "  - fin_payment_without_contract: SUB01: payment FK1 of 80,000 CNY" in out.stdout
    assert "0 alerts added, 2 removed, 0 changed" in out.stdout


def test_rules_diff_against_a_git_revision(small_case, rules_copy, tmp_path):
    events, _ = small_case
    repo = rules_copy.parent
    git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=a", "add", "rules")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "rules")
    params = rules_copy / "params.yaml"
    params.write_text(params.read_text(encoding="utf-8").replace("no_contract_payment_limit: 50000",
                                                                 "no_contract_payment_limit: 25000"), encoding="utf-8")
    out = riskwatch("rules", "diff", "--base", "HEAD", "--head", rules_copy, "--events", events, "--workers", 1)
    assert out.returncode == 0, out.stderr
    assert "1 alerts added, 0 removed, 0 changed" in out.stdout and "+ fin_payment_without_contract" in out.stdout
    bad = riskwatch("rules", "diff", "--base", "no-such-rev", "--head", rules_copy, "--events", events)
    assert bad.returncode == 2 and "neither a folder nor a git revision" in bad.stderr


def _tar(*members: tuple[str, bytes, bytes]) -> bytes:
    """An archive of (name, type, data-or-link-target) members."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = data.decode()
                tar.addfile(info)
            elif kind == tarfile.REGTYPE:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize("member", [
    ("rules/../../escape.yaml", "0", b"x"),  # climbs out
    ("/tmp/absolute.yaml", "0", b"x"),
    ("rules/link.yaml", "2", b"/etc/passwd"),  # a symbolic link
    ("rules/hard.yaml", "1", b"rules/params.yaml"),  # a hard link
    ("rules/dev", "3", b""),  # a character device
    ("rules/fifo", "6", b""),
], ids=["dotdot", "absolute", "symlink", "hardlink", "device", "fifo"])
def test_a_base_revision_is_extracted_as_plain_files_only(tmp_path, member):
    from monitor.cli.rules import UnsafeArchive, extract_regular_files

    name, kind, data = member
    dest = tmp_path / "base"
    dest.mkdir()
    archive = _tar(("rules/", b"5", b""), ("rules/params.yaml", b"0", b"a: 1\n"), (name, kind.encode(), data))
    with pytest.raises(UnsafeArchive, match=name.lstrip("/")):
        extract_regular_files(archive, dest)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert written == ["base", "base/rules", "base/rules/params.yaml"]
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))


def test_coverage_lists_gaps_idle_rules_and_unused_lists(small_case, rules_copy):
    events, _ = small_case
    (rules_copy / "lists" / "watchlist.csv").write_text("counterparty_id\nX1\n", encoding="utf-8")
    out = riskwatch("rules", "coverage", rules_copy, "--events", events, "--workers", 1)
    assert out.returncode == 0, out.stderr
    assert "risk list: 37 risks, 28 with a live rule or detector" in out.stdout
    assert "no live rule: PROC-03 单一来源采购理由不充分" in out.stdout
    assert "lists no rule uses: watchlist" in out.stdout
    never = next(line for line in out.stdout.splitlines() if line.startswith("never fired"))
    assert "proc_split_purchase" in never and "fin_payment_without_contract" not in never


def test_an_exception_needs_an_owner_and_an_expiry(rules_copy):
    path = rules_copy / "procurement.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(", owner: procurement_compliance_officer", ""), encoding="utf-8")
    pack, problems = lint(rules_copy)
    assert pack is None
    assert [str(p).split(" ", 1)[1] for p in problems if p.level == "error"] == ["proc_split_purchase: missing required field 'owner'"]


# --- hot reload ------------------------------------------------------------------------------------------------
def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def po(i, day, amount, org="SUB01"):
    return make_event(i, type="purchase_order", amount=amount, counterparty_id="S1", org_id=org,
                      occurred_at=f"2026-03-{day:02d}T10:00:00+08:00", attributes={"category": "goods", "method": "inquiry"})


def test_a_reload_keeps_the_state_of_rules_that_did_not_change(rules_copy):
    old = load_pack(rules_copy)
    state = ScorerState()
    Scorer(old).score(EventBatch([po(1, 2, 1_200_000)]), state)
    assert ("SUB01", "S1", "goods") in state.windows["proc_split_purchase"]
    edit(rules_copy / "params.yaml", "no_contract_payment_limit: 50000", "no_contract_payment_limit: 60000")
    new = load_pack(rules_copy)
    assert changed_rules(old, new) == {"fin_payment_without_contract"}
    drop_rules(state, changed_rules(old, new))
    findings = Scorer(new).score(EventBatch([po(2, 9, 900_000)]), state)  # the first order is still in the window
    assert [(f.rule_id, sorted(f.event_ids)) for f in findings] == [("proc_split_purchase", ["e1", "e2"])]
    edit(rules_copy / "params.yaml", "goods: 2000000", "goods: 2500000")
    newer = load_pack(rules_copy)
    assert "proc_split_purchase" in changed_rules(new, newer)
    drop_rules(state, changed_rules(new, newer))
    assert "proc_split_purchase" not in state.windows


def test_an_invalid_change_is_rejected_and_the_running_pack_stays(rules_copy, caplog):
    pack = load_pack(rules_copy)
    metrics = Metrics(CollectorRegistry())
    reloader = PackReloader(rules_copy, pack, metrics, debounce=0)
    edit(rules_copy / "finance.yaml", "when: type == \"payment\"", "when: type == \"payment\" and amout > 0")
    reloader.request()
    with caplog.at_level(logging.ERROR, logger="riskwatch.reload"):
        assert reloader.poll() is None
    assert any("finance.yaml:" in r.getMessage() and "unknown field 'amout'" in r.getMessage() for r in caplog.records)
    assert reloader.pack is pack and reloader.rejected == 1
    assert metrics.rule_pack_reloads.labels("rejected")._value.get() == 1
    edit(rules_copy / "finance.yaml", "and amout > 0", "and amount > 0")
    reloader.request()
    new = reloader.poll()
    assert new is not None and new.version != pack.version and reloader.versions == [pack.version, new.version]
    assert metrics.rule_pack.labels(pack.version)._value.get() == 0 and metrics.rule_pack.labels(new.version)._value.get() == 1


def test_watching_the_folder_and_sighup_ask_for_a_reload(rules_copy):
    reloader = PackReloader(rules_copy, load_pack(rules_copy), debounce=0)
    reloader.start(watch=True, sighup=True)
    try:
        edit(rules_copy / "params.yaml", "no_contract_payment_limit: 50000", "no_contract_payment_limit: 70000")
        deadline = time.monotonic() + 10
        while not reloader.pending and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reloader.poll() is not None  # the watcher saw the edit
        os.kill(os.getpid(), signal.SIGHUP)
        assert reloader.pending
        assert reloader.poll() is None  # nothing changed since: the same version
    finally:
        reloader.stop()
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


def test_a_reload_storm_loses_nothing_and_every_alert_names_its_pack(rules_copy):
    """Valid and invalid edits between batches while a stream is scored: in =
    scored + rejected, nothing twice, and every alert carries a version that scored."""
    from monitor.analyst.generator import generate

    stream = generate(events=30_000, seed=11)
    lines = stream.lines
    store = MemoryTicketStore()
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    reloader = PackReloader(rules_copy, load_pack(rules_copy), metrics, debounce=0)
    runner = EmbeddedRunner(reloader.pack, store, metrics, batch_size=1000, reloader=reloader)
    finance, params = rules_copy / "finance.yaml", rules_copy / "params.yaml"
    limits = itertools.cycle(["40000", "45000", "50000", "55000"])
    current = ["50000"]

    def edits(i: int) -> None:
        if i % 3 == 0:  # a valid threshold change
            nxt = next(limits)
            edit(params, f"no_contract_payment_limit: {current[0]}", f"no_contract_payment_limit: {nxt}")
            current[0] = nxt
        elif i % 3 == 1:  # a broken file ...
            edit(finance, "- rule: fin_payment_without_contract", "- rule: fin_payment_without_contract\n  colour: red")
        else:  # ... and its repair
            edit(finance, "- rule: fin_payment_without_contract\n  colour: red", "- rule: fin_payment_without_contract")
        reloader.request()

    def feed():
        for i, line in enumerate(lines):
            if i and i % 1500 == 0:
                edits(i // 1500)
            yield line

    summary = runner.run_stream(feed())
    expected_lines = sum(1 for x in lines if x.strip())
    assert summary.balanced and summary.lines == expected_lines and summary.rejected == stream.truth.malformed
    assert reloader.rejected >= 5 and len(set(reloader.versions)) >= 4
    assert {a.pack_version for a in runner.alerts.values()} <= set(reloader.versions)
    assert len({a.pack_version for a in runner.alerts.values()}) >= 2
    assert {row["version"] for row in store.pack_versions()} == set(reloader.versions)
    assert metrics.rule_pack_reloads.labels("rejected")._value.get() == reloader.rejected
    scored = sum(s.value for m in registry.collect() if m.name == "riskwatch_events_in" for s in m.samples
                 if s.name.endswith("_total"))
    assert scored == summary.scored  # each event counted once across every reload


def test_two_scoring_processes_reload_at_one_line_as_one_process_would(rules_copy, tmp_path, monkeypatch):
    """--workers 2 with a reload: both workers switch after the same line of the file,
    and the alerts equal one process that scores up to that line with the old pack and
    the rest with the new one (an org's unchanged rules keep their state)."""
    import os

    from monitor.analyst.generator import generate
    from monitor.core.rules import RulePack
    from monitor.runners.runner import BatchScorer

    stream = generate(events=40_000, seed=5)
    path = tmp_path / "events.jsonl"
    stream.write(path)
    lines = path.read_bytes().splitlines(keepends=True)
    old = load_pack(rules_copy).rules_alone()
    edit(rules_copy / "params.yaml", "no_contract_payment_limit: 50000", "no_contract_payment_limit: 20000")
    edit(rules_copy / "procurement.yaml", "within: 30d", "within: 20d")
    new = load_pack(rules_copy).rules_alone()
    store = MemoryTicketStore()
    reloader = PackReloader(rules_copy, old, debounce=0, narrow=RulePack.rules_alone)
    reloader.request()  # taken up at the parent's first look, while the workers score
    parent, process = os.getpid(), BatchScorer.process

    def steady(self, *args, **kwargs):  # the workers pace themselves, so the switch falls inside the file
        if os.getpid() != parent:
            time.sleep(0.02)
        return process(self, *args, **kwargs)

    monkeypatch.setattr(BatchScorer, "process", steady)
    runner = EmbeddedRunner(old, store, batch_size=500, workers=2, reloader=reloader)
    summary = runner.run_file(path, None, tmp_path / "rejected.jsonl")
    reloader.stop()
    monkeypatch.undo()
    assert runner.workers == 2 and summary.balanced and summary.lines == sum(1 for x in lines if x.strip())
    [(after, version)] = runner.switches
    assert version == new.version and 0 < after < len(lines) - 5_000
    assert runner.versions_used == [old.version, new.version]
    assert not reloader.snapshot.exists()  # the checked copy goes with the reloader

    one = BatchScorer(old, keep_evidence=False)
    expected: dict = {}
    for part, first in ((lines[:after], 1), (lines[after:], after + 1)):
        result = one.process(part, first)
        expected.update((a.dedup_key, a) for a in result.new_alerts + result.updated_alerts)
        one.swap_pack(new)

    def shown(alerts):
        return {k: (a.rule_id, sorted(a.event_ids), a.pack_version, a.status) for k, a in alerts.items()}

    assert shown(runner.alerts) == shown(expected)
    by_new = {a.rule_id for a in runner.alerts.values() if a.pack_version == new.version}
    assert "fin_payment_without_contract" in by_new  # the lower limit alerted after the switch
    assert {t["pack_version"] for t in store.tickets()} == {old.version, new.version}
    assert {row["version"] for row in store.pack_versions()} == {old.version, new.version}


def test_a_reload_two_scoring_processes_cannot_split_is_refused(rules_copy, caplog):
    """Under --workers 2 a reload is checked in a copy of the folder; its problems still name
    the analyst's files, and a rule keyed past org_id is refused, not run wrong."""
    from monitor.runners.partitions import reload_across_workers

    reloader = PackReloader(rules_copy, load_pack(rules_copy), debounce=0)
    reload_across_workers(reloader)  # what a run with scoring processes does before they start
    edit(rules_copy / "finance.yaml", "when: type == \"payment\"", "when: type == \"payment\" and amout > 0")
    reloader.request()
    with caplog.at_level(logging.ERROR, logger="riskwatch.reload"):
        assert reloader.poll() is None
    assert f"{rules_copy / 'finance.yaml'}:" in caplog.text and "riskwatch-rules-" not in caplog.text
    edit(rules_copy / "finance.yaml", "and amout > 0", "")
    edit(rules_copy / "governance.yaml", "key: [org_id, counterparty_id]", "key: [counterparty_id]")
    reloader.request()
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="riskwatch.reload"):
        assert reloader.poll() is None
    assert reloader.rejected == 2 and "--workers 1" in caplog.text
    assert reloader.snapshot is None  # no copy kept for a refused pack


def test_a_stream_read_by_one_process_reloads_any_pack_though_workers_were_asked(rules_copy):
    """--input - is scored in one process whatever --workers says: its reloads need
    no copy of the folder, and a rule keyed past org_id is fine there."""
    reloader = PackReloader(rules_copy, load_pack(rules_copy), debounce=0)
    runner = EmbeddedRunner(reloader.pack, workers=2, reloader=reloader)
    edit(rules_copy / "governance.yaml", "key: [org_id, counterparty_id]", "key: [counterparty_id]")
    reloader.request()
    runner.run_stream(iter([payment(1, 80_000)]))
    assert reloader.rejected == 0 and reloader.snapshot is None and runner.pack.version != reloader.versions[0]


def test_the_worker_reloads_and_keeps_unchanged_rules_in_its_table(rules_copy):
    from monitor.runners.worker import Message, WorkerCore

    def message(offset, event):
        return Message("riskwatch.events.procurement", 0, offset, orjson.dumps(msgspec.to_builtins(event)))

    table: dict[bytes, bytes] = {}
    core = WorkerCore(load_pack(rules_copy), table)
    core.process([message(1, po(1, 2, 1_200_000))])
    edit(rules_copy / "params.yaml", "no_contract_payment_limit: 50000", "no_contract_payment_limit: 60000")
    assert core.swap_pack(load_pack(rules_copy)) == {"fin_payment_without_contract"}
    out = core.process([message(2, po(2, 9, 900_000))])
    assert [(a.rule_id, sorted(a.event_ids), a.pack_version) for a in out.alerts] == [
        ("proc_split_purchase", ["e1", "e2"], core.pack.version)]
    edit(rules_copy / "procurement.yaml", "within: 30d", "within: 20d")
    assert "proc_split_purchase" in core.swap_pack(load_pack(rules_copy))
    assert not any(b"\x1fwindow\x1fproc_split_purchase\x1f" in k for k in table)


def test_rules_versions_lists_what_scored(tmp_path, small_case, rules_copy):
    events, _ = small_case
    db = f"sqlite:///{tmp_path / 't.db'}"
    assert riskwatch("run", "--input", events, "--alerts-out", tmp_path / "a.jsonl", "--db", db, "--rules", rules_copy).returncode == 0
    edit(rules_copy / "params.yaml", "no_contract_payment_limit: 50000", "no_contract_payment_limit: 100000")
    assert riskwatch("run", "--input", events, "--alerts-out", tmp_path / "a.jsonl", "--db", db, "--rules", rules_copy).returncode == 0
    store = SqlTicketStore(db)
    rows = store.pack_versions()
    assert [r["loads"] for r in rows] == [1, 1] and sum(r["tickets"] for r in rows) == 3
    # the second version alerts on e3 only, with no new evidence: its ticket is left as the first version made it
    assert [r["tickets"] for r in rows] == [3, 0]
    out = riskwatch("rules", "versions", "--db", db)
    assert out.returncode == 0 and all(r["version"] in out.stdout for r in rows)
    assert dt.datetime.now(dt.timezone.utc) - rows[-1]["last_loaded_at"].replace(tzinfo=dt.timezone.utc) < dt.timedelta(minutes=5)
