"""What a rules change does: the alerts two packs raise over the same events, compared.

Pure: two mappings of dedup key -> alert in, per-rule counts and examples out.
An alert is *added* when only the head pack raises it, *removed* when only the
base pack did, and *changed* when both raise it over different events.

>>> from types import SimpleNamespace as A
>>> base = {"r|1": A(rule_id="r", event_ids=["a"], message="m1"), "r|2": A(rule_id="r", event_ids=["b"], message="m2")}
>>> head = {"r|2": A(rule_id="r", event_ids=["b", "c"], message="m2'"), "r|3": A(rule_id="r", event_ids=["d"], message="m3")}
>>> d = diff_alerts(base, head)
>>> [(x.rule_id, x.base, x.head, x.added, x.removed, x.changed) for x in d]
[('r', 2, 2, 1, 1, 1)]
>>> d[0].examples_added, d[0].examples_removed
(['m3'], ['m1'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["RuleDiff", "diff_alerts"]


@dataclass
class RuleDiff:
    rule_id: str
    base: int = 0
    head: int = 0
    added: int = 0
    removed: int = 0
    changed: int = 0
    examples_added: list[str] = field(default_factory=list)
    examples_removed: list[str] = field(default_factory=list)
    examples_changed: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff_alerts(base: Mapping[str, Any], head: Mapping[str, Any], examples: int = 3) -> list[RuleDiff]:
    """Per rule, sorted by rule id; only rules that alert in either pack."""
    out: dict[str, RuleDiff] = {}

    def of(rule_id: str) -> RuleDiff:
        return out.setdefault(rule_id, RuleDiff(rule_id))

    for key, alert in base.items():
        d = of(alert.rule_id)
        d.base += 1
        if key not in head:
            d.removed += 1
            if len(d.examples_removed) < examples:
                d.examples_removed.append(alert.message)
    for key, alert in head.items():
        d = of(alert.rule_id)
        d.head += 1
        before = base.get(key)
        if before is None:
            d.added += 1
            if len(d.examples_added) < examples:
                d.examples_added.append(alert.message)
        elif set(before.event_ids) != set(alert.event_ids):
            d.changed += 1
            if len(d.examples_changed) < examples:
                d.examples_changed.append(f"{before.message}  →  {alert.message}")
    return [out[k] for k in sorted(out)]
