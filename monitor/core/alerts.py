"""Alerts: findings merged per (rule, key) into the contract-3 alert. Pure.

The same finding seen again (same rule and key) updates its alert: the events
are united, ``count`` grows, ``last_seen`` moves on. The alert id is a hash
of the rule and key, so scoring the same input twice gives the same ids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from functools import lru_cache
from typing import MutableMapping

import msgspec

from monitor.core.rules import RulePack
from monitor.core.findings import Finding

__all__ = ["Alert", "AlertBook", "dedup_key"]


class Alert(msgspec.Struct, kw_only=True):
    """One alert line (contract 3)."""

    alert_id: str
    dedup_key: str
    rule_id: str
    risk_id: str
    severity: str
    domain: str
    org_id: str | None
    event_ids: list[str]
    first_seen: str
    last_seen: str
    count: int
    score: float
    title: str
    message: str
    legal_basis: list[str]
    owner: str
    owner_department: str | None = None
    risk_title: str = ""
    status: str = "live"  # the rule's status: shadow alerts open no tickets
    pack_version: str = ""


def dedup_key(rule_id: str, key: tuple) -> str:
    """The identity of a finding: ``rule_id|k1|k2``.

    >>> dedup_key("fin_duplicate_invoice", ("ORG01", "S9", "INV-7"))
    'fin_duplicate_invoice|ORG01|S9|INV-7'
    """
    parts = []
    for k in key:
        if isinstance(k, float) and k.is_integer():
            k = int(k)
        parts.append(str(k))
    return "|".join([rule_id, *parts])


@lru_cache(maxsize=1 << 16)  # an event's finding is first and last seen at its own time
def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


class AlertBook:
    """Alerts by dedup key; ``merge`` returns the alerts a batch changed.

    ``alerts`` is any mutable mapping: a dict in the embedded runner, a view
    over a faust table in the Kafka worker (so a restarted worker goes on
    growing the same alerts).
    """

    def __init__(self, pack: RulePack, alerts: MutableMapping[str, Alert] | None = None):
        self.pack = pack
        self.rules = {r.id: r for r in [*pack.rules, *pack.detectors, *pack.controls]}  # all alert alike
        self.alerts: MutableMapping[str, Alert] = {} if alerts is None else alerts

    def merge(self, findings: list[Finding]) -> list[Alert]:
        """Fold findings in; returns the alerts they created or changed."""
        new, updated = self.merge_split(findings)
        return new + updated

    def merge_split(self, findings: list[Finding]) -> tuple[list[Alert], list[Alert]]:
        """Fold findings in; returns (alerts created, existing alerts changed)."""
        changed: dict[str, Alert] = {}
        created: set[str] = set()
        seen: dict[str, list] = {}  # key -> [first, last] in epoch seconds, while this batch folds in
        speaks: dict[str, Finding] = {}  # key -> the finding whose message the alert ends with
        for f in findings:
            key = dedup_key(f.rule_id, f.key)
            alert = changed.get(key)
            if alert is None:
                alert = self.alerts.get(key)
                if alert is None:
                    changed[key] = self._created(key, f)
                    created.add(key)
                    seen[key] = [f.first_seen, f.last_seen]
                    speaks[key] = f
                    continue
                changed[key] = alert
                seen[key] = [_epoch(alert.first_seen), _epoch(alert.last_seen)]
            times = seen[key]
            if f.first_seen < times[0]:
                times[0] = f.first_seen
            if f.last_seen >= times[1]:  # the newest event in business time speaks, whichever input delivered it last
                times[1] = f.last_seen
                speaks[key] = f
            # A running total fires again with every event behind it: set
            # arithmetic in C, and the order kept only for what is new.
            new_ids = set(f.event_ids).difference(alert.event_ids)
            if new_ids:
                alert.event_ids.extend(e for e in dict.fromkeys(f.event_ids) if e in new_ids)
            alert.count += 1
            if f.score is not None:
                alert.score = max(alert.score, round(f.score, 4))
        version = self.pack.version
        for key, alert in changed.items():
            first, last = seen[key]
            alert.first_seen, alert.last_seen = _iso(first), _iso(last)
            speaker = speaks.get(key)
            if speaker is not None:  # a message is rendered once a batch, for the finding that keeps it
                alert.message = self.rules[speaker.rule_id].message.render(speaker.values)
            alert.pack_version = version  # the version that last changed it
            self.alerts[key] = alert  # a table-backed mapping needs the write
        return ([a for k, a in changed.items() if k in created],
                [a for k, a in changed.items() if k not in created])

    def _created(self, key: str, f: Finding) -> Alert:
        rule = self.rules[f.rule_id]
        risk = rule.risk
        post = self.pack.post_for(risk)
        return Alert(
            alert_id=hashlib.sha256(key.encode()).hexdigest()[:16],
            dedup_key=key, rule_id=rule.id, risk_id=risk.id, severity=rule.severity,
            domain=risk.domain, org_id=f.values.get("org_id"), event_ids=list(dict.fromkeys(f.event_ids)),
            first_seen="", last_seen="", count=1,
            score=rule.score if f.score is None else round(f.score, 4),
            title=rule.title, message="", legal_basis=list(risk.legal_basis),
            owner=risk.owner, owner_department=post.department if post else None,
            risk_title=f"{risk.title_zh} / {risk.title_en}", status=rule.status,
            pack_version=self.pack.version,
        )
