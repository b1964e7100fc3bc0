"""Reading and checking rules folders: every error names file, line, column and rule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from monitor.packs.rulefiles import PackError, lint, load_document, load_list, load_pack

TODAY = dt.date(2026, 11, 27)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def errors_of(rules_dir: Path) -> list[str]:
    pack, problems = lint(rules_dir, TODAY)
    assert pack is None
    return [str(p).replace(str(rules_dir) + "/", "") for p in problems if p.level == "error"]


def position_of(path: Path, needle: str) -> tuple[int, int]:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return n, line.index(needle) + 1
    raise AssertionError(needle)


def test_default_pack_lints_without_errors(default_pack):
    assert len(default_pack.rules) == 24
    assert default_pack.version and len(default_pack.version) == 12


def test_typo_in_a_window_key_names_file_line_column_and_rule(rules_copy):
    path = rules_copy / "procurement.yaml"
    edit(path, "by: [org_id, counterparty_id, attributes.category]", "by: [org_id, counterpary_id, attributes.category]")
    line, col = position_of(path, "counterpary_id")
    assert errors_of(rules_copy) == [
        f"procurement.yaml:{line}:{col} proc_split_purchase: unknown field 'counterpary_id' (did you mean 'counterparty_id'?)"]


def test_typo_inside_an_expression_points_at_the_word(rules_copy):
    path = rules_copy / "finance.yaml"
    edit(path, "amount >= no_contract_payment_limit and", "amount >= no_contract_payment_limt and")
    line, col = position_of(path, "no_contract_payment_limt")
    assert errors_of(rules_copy) == [
        f"finance.yaml:{line}:{col} fin_payment_without_contract: unknown field 'no_contract_payment_limt' "
        "(did you mean 'no_contract_payment_limit'?)"]


def test_unknown_rule_key_points_at_the_key(rules_copy):
    path = rules_copy / "governance.yaml"
    edit(path, "  risk: DEC-01\n", "  risk: DEC-01\n  severty: high\n")
    line, col = position_of(path, "severty")
    assert errors_of(rules_copy) == [
        f"governance.yaml:{line}:{col} gov_decision_without_legal_review: unknown field 'severty' (did you mean 'severity'?)"]


@pytest.mark.parametrize("old, new, message", [
    ("  risk: DEC-01\n", "  risk: DEC-99\n", "risk 'DEC-99' is not in risk_list.yaml"),
    ("  risk: DEC-01\n", "", "missing required field 'risk'"),
    ("- rule: gov_decision_without_legal_review", "- rule: decision_check", "rule id 'decision_check' must be snake_case"),
    ('  when: type == "decision" and attributes.legal_review != "passed"', '  when: type == "decision" and', "syntax error"),
    ("    - name: a decision with review pending fires\n", "    - name: a decision with review pending fires\n      expect_: 1\n",
     "unknown field 'expect_'"),
    ("  key: [org_id, attributes.decision_id]", "  key: org_id", "key: Expected `array | null`, got `str`"),
    ("message: \"{org_id}: {attributes.kind}", "message: \"{org_id!r}: {attributes.kind}", "message: '!r' conversions are not allowed"),
    ("message: \"{org_id}: {attributes.kind}", "message: \"{org_id.__class__}: {attributes.kind}", "message: unknown field 'org_id.__class__'"),
])
def test_rule_errors(rules_copy, old, new, message):
    edit(rules_copy / "governance.yaml", old, new)
    errors = errors_of(rules_copy)
    assert len(errors) == 1, errors
    assert message in errors[0] and errors[0].startswith("governance.yaml:")


def test_duplicate_rule_ids_and_yaml_keys(rules_copy):
    text = (rules_copy / "governance.yaml").read_text(encoding="utf-8")
    (rules_copy / "governance_copy.yaml").write_text(text, encoding="utf-8")
    edit(rules_copy / "investment.yaml", "  risk: INV-01\n", "  risk: INV-01\n  risk: INV-02\n")
    errors = errors_of(rules_copy)
    assert any("governance_copy.yaml" in e and "duplicate rule id (first at " in e for e in errors)
    assert any(e.startswith("investment.yaml:") and "duplicate key 'risk'" in e for e in errors)


def test_yaml_syntax_error_is_located(rules_copy):
    edit(rules_copy / "investment.yaml", "  title: 投资支出超概算", "  title: [投资支出超概算")
    errors = errors_of(rules_copy)
    assert len(errors) == 1 and errors[0].startswith("investment.yaml:") and "YAML syntax error" in errors[0]


def test_risk_and_duty_lists_are_cross_checked(rules_copy):
    edit(rules_copy / "risk_list.yaml", "    owner: investment_compliance_officer\n    sla: {acknowledge: 1d, dispose: 7d}",
         "    owner: investment_compliance_offcer\n    sla: {acknowledge: 1d, dispose: 7 days}")
    errors = errors_of(rules_copy)
    assert any("INV-01: owner post 'investment_compliance_offcer' is not in duties.yaml" in e for e in errors)
    assert any("INV-01: bad duration '7 days'" in e for e in errors)
    assert any(e.startswith("duties.yaml:") and "lists INV-01, but risk_list.yaml names" in e for e in errors)


def test_params_are_checked(rules_copy):
    edit(rules_copy / "params.yaml", "    approver_limit: {department: 300000}", "    approver_limt: 300000\n    manual_entry_limit: {x: 1}")
    errors = errors_of(rules_copy)
    assert any("org SUB07: unknown parameter 'approver_limt'" in e for e in errors)
    assert any("org SUB07: 'manual_entry_limit' must be a number" in e for e in errors)


def test_lists_are_checked_with_line_numbers(rules_copy):
    (rules_copy / "lists" / "debarred_suppliers.csv").write_text(
        "counterparty_id,counterparty_name,listed_on,expires_on\nS1,a,2026-01-01,\n,,,\nS3,c,2026-13-01,\n,named only,,\n",
        encoding="utf-8")
    errors = errors_of(rules_copy)
    assert any(e.startswith("lists/debarred_suppliers.csv:3:1") and "needs a counterparty_id or a counterparty_name" in e
               for e in errors)
    assert any(e.startswith("lists/debarred_suppliers.csv:4:") and "bad date" in e for e in errors)
    assert not any(e.startswith("lists/debarred_suppliers.csv:5:") for e in errors)  # a name alone is an entry
    lst, problems = load_list("counterparty_id,counterparty_name,note\nS1,Acme\nS2,Beta,b,extra\n,Gamma,\n", "lists/y.csv", "y")
    assert not problems and list(lst.rows) == [  # a short row padded, a long row's extra value dropped
        {"counterparty_id": "S1", "counterparty_name": "Acme", "note": ""},
        {"counterparty_id": "S2", "counterparty_name": "Beta", "note": "b"},
        {"counterparty_id": "", "counterparty_name": "Gamma", "note": ""}]
    assert lst.names() == ["Acme", "Beta", "Gamma"] and lst.column("listed_on") == ["", "", ""]
    assert sorted(lst.entries) == ["S1", "S2"]
    lst, problems = load_list("id\nX\n", "lists/x.csv", "x")
    assert lst is None and str(problems[0]) == "lists/x.csv:1:1 list 'x' needs a 'counterparty_id' column (has: id)"


def test_expired_exception_is_a_warning_and_stops_applying(rules_copy, tmp_path):
    pack, problems = lint(rules_copy, dt.date(2027, 7, 1))
    assert pack is not None
    warnings = [str(p).replace(str(rules_copy) + "/", "") for p in problems if "expired" in p.message]
    line, col = position_of(rules_copy / "procurement.yaml", "2027-06-30")
    assert warnings == [f"procurement.yaml:{line}:{col} warning: proc_split_purchase: "
                        "exception 'framework_call_offs' expired on 2027-06-30 and no longer applies"]
    assert pack.rule("proc_split_purchase").exceptions == []
    assert len(load_pack(rules_copy, TODAY).rule("proc_split_purchase").exceptions) == 1


def test_coverage_gaps_and_unused_lists_are_warnings(rules_copy):
    (rules_copy / "lists" / "watchlist.csv").write_text("counterparty_id\nX\n", encoding="utf-8")
    pack, problems = lint(rules_copy, TODAY)
    text = [str(p) for p in problems]
    assert pack is not None
    assert sum("coverage gap" in t for t in text) == 9
    assert any("coverage gap: risk PROC-03 (单一来源采购理由不充分) has no live rule or detector" in t for t in text)
    assert any("list 'watchlist' is used by no rule" in t for t in text)


def test_load_pack_raises_with_every_error(rules_copy):
    edit(rules_copy / "finance.yaml", "within: 7d", "within: 7 days")
    edit(rules_copy / "governance.yaml", "  risk: DEC-01\n", "  risk: DEC-99\n")
    with pytest.raises(PackError) as info:
        load_pack(rules_copy, TODAY)
    assert len(info.value.problems) == 2


def test_missing_files_are_reported(tmp_path):
    (tmp_path / "r").mkdir()
    pack, problems = lint(tmp_path / "r", TODAY)
    assert pack is None
    assert sorted(p.message for p in problems) == ["duties.yaml is missing", "risk_list.yaml is missing"]


def test_document_positions_cover_keys_and_values():
    doc, problems = load_document("a:\n  - {b: 1, c: 'x'}\n  - d: [1, 2]\n", "f.yaml")
    assert problems == []
    assert doc.positions[("a", 0, "c")] == (2, 15)
    assert doc.where(("a", 0, "nope")) == doc.positions[("a", 0)]
    assert doc.key_positions[("a", 1, "d")] == (3, 5)
    assert doc.positions[("a", 1, "d", 1)] == (3, 12)


def test_pack_version_is_a_content_hash_independent_of_location(rules_copy, default_pack):
    assert load_pack(rules_copy, TODAY).version == default_pack.version
    edit(rules_copy / "params.yaml", "no_contract_payment_limit: 50000", "no_contract_payment_limit: 60000")
    assert load_pack(rules_copy, TODAY).version != default_pack.version



@pytest.mark.parametrize("old, new, at, message", [
    ("  - id: SUB02\n", "  - id: SUB01\n", ("id: SUB01", 2), "duplicate org id 'SUB01'"),
    ("    parent: JCGROUP\n  - id: SUB03", "    parent: JCGRUOP\n  - id: SUB03", ("JCGRUOP", 1),
     "SUB02: parent 'JCGRUOP' is not in orgs.yaml"),
    ("    name: 江城控股集团有限公司\n", "    name: 江城控股集团有限公司\n    parent: SUB01\n", ("SUB01", 1),
     "JCGROUP: its parents go round in a cycle"),
], ids=["duplicate", "unknown-parent", "cycle"])
def test_org_directory_errors_name_file_line_and_column(rules_copy, old, new, at, message):
    path = rules_copy / "orgs.yaml"
    edit(path, old, new)
    needle, nth = at
    lines = [(n, ln.index(needle) + 1) for n, ln in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if needle in ln]
    line, col = lines[nth - 1]
    col += len("id: ") if needle.startswith("id: ") else 0
    found = errors_of(rules_copy)
    assert found[0] == f"orgs.yaml:{line}:{col} {message}"
    # a cycle is said of each org on it (JCGROUP <-> SUB01), not of those below
    assert found[1:] == (["orgs.yaml:18:13 SUB01: its parents go round in a cycle"] if "cycle" in message else [])


def test_an_unknown_key_in_the_org_directory_is_an_error(rules_copy):
    edit(rules_copy / "orgs.yaml", "    name_en: Jiangcheng Water Group\n", "    name_english: Jiangcheng Water Group\n")
    (error,) = errors_of(rules_copy)
    line, col = position_of(rules_copy / "orgs.yaml", "name_english")
    assert error.startswith(f"orgs.yaml:{line}:") and "name_english" in error
