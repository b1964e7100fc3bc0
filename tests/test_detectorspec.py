"""rules/detectors.yaml: validated like a rule file, errors at file:line:col."""

from __future__ import annotations

import pytest

from monitor.packs.rulefiles import lint
from tests.test_rulefiles import position_of


def errors_after(rules_copy, old: str, new: str) -> list[str]:
    path = rules_copy / "detectors.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    pack, problems = lint(rules_copy)
    assert pack is None
    return [str(p).replace(str(rules_copy) + "/", "") for p in problems if p.level == "error"]


@pytest.mark.parametrize("old, new, needle, message", [
    ("settings: {window: 30, warmup: 8, min_spread: 0.05}", "settings: {window: 30, warmpu: 8, min_spread: 0.05}", "warmpu",
     "det_amount_outlier: model 'robust_amount' has no setting 'warmpu' (did you mean 'warmup'?)"),
    ("settings: {window: 30, warmup: 8, min_spread: 0.05}", "settings: {window: 30, warmup: -1, min_spread: 0.05}", "warmup: -1",
     "det_amount_outlier: setting 'warmup' must be a whole number >= 0"),
    ("threshold: 0.75", "threshold: 7.5", "7.5", "det_amount_outlier: threshold is a score in (0, 1]"),
    ("by: [org_id, counterparty_id, attributes.contract_id]\n", "by: [counterparty_id, attributes.contract_id]\n",
     "[counterparty_id, attributes.contract_id]", "det_amount_outlier: by must include org_id: each org learns its own normal"),
    ("threshold: 0.75", "rarer_than: 1 in many", "1 in many",
     "det_amount_outlier: rarer_than is a rate like \"1 in 2,000\" (got '1 in many')"),
    ("threshold: 0.75", "threshold: 0.75\n    rarer_than: 1 in 500", "det_amount_outlier",
     "det_amount_outlier: give the alert rule: threshold (a score) or rarer_than (a rate"),
    ("threshold: 0.5          # 0.5 = min_payments", "rarer_than: 1 in 500   #", "1 in 500",
     "det_counterparty_velocity: model 'velocity' alerts by a threshold"),
    ("threshold: 0.75", "threshold: 0.75\n    daily_cap: 3", "daily_cap: 3",
     "det_amount_outlier: daily_cap and warmup go with rarer_than"),
    ("its usual {usual_amount:,.0f}", "its usual {usual_amout:,.0f}", "its usual {usual_amout",
     "det_amount_outlier: message: unknown field 'usual_amout' (did you mean 'usual_amount'?)"),
])
def test_mistakes_are_reported_where_they_are(rules_copy, old, new, needle, message):
    errors = errors_after(rules_copy, old, new)
    line, _ = position_of(rules_copy / "detectors.yaml", needle)
    assert any(e.startswith(f"detectors.yaml:{line}:") and message in e for e in errors), errors


def test_a_bad_condition_and_an_unknown_model(rules_copy):
    errors = errors_after(rules_copy, 'when: type == "payment" and present(counterparty_id)\n    # Each contract',
                          'when: type == "payment" and amout > 5\n    # Each contract')
    assert any("det_amount_outlier: unknown field 'amout' (did you mean 'amount'?)" in e for e in errors), errors
    errors = errors_after(rules_copy, "model: velocity", "model: velocty")
    assert any("detectors.yaml:" in e and "velocty" in e for e in errors), errors


def test_a_missing_model_is_a_warning_a_broken_one_an_error(rules_copy):
    model = rules_copy / "models" / "payment_iforest.npz"
    model.unlink()
    pack, problems = lint(rules_copy)
    assert pack is not None and pack.version
    assert [p.message for p in problems if p.rule == "det_payment_iforest"] == [
        "model file models/payment_iforest.npz (beside detectors.yaml) not found: this detector scores nothing "
        "until one is trained (riskwatch detectors train)"]
    model.write_bytes(b"not a model")
    pack, problems = lint(rules_copy)
    assert pack is None
    assert any(p.rule == "det_payment_iforest" and p.level == "error" and "not a model file" in p.message for p in problems)


def test_the_model_is_part_of_the_pack_version(rules_copy, default_pack):
    pack, _ = lint(rules_copy)
    assert pack.version == default_pack.version
    (rules_copy / "models" / "payment_iforest.npz").unlink()
    assert lint(rules_copy)[0].version != default_pack.version


def test_detector_ids_do_not_clash_with_rules(rules_copy):
    errors = errors_after(rules_copy, "detector: det_amount_outlier", "detector: fin_duplicate_invoice")
    assert any("must be snake_case starting with det_" in e for e in errors)
