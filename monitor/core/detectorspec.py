"""``rules/detectors.yaml``: the typed model of the detector settings and their compilation.

Pure, like ``monitor.core.rules``: documents in, ``CompiledDetector``s or
``Problem``s (file:line:col) out. A detector entry reads like a rule: which
events (``when``, the rule language), grouped how (``by``), which model, the
alert threshold, the risk it points at and the message an analyst reads.

Loading a trained model file is I/O and happens in ``monitor.packs.rulefiles``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from detectors import DETAILS, MODELS, Detector
from monitor.core.calibration import parse_rate
from monitor.core.rulelang import EVENT_FIELD_TYPES, Expr, ExprError, Param, Scope, compile_expr
from monitor.core.rules import (
    RULE_ID,
    SEVERITY_SCORE,
    CounterpartyList,
    Document,
    Problem,
    Risk,
    Severity,
    Template,
    _compile_template,
    _key_path_ok,
    _Strict,
    convert,
)

__all__ = ["CALIBRATED_MODELS", "CompiledDetector", "DetectorSpec", "compile_detectors"]

# models whose score says how unusual an event is (velocity and benford score a rule)
CALIBRATED_MODELS = ("robust_amount", "half_space_trees", "isolation_forest")


class DetectorSpec(_Strict):
    detector: str
    title: str
    risk: str
    model: Literal["robust_amount", "half_space_trees", "benford", "velocity", "isolation_forest"]
    when: str
    message: str
    threshold: float | None = None
    rarer_than: str | float | None = None  # "1 in 2,000": calibrated (monitor.core.calibration)
    daily_cap: int | None = None  # at most this many alerts per org and day (calibrated)
    warmup: int | None = None  # scores an org has before its first alert (default: 1/alpha)
    severity: Severity | None = None
    status: Literal["live", "shadow", "draft"] = "live"
    by: list[str] = msgspec.field(default_factory=lambda: ["org_id"])
    settings: dict[str, Any] = {}
    model_file: str | None = None


class DetectorFile(_Strict):
    detectors: list[DetectorSpec]


@dataclass
class CompiledDetector:
    """A detector entry ready for the scorer; ``new_model()`` makes a fresh model for one org."""

    id: str
    title: str
    risk: Risk
    severity: str
    status: str
    model: str
    when: Expr
    by: tuple[str, ...]
    threshold: float
    message: Template
    settings: dict[str, Any]
    spec: DetectorSpec
    trained: Any = None  # a fitted model loaded from model_file (isolation_forest)
    alpha: float | None = None  # calibrated: alert when rarer than this (p-value), per org
    warmup: int = 0
    daily_cap: int | None = None
    trained_meta: dict = field(default_factory=dict)

    kind = "detector"

    @property
    def calibrated(self) -> bool:
        return self.alpha is not None

    @property
    def alert_rule(self) -> str:
        """How it alerts, as the rules file says it."""
        if self.alpha is None:
            return f"score ≥ {self.threshold:g}"
        cap = f", at most {self.daily_cap} a day per org" if self.daily_cap is not None else ""
        return f"rarer than 1 in {1 / self.alpha:,.0f}{cap}"

    @property
    def score(self) -> float:
        return SEVERITY_SCORE[self.severity]

    def new_model(self) -> Detector:
        settings = dict(self.settings)
        if self.model == "isolation_forest":
            settings["model"] = self.trained
        return MODELS[self.model](**settings)


def _settings_problems(model: str, settings: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(setting, message) for every setting the model does not take or cannot use."""
    params = inspect.signature(MODELS[model].__init__).parameters
    allowed = {n: p.default for n, p in params.items() if n not in ("self", "model")}
    out = []
    for name, value in settings.items():
        if name not in allowed:
            close = difflib.get_close_matches(name, sorted(allowed), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            out.append((name, f"model '{model}' has no setting '{name}'{hint}; it takes {', '.join(sorted(allowed))}"))
            continue
        default = allowed[name]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
            if ok and isinstance(default, int) and not isinstance(value, int):
                ok = False
        else:
            ok = True
        if not ok:
            kind = ("true or false" if isinstance(default, bool) else
                    "a whole number >= 0" if isinstance(default, int) else "a number >= 0")
            out.append((name, f"setting '{name}' must be {kind}"))
    return out


def compile_detectors(doc: Document, risks: dict[str, Risk], params: dict[str, Param],
                      lists: dict[str, CounterpartyList], today: dt.date, problems: list[Problem]) -> list[CompiledDetector]:
    """Compile ``detectors.yaml``; append Problems, return the detectors that compiled."""
    spec = convert(doc, (), doc.data, DetectorFile, None, problems)
    if spec is None:
        return []
    out: list[CompiledDetector] = []
    seen: set[str] = set()
    scope = Scope.for_events(params, lists)
    for i, d in enumerate(spec.detectors):
        start = len(problems)

        def problem(sub: tuple, message: str, key: bool = False) -> None:
            line, col = doc.where(("detectors", i) + sub, key=key)
            problems.append(Problem(doc.file, line, col, message, d.detector))

        if not RULE_ID.match(d.detector) or not d.detector.startswith("det_"):
            problem(("detector",), f"detector id '{d.detector}' must be snake_case starting with det_")
        if d.detector in seen:
            problem(("detector",), "duplicate detector id")
        seen.add(d.detector)
        risk = risks.get(d.risk)
        if risk is None:
            problem(("risk",), f"risk '{d.risk}' is not in risk_list.yaml")
        alpha = None
        if (d.threshold is None) == (d.rarer_than is None):
            problem(("detector",), "give the alert rule: threshold (a score) or rarer_than (a rate, like \"1 in 2,000\")",
                    key=True)
        elif d.threshold is not None and not 0.0 < d.threshold <= 1.0:
            problem(("threshold",), "threshold is a score in (0, 1]")
        elif d.rarer_than is not None:
            alpha = parse_rate(d.rarer_than)
            if alpha is None:
                problem(("rarer_than",), f"rarer_than is a rate like \"1 in 2,000\" (got {d.rarer_than!r})")
            elif d.model not in CALIBRATED_MODELS:
                problem(("rarer_than",), f"model '{d.model}' alerts by a threshold (its score is a rule, not a "
                                         f"rarity); rarer_than is for {', '.join(CALIBRATED_MODELS)}")
        if d.threshold is not None and (d.daily_cap is not None or d.warmup is not None):
            problem(("daily_cap" if d.daily_cap is not None else "warmup",),
                    "daily_cap and warmup go with rarer_than", key=True)
        for name, value in (("daily_cap", d.daily_cap), ("warmup", d.warmup)):
            if value is not None and value < (1 if name == "daily_cap" else 0):
                problem((name,), f"{name} must be a whole number >= {1 if name == 'daily_cap' else 0}")
        when = None
        try:
            when = compile_expr(d.when, scope)
        except ExprError as err:
            line, col = doc.expr_where(("detectors", i, "when"), err)
            problems.append(Problem(doc.file, line, col, err.message, d.detector))
        for j, p in enumerate(d.by):
            if not _key_path_ok(p):
                close = difflib.get_close_matches(p, [f for f in EVENT_FIELD_TYPES if _key_path_ok(f)], n=1, cutoff=0.75)
                problem(("by", j), f"unknown field '{p}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        if "org_id" not in d.by:
            problem(("by",), "by must include org_id: each org learns its own normal")
        for name, message in _settings_problems(d.model, d.settings):
            problem(("settings", name), message, key=True)
        if d.model == "isolation_forest" and not d.model_file:
            problem(("model",), "an isolation_forest needs a model_file (trained with `riskwatch detectors train`)")
        allowed = (set(EVENT_FIELD_TYPES) - {"occurred_at"}) | set(DETAILS[d.model]) | {"score", "threshold"}
        if d.rarer_than is not None:
            allowed |= {"one_in", "p_value"}
        template, err = _compile_template(d.message, allowed)
        if err:
            problem(("message",), err)
        if any(p.level == "error" for p in problems[start:]) or when is None or template is None or risk is None:
            continue
        settings = dict(d.settings)
        if "explain_above" in inspect.signature(MODELS[d.model].__init__).parameters and d.threshold is not None:
            settings.setdefault("explain_above", d.threshold)  # explaining costs; only alerts need it
        out.append(CompiledDetector(
            id=d.detector, title=d.title, risk=risk, severity=d.severity or risk.severity, status=d.status,
            model=d.model, when=when, by=tuple(d.by), threshold=float("nan") if d.threshold is None else d.threshold,
            message=template, settings=settings, spec=d, alpha=alpha,
            warmup=(d.warmup if d.warmup is not None else round(1 / alpha)) if alpha else 0, daily_cap=d.daily_cap,
        ))
    return out
