"""Backtest: what a rules folder would have flagged over past events, and how well.

Pure over its inputs: the alerts a run produced, the labels, and a brief of
the labelled events (for examples). ``riskwatch backtest`` does the reading,
the scoring and the report.

Per rule (and detector): hits (events in its alerts), distinct keys (its
alerts), alerts per day and per week of business time. With labels:

- labels naming rules (``event_id -> rule id``, as the generator's ground
  truth gives): an alert of rule r is a true positive when it holds an event
  labelled r; recall of r is the share of events labelled r inside r's alerts.
- yes/no labels: an alert is a true positive when it holds any violation
  event; recall of a rule is the share of all violation events it covers.

Overall: alerts holding any labelled event over all alerts (precision), and
labelled events inside any alert over all labelled events (recall).

>>> import pandas as pd
>>> alerts = pd.DataFrame({"rule_id": ["r", "r", "s"], "dedup_key": ["r|1", "r|2", "s|1"],
...     "first_seen": pd.to_datetime(["2026-06-01", "2026-06-02", "2026-06-09"], utc=True),
...     "event_ids": [["a", "b"], ["c"], ["d"]], "message": ["m1", "m2", "m3"]})
>>> result = backtest(alerts, {"a": "r", "d": "r", "e": "r"})
>>> row = result.per_rule.set_index("rule_id").loc["r"]
>>> int(row.alerts), int(row.hits), round(float(row.precision), 2), round(float(row.recall), 2)
(2, 3, 0.5, 0.33)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["BacktestResult", "alerts_frame", "backtest"]

POSITIVE = {"true", "yes", "1", "y", "violation", "anomaly"}
NEGATIVE = {"false", "no", "0", "n", "", "none", "near_miss", "clean"}


@dataclass
class BacktestResult:
    per_rule: pd.DataFrame  # one row per rule or detector that is in the pack
    per_week: pd.DataFrame  # alerts opened per rule per week (wide)
    overall: dict[str, Any]
    false_alarms: dict[str, list[str]] = field(default_factory=dict)  # rule -> messages of alerts with no labelled event
    misses: dict[str, list[str]] = field(default_factory=dict)  # rule (or "*") -> labelled event ids no alert holds
    labelled: bool = False


def alerts_frame(alerts, kinds: dict[str, str] | None = None) -> pd.DataFrame:
    """The alerts of a run as a frame: rule_id, dedup_key, first_seen, event_ids, status, kind, message, score."""
    rows = [{"rule_id": a.rule_id, "dedup_key": a.dedup_key, "first_seen": a.first_seen, "event_ids": list(a.event_ids),
             "status": a.status, "message": a.message, "score": a.score,
             "kind": (kinds or {}).get(a.rule_id, "detector" if a.rule_id.startswith("det_") else "rule")}
            for a in alerts]
    frame = pd.DataFrame(rows, columns=["rule_id", "dedup_key", "first_seen", "event_ids", "status", "message", "score", "kind"])
    frame["first_seen"] = pd.to_datetime(frame["first_seen"], utc=True, format="ISO8601")
    return frame


def normalise_labels(raw: dict[str, Any], rule_ids: set[str]) -> dict[str, str | bool]:
    """Each label as a rule id (when it names one) or a yes/no."""
    out: dict[str, str | bool] = {}
    for event_id, value in raw.items():
        text = str(value).strip()
        if text in rule_ids:
            out[event_id] = text
        elif isinstance(value, bool):
            out[event_id] = value
        elif text.lower() in POSITIVE:
            out[event_id] = True
        elif text.lower() in NEGATIVE:
            out[event_id] = False
        else:
            out[event_id] = text  # a rule the pack does not have: counted as a violation nobody covers
    return out


def backtest(alerts: pd.DataFrame, labels: dict[str, Any] | None = None, rule_ids: list[str] | None = None,
             examples: int = 5) -> BacktestResult:
    """Figures per rule and overall; see the module docstring."""
    rule_ids = list(rule_ids or sorted(set(alerts["rule_id"])))
    exploded = alerts[["rule_id", "event_ids"]].explode("event_ids")
    hits = exploded.groupby("rule_id")["event_ids"].nunique()
    count = alerts.groupby("rule_id").size()
    span_days = max(1.0, (alerts["first_seen"].max() - alerts["first_seen"].min()).total_seconds() / 86400) if len(alerts) else 1.0
    weeks = alerts.assign(week=alerts["first_seen"].dt.tz_convert(None).dt.to_period("W-SUN").dt.start_time)
    per_week = weeks.groupby(["week", "rule_id"]).size().unstack(fill_value=0) if len(alerts) else pd.DataFrame()
    per_day = alerts.assign(day=alerts["first_seen"].dt.floor("D")).groupby(["rule_id", "day"]).size()
    per_rule = pd.DataFrame({"rule_id": rule_ids})
    per_rule["alerts"] = per_rule["rule_id"].map(count).fillna(0).astype(int)
    per_rule["hits"] = per_rule["rule_id"].map(hits).fillna(0).astype(int)
    per_rule["alerts_per_day"] = per_rule["alerts"] / span_days
    per_rule["max_alerts_in_a_day"] = per_rule["rule_id"].map(per_day.groupby(level=0).max()).fillna(0).astype(int)
    per_rule["alerts_per_week"] = per_rule["alerts"] / (span_days / 7)
    result = BacktestResult(per_rule, per_week, {"alerts": len(alerts), "events_flagged": int(exploded["event_ids"].nunique()),
                                                 "days": span_days})
    if labels is None:
        return result

    labels = normalise_labels(labels, set(rule_ids))
    positives = {e for e, v in labels.items() if v is not False}
    named = any(isinstance(v, str) for v in labels.values())
    by_rule_label: dict[str, set[str]] = {}
    for e, v in labels.items():
        if isinstance(v, str):
            by_rule_label.setdefault(v, set()).add(e)
    precision, recall, tp_alerts = {}, {}, {}
    for rule in rule_ids:
        own = alerts[alerts["rule_id"] == rule]
        wanted = by_rule_label.get(rule, set()) if named else positives
        good = own["event_ids"].map(lambda ids: bool(set(ids) & wanted))
        tp_alerts[rule] = int(good.sum())
        precision[rule] = good.mean() if len(own) else float("nan")
        covered = set(exploded.loc[exploded["rule_id"] == rule, "event_ids"])
        recall[rule] = len(wanted & covered) / len(wanted) if wanted else float("nan")
        result.false_alarms[rule] = own.loc[~good, "message"].head(examples).tolist()
        if named and wanted - covered:
            result.misses[rule] = sorted(wanted - covered)[:examples]
    per_rule["true_alerts"] = per_rule["rule_id"].map(tp_alerts).astype(int)
    per_rule["precision"] = per_rule["rule_id"].map(precision)
    per_rule["recall"] = per_rule["rule_id"].map(recall)
    per_rule["f1"] = 2 * per_rule["precision"] * per_rule["recall"] / (per_rule["precision"] + per_rule["recall"])
    all_good = alerts["event_ids"].map(lambda ids: bool(set(ids) & positives))
    covered_all = set(exploded["event_ids"]) & positives
    p = float(all_good.mean()) if len(alerts) else float("nan")
    r = len(covered_all) / len(positives) if positives else float("nan")
    result.overall.update(precision=p, recall=r, f1=2 * p * r / (p + r) if p + r else float("nan"),
                          labelled_events=len(positives), labels_name_rules=named)
    unnamed_missed = sorted(positives - covered_all)
    if unnamed_missed:
        result.misses.setdefault("*", unnamed_missed[:examples])
    result.labelled = True
    return result
