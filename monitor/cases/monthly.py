"""The monthly compliance report (the seed asks for one by the 20th of each month).

Pure over the ticket rows: ``monthly(rows, month, now, org=None)`` gives the
month's figures — tickets whose finding (``first_seen``, business time) falls
in the month, by org, risk and severity; how many are disposed of (resolved or
closed) and the median time from opening to resolution; SLA breaches
(resolved after the deadline, or still open past it); the top risks; the
typical cases. ``riskwatch report`` writes them as XLSX and HTML.

>>> import datetime as dt
>>> t = lambda **kw: {"first_seen": "2026-03-05T02:00:00Z", "org_id": "SUB01", "risk_id": "FIN-01", "severity": "high",
...     "status": "open", "opened_at": dt.datetime(2026, 3, 6, tzinfo=dt.timezone.utc), "resolved_at": None,
...     "due_at": dt.datetime(2026, 3, 20, tzinfo=dt.timezone.utc), "outcome": None, "typical_case": False, **kw}
>>> rows = [t(), t(status="resolved", resolved_at=dt.datetime(2026, 3, 8, tzinfo=dt.timezone.utc)),
...         t(first_seen="2026-04-01T00:00:00Z")]
>>> m = monthly(rows, "2026-03", dt.datetime(2026, 3, 31, tzinfo=dt.timezone.utc))
>>> m.summary["tickets"], m.summary["disposed"], m.summary["median_days_to_dispose"], m.summary["sla_breaches"]
(2, 1, 2.0, 1)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["Monthly", "monthly"]


@dataclass
class Monthly:
    month: str
    org: str | None
    summary: dict[str, Any]
    by_org: pd.DataFrame  # org x severity counts
    by_risk: pd.DataFrame  # risk, tickets, disposed, breaches (top first)
    cases: pd.DataFrame
    tickets: pd.DataFrame


def _utc(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True, format="mixed")


def monthly(rows: list[dict[str, Any]], month: str, now: dt.datetime, org: str | None = None) -> Monthly:
    frame = pd.DataFrame(rows)
    columns = ["first_seen", "org_id", "risk_id", "severity", "status", "opened_at", "resolved_at", "due_at", "outcome",
               "typical_case"]
    for c in columns:
        if c not in frame:
            frame[c] = None
    if len(frame):
        frame["first_seen"] = _utc(frame["first_seen"])
        for c in ("opened_at", "resolved_at", "due_at"):
            frame[c] = _utc(frame[c])
        frame = frame[frame["first_seen"].dt.strftime("%Y-%m") == month]
    if org is not None:
        frame = frame[frame["org_id"] == org]
    frame = frame.copy()
    disposed = frame["status"].isin(["resolved", "closed"])
    now_ts = pd.Timestamp(now)
    breached = (disposed & (frame["resolved_at"] > frame["due_at"])) | (~disposed & (frame["due_at"] < now_ts))
    frame["disposed"], frame["breached"] = disposed, breached
    days = (frame.loc[disposed, "resolved_at"] - frame.loc[disposed, "opened_at"]).dt.total_seconds() / 86400
    summary = {
        "tickets": int(len(frame)), "disposed": int(disposed.sum()),
        "disposal_rate": float(disposed.mean()) if len(frame) else float("nan"),
        "median_days_to_dispose": round(float(days.median()), 2) if len(days) else float("nan"),
        "sla_breaches": int(breached.sum()),
        "confirmed_violations": int((frame["outcome"] == "confirmed_violation").sum()),
        "false_positives": int((frame["outcome"] == "false_positive").sum()),
    }
    by_org = (frame.pivot_table(index="org_id", columns="severity", values="status", aggfunc="count", fill_value=0)
              if len(frame) else pd.DataFrame())
    by_risk = (frame.groupby("risk_id").agg(tickets=("status", "size"), disposed=("disposed", "sum"),
                                            breaches=("breached", "sum")).sort_values("tickets", ascending=False)
               if len(frame) else pd.DataFrame(columns=["tickets", "disposed", "breaches"]))
    cases = frame[frame["typical_case"].fillna(False).astype(bool)]
    return Monthly(month, org, summary, by_org, by_risk, cases, frame)
