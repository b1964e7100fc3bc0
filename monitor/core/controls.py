"""The review-process control list (合规审查流程管控清单): its entries, compiled. Pure.

A control says, for one kind of reviewable matter (a contract, a regulation,
a 三重一大 decision, a major project, a legal case, a key post), which business
events execute it, which review steps it needs before that, in what order, by
which post, within what time, and which risk of the risk list a breach maps
to. ``compile_controls`` reads ``review_controls.yaml`` and says where each
problem is; the watch over the compiled controls is ``monitor.core.reviews``.

>>> control = compile_control_spec(ControlSpec(
...     control="RC-CON-01", title="t", matter_kind="contract", risk="CON-01",
...     steps=[StepSpec(step="legal_review", post="legal_compliance_officer", within="5d")]))
>>> control.matter_id, control.executed_by, [s.within for s in control.steps]
('attributes.contract_id', ('contract_signed',), [432000.0])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

__all__ = [
    "BREACHES", "MATTER_KINDS", "OPINIONS", "PROCESS_KINDS", "REVIEW_KINDS", "STEPS", "ChangeSpec", "CompiledControl",
    "CompiledStep", "ControlSpec", "ControlTest", "StepSpec", "compile_control_spec", "compile_controls",
]

# matter kind -> (its id attribute, the events that execute it, the events that change it)
MATTER_KINDS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "contract": ("attributes.contract_id", ("contract_signed",), ("contract_changed",)),
    "regulation": ("attributes.regulation_id", ("regulation_issued",), ()),
    "decision": ("attributes.decision_id", ("decision",), ()),
    "project": ("attributes.project_id", ("investment_disbursement",), ()),
    "legal_case": ("attributes.case_id", (), ()),
    "key_post": ("attributes.employee_id", (), ()),
}
STEPS = ("business_review", "legal_review", "compliance_review", "cco_signoff")
# matter kinds whose process is not a review before execution: each has its own (``MatterProcess``)
KIND_STEPS = {"project": ("legal_participation",), "legal_case": ("response",),
              "key_post": ("compliance_training", "compliance_commitment")}
PROCESS_KINDS = {
    "project": "monitor.core.projects:ProjectProcess",
    "legal_case": "monitor.core.disputes:CaseProcess",
    "key_post": "monitor.core.keyposts:KeyPostProcess",
}
REVIEW_KINDS = ("contract", "regulation", "decision")  # what the review rate (审查率) counts
OPINIONS = ("pass", "conditional", "reject")
BREACHES = {
    "executed_early": "executed before {step} passed",
    "after_reject": "executed after {step} rejected it",
    "conditional_open": "executed on a conditional {step} opinion without a passed {follow_up}",
    "wrong_post": "{step} done by {post}, not {required_post}",
    "own_draft": "{step} done by {reviewer}, who drafted the matter",
    "out_of_order": "{step} passed before {ahead}",
    "changed": "raised to {amount:,.0f} after review (reviewed at {reviewed:,.0f}) with no new {step} within {days:.0f} days",
    "silent": "{step} not done within {days:.0f} days of submission",
}


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class StepSpec(_Strict):
    step: Literal["business_review", "legal_review", "compliance_review", "cco_signoff", "legal_participation",
                  "response", "compliance_training", "compliance_commitment"]
    post: str | None = None  # a post of duties.yaml (a review step needs one)
    within: str | None = None  # from submission (a project: from reaching the stage; a case: from being served), e.g. 5d
    conditional_needs: Literal["business_review", "legal_review", "compliance_review", "cco_signoff"] | None = None
    evidence: list[Literal["opinion_no"]] = msgspec.field(default_factory=lambda: ["opinion_no"])


class ChangeSpec(_Strict):
    tolerance: float | str  # a raise above this share of the reviewed amount is material (a number or a parameter)
    review: Literal["business_review", "legal_review", "compliance_review", "cco_signoff"] = "legal_review"
    within: str = "5d"


class ControlSpec(_Strict):
    control: str
    title: str
    matter_kind: Literal["contract", "regulation", "decision", "project", "legal_case", "key_post"]
    risk: str
    steps: list[StepSpec]
    severity: Literal["low", "medium", "high", "critical"] = "high"
    status: Literal["live", "shadow", "draft"] = "live"
    min_amount: float | str | None = None  # the control applies to matters of at least this amount (or parameter)
    only: dict[str, list[str]] = {}  # ... and whose attributes hold one of these values (e.g. kind: [...])
    unless: dict[str, list[str]] = {}  # ... and none of these (e.g. jurisdiction: [CN])
    watch_if: list[str] = []  # boolean attributes that make a matter watched whatever its amount (overseas)
    matter_id: str | None = None  # default: the matter kind's id attribute
    executed_by: list[str] | None = None
    changed_by: list[str] | None = None
    change: ChangeSpec | None = None
    lateness: str = "1d"  # how long a breach waits for a late review event (an OA that syncs nightly)
    expires: str = "400d"  # a matter idle this long is forgotten
    supersedes: list[str] = []  # flag rules this control replaces for the matters it watches
    tests: list[dict[str, Any]] = []


def _seconds(text: str) -> float:
    from monitor.core.rules import parse_duration

    return float(parse_duration(text))


@dataclass(frozen=True)
class CompiledStep:
    step: str
    post: str | None
    within: float | None
    conditional_needs: str | None
    index: int


@dataclass
class CompiledControl:
    """A control ready for the watch; it alerts like a rule (id, risk, severity, message)."""

    id: str
    title: str
    matter_kind: str
    matter_id: str
    executed_by: tuple[str, ...]
    changed_by: tuple[str, ...]
    steps: list[CompiledStep]
    severity: str
    status: str
    lateness: float
    expires: float
    min_amount: float | None = None
    only: dict[str, tuple[str, ...]] | None = None
    unless: dict[str, tuple[str, ...]] | None = None
    watch_if: tuple[str, ...] = ()
    change: tuple[float, str, float] | None = None  # (tolerance, step, within seconds)
    process: Any = None  # the MatterProcess of a kind that is not a review before execution
    key_posts: frozenset[str] = frozenset()  # the posts duties.yaml marks key_post (whose staff a key_post control watches)
    supersedes: tuple[str, ...] = ()
    risk: Any = None  # the Risk, once the pack resolves it
    message: Any = None  # a Template
    spec: ControlSpec | None = None
    key: tuple[str, ...] = ("org_id", "matter_id", "breach")

    @property
    def score(self) -> float:
        return {"low": 0.25, "medium": 0.5, "high": 0.75, "critical": 1.0}[self.severity]

    def step(self, name: str) -> CompiledStep | None:
        return next((s for s in self.steps if s.step == name), None)

    @property
    def watched_types(self) -> tuple[str, ...]:
        """The event types this control reads."""
        own = self.process.event_types if self.process is not None else ("matter_submitted", "review_step")
        return tuple(dict.fromkeys((*own, *self.executed_by, *self.changed_by)))


def compile_control_spec(spec: ControlSpec, params: dict[str, float] | None = None) -> CompiledControl:
    """The control a spec describes (its references are checked by the pack;
    ``params`` are the parameters a tolerance may name)."""
    default_id, executes, changes = MATTER_KINDS[spec.matter_kind]
    min_amount = spec.min_amount
    if isinstance(min_amount, str):
        min_amount = float((params or {})[min_amount])
    change = None
    if spec.change:
        tolerance = spec.change.tolerance
        tolerance = float((params or {})[tolerance]) if isinstance(tolerance, str) else float(tolerance)
        change = (tolerance, spec.change.review, _seconds(spec.change.within))
    return CompiledControl(
        id=spec.control, title=spec.title, matter_kind=spec.matter_kind, matter_id=spec.matter_id or default_id,
        executed_by=tuple(spec.executed_by or executes), changed_by=tuple(spec.changed_by if spec.changed_by is not None
                                                                            else changes),
        steps=[CompiledStep(s.step, s.post, _seconds(s.within) if s.within else None, s.conditional_needs, i)
               for i, s in enumerate(spec.steps)],
        severity=spec.severity, status=spec.status, lateness=_seconds(spec.lateness), expires=_seconds(spec.expires),
        min_amount=min_amount, only={k: tuple(v) for k, v in spec.only.items()} or None,
        unless={k: tuple(v) for k, v in spec.unless.items()} or None, watch_if=tuple(spec.watch_if), change=change,
        supersedes=tuple(spec.supersedes), spec=spec, process=_process(spec.matter_kind))


def _process(matter_kind: str) -> Any:
    where = PROCESS_KINDS.get(matter_kind)
    if where is None:
        return None
    import importlib

    module, name = where.split(":")
    return getattr(importlib.import_module(module), name)()


# --- the list file ------------------------------------------------------------------------

CONTROL_ID = r"^RC-[A-Z0-9][A-Z0-9-]*$"
MESSAGE = "{org_id} {matter_id}: {breach}"


class ControlTest(_Strict):
    """A case beside a control: partial events (as in rule tests), how far stream
    time then moves on, and the breach expected (or none)."""

    name: str
    events: list[dict[str, Any]]
    expect: Literal["hit", "miss"]
    breach: str | None = None  # e.g. executed_early:legal_review; any breach when not given
    breaches: list[str] | None = None  # or: exactly these breaches, each once (e.g. [warning])
    then: str = "0s"  # stream time moves on this long after the last event


def compile_controls(doc, risks: dict, posts: dict, params: dict, rule_ids: set[str], problems: list) -> list[CompiledControl]:
    """Compile review_controls.yaml (``controls:`` a list of entries); append
    located Problems, with did-you-mean for every name that points elsewhere."""
    import difflib
    import re

    from monitor.core.event import ATTRIBUTE_TYPES, EVENT_TYPES
    from monitor.core.rules import Problem, Template, convert, parse_duration

    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("controls"), list):
        line, col = doc.where(())
        problems.append(Problem(doc.file, line, col, "review_controls.yaml holds 'controls:', a list of '- control:' entries"))
        return []
    out: list[CompiledControl] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(data["controls"]):
        cid = item.get("control") if isinstance(item, dict) else None
        spec = convert(doc, ("controls", i), item, ControlSpec, cid if isinstance(cid, str) else None, problems)
        if spec is None:
            continue
        start = len(problems)

        def problem(sub: tuple, message: str, key: bool = False) -> None:
            line, col = doc.where(("controls", i, *sub), key=key)
            problems.append(Problem(doc.file, line, col, message, spec.control))

        def unknown(sub: tuple, what: str, name: str, known) -> None:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            problem(sub, f"unknown {what} '{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))

        if not re.match(CONTROL_ID, spec.control):
            problem(("control",), f"control id '{spec.control}' must look like RC-CON-01 (RC- and capitals, digits, dashes)")
        if spec.control in seen:
            problem(("control",), f"duplicate control id (first at line {seen[spec.control]})")
        seen.setdefault(spec.control, doc.where(("controls", i, "control"))[0])
        if spec.risk not in risks:
            unknown(("risk",), "risk", spec.risk, risks)
        if not spec.steps:
            problem(("steps",), "a control needs at least one review step")
        names = [s.step for s in spec.steps]
        allowed = KIND_STEPS.get(spec.matter_kind, STEPS)
        for j, step in enumerate(spec.steps):
            if step.step not in allowed:
                problem(("steps", j, "step"), f"a {spec.matter_kind} control's steps are {', '.join(allowed)}, "
                                              f"not '{step.step}'")
            if step.post is None and spec.matter_kind in ("contract", "regulation", "decision", "project"):
                problem(("steps", j), f"step '{step.step}' needs the post that must do it (post:)")
            elif step.post is not None and step.post not in posts:
                unknown(("steps", j, "post"), "post", step.post, posts)
            if names.count(step.step) > 1 and names.index(step.step) != j:
                problem(("steps", j, "step"), f"step '{step.step}' is listed twice")
            if step.conditional_needs == step.step:
                problem(("steps", j, "conditional_needs"), "a conditional opinion cannot be followed up by itself")
        durations = [(("steps", j, "within"), s.within) for j, s in enumerate(spec.steps) if s.within]
        durations += [(("lateness",), spec.lateness), (("expires",), spec.expires)]
        if spec.change:
            durations.append((("change", "within"), spec.change.within))
        for sub, text in durations:
            try:
                parse_duration(text)
            except ValueError as err:
                problem(sub, str(err))
        for field_name in ("executed_by", "changed_by"):
            for j, kind in enumerate(getattr(spec, field_name) or []):
                if kind not in EVENT_TYPES:
                    unknown((field_name, j), "event type", kind, EVENT_TYPES)
        if spec.matter_id is not None and spec.matter_id.removeprefix("attributes.") not in ATTRIBUTE_TYPES:
            unknown(("matter_id",), "attribute", spec.matter_id, [f"attributes.{a}" for a in ATTRIBUTE_TYPES])
        for field_name in ("only", "unless"):
            for name in getattr(spec, field_name):
                if name not in ATTRIBUTE_TYPES:
                    unknown((field_name, name), "attribute", name, ATTRIBUTE_TYPES)
        for j, name in enumerate(spec.watch_if):
            if ATTRIBUTE_TYPES.get(name) != "bool":
                unknown(("watch_if", j), "true/false attribute", name, [a for a, t in ATTRIBUTE_TYPES.items() if t == "bool"])
        tolerances = {}
        if isinstance(spec.min_amount, str):
            param = params.get(spec.min_amount)
            if param is None or param.is_map:
                unknown(("min_amount",), "number parameter", spec.min_amount, [p for p, v in params.items() if not v.is_map])
            else:
                tolerances[spec.min_amount] = param.default
        if spec.change is not None:
            if spec.change.review not in names:
                problem(("change", "review"), f"the re-review step '{spec.change.review}' is not one of this control's steps")
            tolerance = spec.change.tolerance
            if isinstance(tolerance, str):
                param = params.get(tolerance)
                if param is None or param.is_map:
                    unknown(("change", "tolerance"), "number parameter", tolerance,
                            [p for p, v in params.items() if not v.is_map])
                else:
                    tolerances[tolerance] = param.default
            elif not tolerance >= 0:
                problem(("change", "tolerance"), "a tolerance is a share of the reviewed amount, 0 or more")
        for j, rule_id in enumerate(spec.supersedes):
            if rule_id not in rule_ids:  # nothing to replace: harmless, but likely a typo
                close = difflib.get_close_matches(rule_id, sorted(rule_ids), n=1, cutoff=0.6)
                line, col = doc.where(("controls", i, "supersedes", j))
                problems.append(Problem(doc.file, line, col, f"supersedes unknown rule '{rule_id}'"
                                        + (f" (did you mean '{close[0]}'?)" if close else ""), spec.control, "warning"))
        for j, case in enumerate(spec.tests):
            convert(doc, ("controls", i, "tests", j), case, ControlTest, spec.control, problems)
        if any(p.level == "error" for p in problems[start:]):
            continue
        control = compile_control_spec(spec, tolerances)
        control.risk = risks[spec.risk]
        control.key_posts = frozenset(p for p, post in posts.items() if getattr(post, "key_post", False))
        control.message = Template(MESSAGE, ("org_id", "matter_id", "breach"))
        out.append(control)
    return out
