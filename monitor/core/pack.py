"""A whole rules folder's documents compiled into one ``RulePack``: rules,
detectors, the risk list, the post duties, parameters and lists, checked
together (duplicate ids, coverage gaps of the risk list, unused lists). Pure:
``monitor.packs.rulefiles`` reads the files and calls this.
"""

from __future__ import annotations

import datetime as dt

from monitor.core.controls import compile_controls
from monitor.core.detectorspec import compile_detectors
from monitor.core.rulelang import EVENT_FIELD_TYPES, Param
from monitor.core.rules import (
    CompiledRule,
    CounterpartyList,
    Document,
    DutyList,
    Params,
    Post,
    Problem,
    Risk,
    RiskList,
    RulePack,
    _rule_sources,
    compile_rule,
    convert,
    pack_version,
    parse_duration,
)

__all__ = ["compile_pack"]


def compile_pack(
    rule_docs: list[Document], risk_doc: Document, duty_doc: Document, params_doc: Document | None,
    lists: dict[str, CounterpartyList], list_problems: list[Problem], today: dt.date,
    detectors_doc: Document | None = None, controls_doc: Document | None = None,
) -> tuple[RulePack | None, list[Problem]]:
    """Compile a whole folder's documents. Returns (pack or None, problems)."""
    problems: list[Problem] = list(list_problems)
    risk_list = convert(risk_doc, (), risk_doc.data, RiskList, None, problems)
    duty_list = convert(duty_doc, (), duty_doc.data, DutyList, None, problems)
    risks: dict[str, Risk] = {}
    posts: dict[str, Post] = {}
    if duty_list:
        for i, post in enumerate(duty_list.posts):
            if post.id in posts:
                line, col = duty_doc.where(("posts", i, "id"))
                problems.append(Problem(duty_doc.file, line, col, f"duplicate post id '{post.id}'"))
            posts[post.id] = post
    if risk_list:
        for i, risk in enumerate(risk_list.risks):
            line, col = risk_doc.where(("risks", i, "id"))
            if risk.id in risks:
                problems.append(Problem(risk_doc.file, line, col, f"duplicate risk id '{risk.id}'"))
            risks[risk.id] = risk
            for sub in ("acknowledge", "dispose"):
                try:
                    parse_duration(getattr(risk.sla, sub))
                except ValueError as err:
                    l2, c2 = risk_doc.where(("risks", i, "sla", sub))
                    problems.append(Problem(risk_doc.file, l2, c2, f"{risk.id}: {err}"))
            if duty_list and risk.owner not in posts:
                l2, c2 = risk_doc.where(("risks", i, "owner"))
                problems.append(Problem(risk_doc.file, l2, c2, f"{risk.id}: owner post '{risk.owner}' is not in duties.yaml"))
            elif duty_list and risk.id not in posts[risk.owner].risks:
                l2, c2 = risk_doc.where(("risks", i, "owner"))
                problems.append(Problem(risk_doc.file, l2, c2,
                                        f"{risk.id}: post '{risk.owner}' does not list this risk in duties.yaml"))
    if duty_list and risk_list:
        for i, post in enumerate(duty_list.posts):
            for j, rid in enumerate(post.risks):
                if rid not in risks:
                    line, col = duty_doc.where(("posts", i, "risks", j))
                    problems.append(Problem(duty_doc.file, line, col, f"post '{post.id}' owns unknown risk '{rid}'"))
                elif risks[rid].owner != post.id:
                    line, col = duty_doc.where(("posts", i, "risks", j))
                    problems.append(Problem(duty_doc.file, line, col,
                                            f"post '{post.id}' lists {rid}, but risk_list.yaml names '{risks[rid].owner}' as owner"))
            if post.escalates_to and post.escalates_to not in posts:
                line, col = duty_doc.where(("posts", i, "escalates_to"))
                problems.append(Problem(duty_doc.file, line, col, f"escalates_to '{post.escalates_to}' is not a post"))

    params: dict[str, Param] = {}
    if params_doc is not None:
        spec = convert(params_doc, (), params_doc.data, Params, None, problems)
        if spec:
            for name, value in spec.defaults.items():
                if name in EVENT_FIELD_TYPES or name in ("count", "total", "reference", "lists", "attributes"):
                    line, col = params_doc.where(("defaults", name), key=True)
                    problems.append(Problem(params_doc.file, line, col, f"parameter '{name}' shadows a field name"))
                params[name] = Param(name, value, {})
            for org, overrides in spec.orgs.items():
                for name, value in overrides.items():
                    line, col = params_doc.where(("orgs", org, name), key=True)
                    if name not in params:
                        problems.append(Problem(params_doc.file, line, col, f"org {org}: unknown parameter '{name}'"))
                    elif isinstance(value, dict) != params[name].is_map:
                        problems.append(Problem(params_doc.file, line, col,
                                                f"org {org}: '{name}' must be a {'table' if params[name].is_map else 'number'}"))
                    else:
                        params[name].per_org[org] = value  # type: ignore[index]

    rules: list[CompiledRule] = []
    seen: dict[str, str] = {}
    for doc in rule_docs:
        if doc.data is None:
            continue
        if not isinstance(doc.data, list):
            problems.append(Problem(doc.file, 1, 1, "a rule file is a list of '- rule:' items"))
            continue
        for i, item in enumerate(doc.data):
            compiled = compile_rule(doc, (i,), item, risks, params, lists, today, problems)
            if compiled is None:
                continue
            line, col = doc.where((i, "rule"))
            if compiled.id in seen:
                problems.append(Problem(doc.file, line, col, f"duplicate rule id (first at {seen[compiled.id]})", compiled.id))
                continue
            seen[compiled.id] = f"{doc.file}:{line}"
            rules.append(compiled)

    detectors = []
    if detectors_doc is not None and detectors_doc.data is not None:
        detectors = compile_detectors(detectors_doc, risks, params, lists, today, problems)
        for d in detectors:
            if d.id in seen:
                line, col = detectors_doc.where(("detectors", detectors.index(d), "detector"))
                problems.append(Problem(detectors_doc.file, line, col, f"id already used by a rule ({seen[d.id]})", d.id))

    controls = []
    if controls_doc is not None and controls_doc.data is not None:
        # a rule that failed to compile is still a rule a control may name: one error, not two
        declared = {item.get("rule") for doc in rule_docs if isinstance(doc.data, list)
                    for item in doc.data if isinstance(item, dict)}
        controls = compile_controls(controls_doc, risks, posts, params, declared - {None}, problems)
        for c in controls:
            if c.id in seen:
                line, col = controls_doc.where(("controls", controls.index(c), "control"))
                problems.append(Problem(controls_doc.file, line, col, f"id already used by a rule ({seen[c.id]})", c.id))

    warnings = [p for p in problems if p.level == "warning"]
    errors = [p for p in problems if p.level == "error"]
    covered = {r.risk.id for r in [*rules, *detectors, *controls] if r.status == "live"}
    for i, risk in enumerate(risk_list.risks if risk_list else []):
        if risk.id not in covered:
            line, col = risk_doc.where(("risks", i, "id"))
            warnings.append(Problem(risk_doc.file, line, col, f"coverage gap: risk {risk.id} ({risk.title_zh}) has no live rule or detector",
                                    level="warning"))
    used_lists = {name for r in rules for name in lists if f"lists.{name}" in _rule_sources(r)}
    for name in sorted(set(lists) - used_lists):
        warnings.append(Problem(f"lists/{name}.csv", 1, 1, f"list '{name}' is used by no rule", level="warning"))
    if errors:
        return None, errors + warnings
    docs = rule_docs + [risk_doc, duty_doc] + [d for d in (params_doc, detectors_doc, controls_doc) if d is not None]
    version = pack_version(docs, lists)
    return RulePack(rules, risks, posts, params, lists, version, warnings, detectors, controls), warnings
