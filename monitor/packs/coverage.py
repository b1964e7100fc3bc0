"""Coverage of the risk list by a pack, and what in it is idle.

>>> from monitor.packs.rulefiles import load_pack, default_rules_dir
>>> c = coverage(load_pack(default_rules_dir()))
>>> "PROC-03" in c.uncovered_risks, c.unused_lists
(True, [])
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.core.rules import RulePack, _rule_sources

__all__ = ["Coverage", "coverage"]


@dataclass
class Coverage:
    uncovered_risks: list[str]  # no live rule or detector
    not_live_risks: dict[str, list[str]]  # risk -> its shadow/draft rules, when it has no live one
    unused_lists: list[str]
    never_fired: list[str] = field(default_factory=list)  # over a backtest, when one was run
    controls_not_live: list[str] = field(default_factory=list)  # review controls in shadow or draft
    controls_unexercised: list[str] = field(default_factory=list)  # judged no execution over the backtest


def coverage(pack: RulePack, fired: set[str] | None = None, judged: set[str] | None = None) -> Coverage:
    """``fired``: the rules that alerted over a backtest; ``judged``: the review
    controls that judged at least one executed matter over it."""
    items = [*pack.rules, *pack.detectors, *pack.controls]
    live = {r.risk.id for r in items if r.status == "live"}
    not_live: dict[str, list[str]] = {}
    for r in items:
        if r.risk.id not in live:
            not_live.setdefault(r.risk.id, []).append(f"{r.id} ({r.status})")
    uncovered = sorted(set(pack.risks) - live)
    sources = " ".join(_rule_sources(r) for r in pack.rules) + " " + " ".join(
        d.spec.when for d in pack.detectors)
    unused = sorted(name for name in pack.lists if f"lists.{name}" not in sources)
    never = sorted(r.id for r in [*pack.rules, *pack.detectors] if fired is not None and r.id not in fired)
    controls_not_live = [f"{c.id} ({c.status})" for c in pack.controls if c.status != "live"]
    unexercised = sorted(c.id for c in pack.controls if judged is not None and c.id not in judged)
    return Coverage(uncovered, {k: not_live[k] for k in sorted(not_live)}, unused, never, controls_not_live, unexercised)
