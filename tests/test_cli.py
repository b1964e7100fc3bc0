"""The command line, run as a user runs it: in a separate process."""

from __future__ import annotations

import csv as csvlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from monitor.core.event import schema_contract
from tests.test_event import GOOD, with_

CONTRACT_FIELDS = {"alert_id", "rule_id", "risk_id", "severity", "domain", "org_id", "event_ids", "first_seen",
                   "last_seen", "count", "score", "title", "message", "legal_basis", "owner"}


def riskwatch(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture()
def events_file(tmp_path) -> Path:
    lines = [
        with_(event_id="c1", type="contract_signed", domain="procurement", amount=300000,
              attributes={"contract_id": "HT1", "legal_review": "pending"}),
        with_(event_id="p1", amount=80000, attributes={"payment_no": "FK1"}),
        b"{not json",
        with_(event_id="p2", amount=-5),
        b"",
        GOOD,
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_run_scores_rejects_and_balances(tmp_path, events_file):
    db = tmp_path / "t.db"
    out = riskwatch("run", "--input", events_file, "--alerts-out", tmp_path / "alerts.jsonl", "--db", f"sqlite:///{db}",
                    "--quiet")
    assert out.returncode == 0, out.stderr
    assert "in 5 = scored 3 + rejected 2; 2 alerts; 2 tickets opened, 0 updated" in out.stdout
    alerts = [orjson.loads(line) for line in (tmp_path / "alerts.jsonl").read_bytes().splitlines()]
    assert sorted(a["rule_id"] for a in alerts) == ["fin_payment_without_contract", "proc_contract_without_legal_review"]
    assert all(CONTRACT_FIELDS <= set(a) for a in alerts)
    rejected = [orjson.loads(line) for line in (tmp_path / "events.rejected.jsonl").read_bytes().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejected] == [(3, "not_json"), (4, "negative_amount")]
    assert rejected[1]["raw"].startswith('{"event_id":"p2"')


def test_running_twice_creates_no_duplicates(tmp_path, events_file):
    db = tmp_path / "t.db"
    args = ["run", "--input", events_file, "--alerts-out", tmp_path / "alerts.jsonl", "--db", f"sqlite:///{db}", "--quiet"]
    first = riskwatch(*args)
    alerts_first = (tmp_path / "alerts.jsonl").read_bytes()
    second = riskwatch(*args)
    assert "2 tickets opened, 0 updated" in first.stdout and "0 tickets opened, 2 updated" in second.stdout
    assert (tmp_path / "alerts.jsonl").read_bytes() == alerts_first
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from tickets").fetchone() == (2,)


def test_rejected_out_can_be_chosen(tmp_path, events_file):
    out = riskwatch("run", "--input", events_file, "--alerts-out", tmp_path / "a.jsonl", "--db", "none",
                    "--rejected-out", tmp_path / "bad.jsonl", "--quiet")
    assert out.returncode == 0 and len((tmp_path / "bad.jsonl").read_bytes().splitlines()) == 2
    assert not (tmp_path / "events.rejected.jsonl").exists()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_ticket_database_that_cannot_be_opened_is_a_clear_error(tmp_path, events_file, workers):
    out = riskwatch("run", "--input", events_file, "--alerts-out", tmp_path / "a.jsonl", "--db", "nosuchdb://x",
                    "--workers", workers, "--quiet")
    assert out.returncode == 2
    assert "--db: cannot open the ticket database" in out.stderr and "nosuchdb" in out.stderr
    assert "Traceback" not in out.stderr


def test_broken_rules_stop_start_up_with_exit_2_and_no_traceback(tmp_path, events_file, rules_copy):
    path = rules_copy / "finance.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("within: 7d", "within: seven days"), encoding="utf-8")
    out = riskwatch("run", "--input", events_file, "--alerts-out", tmp_path / "a.jsonl", "--rules", rules_copy)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "finance.yaml:" in out.stderr and "fin_duplicate_amount: bad duration 'seven days'" in out.stderr
    assert not (tmp_path / "a.jsonl").exists()


def test_rules_lint_ok_and_broken(rules_copy):
    ok = riskwatch("rules", "lint", rules_copy)
    assert ok.returncode == 0 and "ok: 24 rules, 7 detectors, 6 review controls, 37 risks, 2 lists" in ok.stdout
    assert "coverage gap: risk PROC-03" in ok.stdout
    (rules_copy / "governance.yaml").write_text("- rule: gov_x\n  title: x\n  risk: DEC-01\n  when: amount >\n  message: m\n",
                                                encoding="utf-8")
    bad = riskwatch("rules", "lint", rules_copy)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "governance.yaml:4:17 gov_x: syntax error: the expression ends too soon" in bad.stderr


def test_rules_test_reports_each_rule_and_fails_on_a_broken_case(rules_copy):
    ok = riskwatch("rules", "test", rules_copy)
    assert ok.returncode == 0 and "PASS proc_split_purchase: 5/5 cases" in ok.stdout and "PASS RC-CON-01: 4/4 cases" in ok.stdout and "113 passed, 0 failed" in ok.stdout
    path = rules_copy / "investment.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("amount >= collective_decision_limit", "amount > collective_decision_limit"),
                    encoding="utf-8")
    bad = riskwatch("rules", "test", rules_copy)
    assert bad.returncode == 1
    assert "FAIL inv_without_collective_decision: 2/3 cases" in bad.stdout
    assert "✗ 10,000,000 without a decision fires: expected a hit, got none" in bad.stdout


def test_generate_writes_stream_and_truth(tmp_path):
    out = riskwatch("generate", "--out", tmp_path / "s.jsonl", "--events", 4000, "--seed", 3)
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "s.jsonl").read_bytes().splitlines()
    truth = [orjson.loads(x) for x in (tmp_path / "s.truth.jsonl").read_bytes().splitlines()]
    assert 4000 <= len(lines) <= 4040 and {t["kind"] for t in truth} == {"violation", "near_miss", "anomaly"}
    assert {t["scenario"] for t in truth if t["kind"] == "violation"} == set(range(1, 39))  # 17-24 review controls, 25-31 parties and trade, 32-38 issue 31


def test_demo_runs_end_to_end(tmp_path):
    out = riskwatch("demo", "--events", 8000, "--out", tmp_path / "demo", "--metrics-port", 0, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "metrics: http://127.0.0.1:" in out.stdout and "in = scored + rejected" in out.stdout
    assert "Planted cases (ground truth)" in out.stdout
    with sqlite3.connect(tmp_path / "demo" / "tickets.db") as conn:
        assert conn.execute("select count(*) from tickets").fetchone()[0] > 30
    assert (tmp_path / "demo" / "alerts.jsonl").exists() and (tmp_path / "demo" / "truth.jsonl").exists()


def test_schema_command_prints_the_schema_file():
    out = riskwatch("schema")
    docs = (Path(__file__).parent.parent / "docs" / "event.schema.json").read_text(encoding="utf-8")
    assert schema_contract(orjson.loads(out.stdout)) == schema_contract(orjson.loads(docs))


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A generated stream with an is_anomaly column from its ground truth."""
    from monitor.analyst.generator import generate

    tmp = tmp_path_factory.mktemp("labelled")
    stream = generate(events=30_000, seed=5)
    anomalous = {e for a in stream.truth.anomalies() for e in a.event_ids}
    path = tmp / "labelled.jsonl"
    with open(path, "wb") as f:
        for raw in stream.lines:
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                f.write(raw)
                continue
            if isinstance(record, dict):
                record["is_anomaly"] = record.get("event_id") in anomalous
            f.write(orjson.dumps(record) + b"\n")
    return path, len(anomalous)


def test_detectors_evaluate_prints_metrics_per_detector(labelled):
    path, positives = labelled
    out = riskwatch("detectors", "evaluate", "--input", path, "--label", "is_anomaly")
    assert out.returncode == 0, out.stderr
    assert f"{positives:,} labelled anomalous" in out.stdout
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in out.stdout.splitlines() if line.startswith("│ det_")}
    assert set(rows) == {"det_amount_outlier", "det_org_amount_outlier", "det_payment_pattern", "det_benford_payments",
                         "det_benford_journal", "det_counterparty_velocity", "det_payment_iforest"}
    # columns: model, in scope, positives, ROC AUC, PR AUC, k, precision@k, ≥ threshold
    velocity = rows["det_counterparty_velocity"]
    assert float(velocity[3]) > 0.7 and 0 < float(velocity[6]) <= 1
    only = riskwatch("detectors", "evaluate", "--input", path, "--label", "is_anomaly", "--detector", "det_amount_outlier")
    assert only.returncode == 0 and "det_amount_outlier" in only.stdout and "det_benford_journal" not in only.stdout
    missing = riskwatch("detectors", "evaluate", "--input", path, "--label", "no_such_column")
    assert missing.returncode == 1 and "no line has a true 'no_such_column'" in missing.stderr


def test_detectors_evaluate_a_feature_csv(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    n = 3000
    x, y = rng.normal(size=n), rng.normal(size=n)
    label = np.zeros(n, dtype=int)
    odd = rng.choice(np.arange(600, n), 30, replace=False)
    x[odd] += 6
    label[odd] = 1
    csv = tmp_path / "features.csv"
    csv.write_text("x,y,fraud\n" + "".join(f"{a:.4f},{b:.4f},{c}\n" for a, b, c in zip(x, y, label)), encoding="utf-8")
    out = riskwatch("detectors", "evaluate", "--input", csv, "--label", "fraud")
    assert out.returncode == 0, out.stderr
    forest = next(line for line in out.stdout.splitlines() if line.startswith("│ isolation_forest"))
    assert float(forest.split("│")[5]) > 0.95  # ROC AUC on clear outliers
    assert "isolation_forest: fitted on the first 600 rows (lines 2-601), which are left out" in out.stdout
    scores = tmp_path / "scores.csv"
    out = riskwatch("detectors", "evaluate", "--input", csv, "--label", "fraud", "--json", "--scores-out", scores)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    by_model = {d["detector"]: d for d in figures["detectors"]}
    assert by_model["isolation_forest"]["events"] == n - 600 and by_model["half_space_trees"]["events"] == n
    assert by_model["isolation_forest"]["roc_auc"] > 0.95 and f"{2 * n - 600:,} scores written" in figures["notes"][-1]
    rows = list(csvlib.DictReader(scores.open(encoding="utf-8")))
    assert len(rows) == 2 * n - 600 and rows[0] == {"row": "2", "detector": "half_space_trees", "score": rows[0]["score"],
                                                    "label": str(label[0])}
    forest_rows = [r for r in rows if r["detector"] == "isolation_forest"]
    assert forest_rows[0]["row"] == "602" and [int(r["label"]) for r in forest_rows] == label[600:].tolist()


def test_detectors_train_writes_a_model_lint_accepts(rules_copy, labelled, tmp_path):
    path, _ = labelled
    (rules_copy / "models" / "payment_iforest.npz").unlink()
    assert "not found" in riskwatch("rules", "lint", rules_copy).stdout
    out = riskwatch("detectors", "train", "--history", path, "--rules", rules_copy, "--trees", 30)
    assert out.returncode == 0, out.stderr
    assert "trained an IsolationForest (30 trees)" in out.stdout and (rules_copy / "models" / "payment_iforest.npz").exists()
    lint_out = riskwatch("rules", "lint", rules_copy)
    assert lint_out.returncode == 0 and "payment_iforest" not in lint_out.stdout
    listed = riskwatch("detectors", "list", "--rules", rules_copy)
    assert listed.returncode == 0 and "(trained)" in listed.stdout.replace("\n", " ") or "trained" in listed.stdout
