"""Rule packs: the typed models of the files analysts write, and their compilation.

This module is pure: it takes documents already read (``Document``: the data
plus where each value stood in its file) and returns a compiled ``RulePack``
or a list of ``Problem``s naming file, line, column and rule. Reading files is
``monitor.packs.rulefiles``'s job.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import hashlib
import math
import re
import string
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import msgspec
import orjson

from monitor.core.packed import pack_texts, unpack_texts
from monitor.core.tradegraph import CYCLE_FIELDS
from monitor.core.rulelang import (
    EVENT_FIELD_TYPES,
    NUM,
    Expr,
    ExprError,
    Param,
    Scope,
    aggregate_column,
    compile_expr,
    required_minimum,
)

__all__ = [
    "CompiledRule",
    "Document",
    "Problem",
    "Post",
    "Risk",
    "RulePack",
    "RuleSpec",
    "changed_rules",
    "parse_duration",
    "rule_fingerprint",
]

Severity = Literal["low", "medium", "high", "critical"]
SEVERITY_SCORE = {"low": 0.25, "medium": 0.5, "high": 0.75, "critical": 1.0}
RULE_ID = re.compile(r"^(fin|inv|proc|gov|det)_[a-z0-9_]+$")
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# A message's format specs: Python's mini-language, with the width and the
# precision bounded so that no message costs more than a line of text.
_FORMAT_SPEC = re.compile(r"^(?:[^{}]?[<>=^])?[-+ ]?#?0?(?P<width>\d+)?[,_]?(?:\.(?P<precision>\d+))?[sdfeEgG%]?$")
MAX_FORMAT_WIDTH, MAX_FORMAT_PRECISION = 40, 12
MAX_FIELD_CHARS = 200  # one field's text in a message; longer values end in "…"


def parse_duration(text: str) -> float:
    """Seconds in a duration like ``30d``, ``12h``, ``2w``.

    >>> parse_duration("30d"), parse_duration("90m")
    (2592000, 5400)
    """
    m = _DURATION.match(str(text).strip())
    if not m:
        raise ValueError(f"bad duration {text!r}: use a number and one of s, m, h, d, w (e.g. 30d)")
    return int(m.group(1)) * _UNITS[m.group(2)]


# --- the files' models -------------------------------------------------------

class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ExceptionSpec(_Strict):
    # Every exception says why, who answers for it and until when: none is forever.
    name: str
    where: str
    reason: str
    owner: str
    expires: dt.date


class WindowSpec(_Strict):
    by: list[str]
    within: str
    having: str
    lateness: str = "1d"


class TotalSpec(_Strict):
    by: list[str]
    add: str
    reference: str
    having: str
    value: str = "amount"
    expires: str = "400d"


class RuleTest(_Strict):
    name: str
    events: list[dict[str, Any]]
    expect: Literal["hit", "miss"]
    today: dt.date | None = None


class RuleSpec(_Strict):
    rule: str
    title: str
    risk: str
    when: str
    message: str
    severity: Severity | None = None
    status: Literal["live", "shadow", "draft"] = "live"
    key: list[str] | None = None
    window: WindowSpec | None = None
    total: TotalSpec | None = None
    exceptions: list[ExceptionSpec] = []
    tests: list[RuleTest] = []


class SLA(_Strict):
    acknowledge: str
    dispose: str


class Risk(_Strict):
    id: str
    title_zh: str
    title_en: str
    area: Literal["regulation", "procurement", "finance", "investment", "decision", "contract", "overseas", "counterparty"]
    domain: Literal["finance", "investment", "procurement", "governance"]
    severity: Severity
    legal_basis: list[str]
    owner: str
    sla: SLA
    description: str = ""


class RiskList(_Strict):
    risks: list[Risk]


class Contact(_Strict):
    email: str | None = None
    phone: str | None = None
    wecom: str | None = None


class Post(_Strict):
    id: str
    title: str
    department: str
    duties: list[str]
    risks: list[str] = []
    contact: Contact = msgspec.field(default_factory=Contact)
    escalates_to: str | None = None
    key_post: bool = False  # 重点岗位: its staff need compliance training and the yearly commitment (RC-KEY-01)


class DutyList(_Strict):
    posts: list[Post]


class Params(_Strict):
    defaults: dict[str, float | dict[str, float]]
    orgs: dict[str, dict[str, float | dict[str, float]]] = {}


# Every field name of the file models, for "did you mean" hints.
_MODEL_FIELDS = sorted({f for m in (ExceptionSpec, WindowSpec, TotalSpec, RuleTest, RuleSpec, SLA, Risk, RiskList,
                                    Contact, Post, DutyList, Params) for f in m.__struct_fields__})


# --- documents and problems --------------------------------------------------

@dataclass
class Document:
    """A parsed file: its data and the (line, col) of each value and key, by path."""

    file: str
    data: Any
    positions: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    styles: dict[tuple, str] = field(default_factory=dict)  # quoting style of string scalars

    def where(self, path: tuple, key: bool = False) -> tuple[int, int]:
        """The closest known position of ``path`` (its key with key=True)."""
        table = self.key_positions if key else self.positions
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if p in self.positions:
                return self.positions[p]
            p = p[:-1]
        return (1, 1)

    def expr_where(self, path: tuple, err: ExprError) -> tuple[int, int]:
        """Position in the file of an error inside the expression at ``path``."""
        line, col = self.where(path)
        style = self.styles.get(tuple(path), "")
        if style in ("|", ">"):
            return line + err.line, col + err.col - 1  # approximate: block scalars start on the next line
        if err.line > 1:
            return line + err.line - 1, err.col
        return line, col + err.col - 1 + (1 if style in ("'", '"') else 0)


@dataclass(frozen=True)
class Problem:
    """An error or warning about a file an analyst wrote."""

    file: str
    line: int
    col: int
    message: str
    rule: str | None = None
    level: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        who = f" {self.rule}:" if self.rule else ""
        tag = "" if self.level == "error" else " warning:"
        return f"{self.file}:{self.line}:{self.col}{tag}{who} {self.message}"


def _struct_fields(model: Any) -> set[str]:
    """Every field name of a msgspec model and the models inside it."""
    names: set[str] = set()
    seen: set[int] = set()

    def walk(info: Any) -> None:
        if id(info) in seen:
            return
        seen.add(id(info))
        if isinstance(info, msgspec.inspect.StructType):
            for f in info.fields:
                names.add(f.name)
                walk(f.type)
        for attr in ("types", "item_type", "value_type"):
            inner = getattr(info, attr, None)
            if isinstance(inner, tuple):
                for t in inner:
                    walk(t)
            elif inner is not None:
                walk(inner)

    walk(msgspec.inspect.type_info(model))
    return names


def _resolve_wildcards(doc: Document, pattern: tuple, key: bool) -> tuple:
    """The first real path matching a path with hidden dict keys (None)."""
    table = doc.key_positions if key else doc.positions
    for path in sorted(table, key=lambda p: table[p]):
        if len(path) == len(pattern) and all(w is None or w == p for w, p in zip(pattern, path)):
            return path
    return tuple(p for p in pattern if p is not None)


def _validation_problem(doc: Document, base: tuple, err: msgspec.ValidationError, rule: str | None,
                        model: Any = None) -> Problem:
    text = str(err)
    m = re.search(r" - at `\$([^`]*)`$", text)
    rel = m.group(1) if m else ""
    message = text[: m.start()] if m else text
    path = list(base)
    for part in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[(\.\.\.)\]", rel):
        path.append(int(part[1]) if part[1] else (None if part[2] else part[0]))  # None: a dict key msgspec hides
    um = re.match(r"Object contains unknown field `([^`]+)`", message)
    key = um is not None
    if um:
        path.append(um.group(1))
    if None in path:
        path = list(_resolve_wildcards(doc, tuple(path), key))
    if um:
        candidates = sorted(_struct_fields(model)) if model is not None else _MODEL_FIELDS
        close = difflib.get_close_matches(um.group(1), candidates, n=1, cutoff=0.7)
        message = f"unknown field '{um.group(1)}'" + (f" (did you mean '{close[0]}'?)" if close else "")
    else:
        mm = re.match(r"Object missing required field `([^`]+)`", message)
        if mm:
            message = f"missing required field '{mm.group(1)}'"
        else:
            where = ".".join(str(p) for p in path[len(base):]) or "value"
            message = f"{where}: {message}"
    line, col = doc.where(tuple(path), key=key)
    return Problem(doc.file, line, col, message, rule)


def convert(doc: Document, base: tuple, data: Any, model: type, rule: str | None, problems: list[Problem]):
    """msgspec.convert with errors turned into a located Problem."""
    try:
        return msgspec.convert(data, model, strict=True)
    except msgspec.ValidationError as err:
        problems.append(_validation_problem(doc, base, err, rule, model))
        return None


# --- lists -------------------------------------------------------------------

_UNSEEN = object()
SCREEN_MEMO = 200_000  # distinct names remembered per list


class ListRows(Sequence):
    """A list file's rows as its CSV gave them, kept as columns and each row made a
    dict when asked: a sanctions list of 20,000 rows loads without 20,000 dicts,
    of which a run reads the few that match, and pickles as a few strings
    (``monitor.core.packed``).

    >>> rows = ListRows(["counterparty_id", "counterparty_name"], [["S1", ""], ["Acme", "Beta"]])
    >>> rows[1], len(rows), rows.column("counterparty_name")
    ({'counterparty_id': '', 'counterparty_name': 'Beta'}, 2, ['Acme', 'Beta'])
    """

    def __init__(self, header: list[str], columns: list[list[str]]):
        self.header = header
        self._columns: list[list[str] | str] = list(columns)  # a column still packed is unpacked when first read
        self._length = len(columns[0]) if columns else 0

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, position):
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(self._length))]
        if position < 0:
            position += self._length
        if not 0 <= position < self._length:
            raise IndexError(position)
        return {h: self._column_at(at)[position] for at, h in enumerate(self.header)}

    def column(self, name: str) -> list[str]:
        """One column's values (the list kept: not to be changed)."""
        if name not in self.header:
            return [""] * self._length
        return self._column_at(self.header.index(name))

    def _column_at(self, at: int) -> list[str]:
        column = self._columns[at]
        if not isinstance(column, list):
            column = self._columns[at] = unpack_texts(column)
        return column

    @property
    def columns(self) -> list[list[str]]:
        return [self._column_at(at) for at in range(len(self.header))]

    def __getstate__(self) -> dict:
        return {"header": self.header, "_length": self._length,
                "_columns": [c if isinstance(c, str) else pack_texts(c) for c in self._columns]}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)  # columns are unpacked as they are read: most never are


@dataclass
class CounterpartyList:
    """A CSV list: counterparty_id -> validity spans in epoch seconds."""

    name: str
    entries: dict[str, list[tuple[float, float]]]
    rows: Sequence[dict[str, str]]  # a ListRows when read from a file
    spans: list[tuple[float, float]] = field(default_factory=list)  # per row: when it counts (default: always)
    # what screen() learns: the names' index (built at first use, or handed over by
    # ``use_name_index``) and each name screened so far
    _name_index: Any = field(default=None, init=False, repr=False, compare=False)
    _screened: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _named: Any = field(default=None, init=False, repr=False, compare=False)
    _content: Any = field(default=None, init=False, repr=False, compare=False)

    def column(self, name: str) -> list[str]:
        """One column of every row ("" where a row has none)."""
        if isinstance(self.rows, ListRows):
            return self.rows.column(name)
        return [r.get(name) or "" for r in self.rows]

    def named_rows(self) -> list[int]:
        """The positions of the rows that name an entity (``counterparty_name``)."""
        if self._named is None:
            self._named = [i for i, n in enumerate(self.column("counterparty_name")) if n.strip()]
        return self._named

    def value(self, position: int, name: str) -> str:
        """Row ``position``'s value in column ``name`` ("" where it has none)."""
        return self.column(name)[position]

    def names(self) -> list[str]:
        """The named rows' names, in ``named_rows`` order (what the name index holds)."""
        names = self.column("counterparty_name")
        return [names[i] for i in self.named_rows()]

    def content(self) -> bytes:
        """A digest of the rows, for the pack's and its rules' versions."""
        if self._content is None:
            rows = self.rows
            self._content = hashlib.sha256(orjson.dumps(
                [rows.header, rows.columns] if isinstance(rows, ListRows) else list(rows),
                option=orjson.OPT_SORT_KEYS)).digest()
        return self._content

    def name_index(self):
        """The ``monitor.core.nameindex.NameIndex`` of the named rows, in ``named_rows`` order."""
        if self._name_index is None:
            from monitor.core.nameindex import NameIndex

            self._name_index = NameIndex(self.names())
        return self._name_index

    def use_name_index(self, index) -> None:
        """Screen with this index (of ``named_rows``' names, e.g. kept from an earlier run)."""
        self._name_index = index
        self._screened.clear()

    def listed(self, values: list) -> set:
        return self.entries.keys() & set(values)

    def contains(self, value: Any, at: float) -> bool:
        spans = self.entries.get(value)
        if not spans:
            return False
        return any(start <= at < end for start, end in spans)

    def listed_row(self, position: int, at: float) -> bool:
        """Whether row ``position`` counts at ``at`` (its own listed_on/expires_on)."""
        if position >= len(self.spans):
            return True
        start, end = self.spans[position]
        return start <= at < end

    def screen(self, name: Any, threshold: float) -> tuple[int, Any] | None:
        """The row whose ``counterparty_name`` the name matches best at ``threshold``
        or above, as (its position in ``rows``, the ``monitor.core.nameindex.Match``), or None.
        The names are indexed when first screened; each distinct name is screened once
        (remembered for the next batches, up to ``SCREEN_MEMO`` names).

        >>> lst = CounterpartyList("s", {"S1": [(0.0, 9e9)]}, [{"counterparty_id": "S1",
        ...                            "counterparty_name": "Northwind Dual-Use Trading LLC"}])
        >>> lst.screen("NORTHWIND DUAL USE TRADING L.L.C.", 90)[0], lst.screen("Southwind Bakery", 90)
        (0, None)
        """
        if not isinstance(name, str) or not name.strip():
            return None
        found = self._screened.get(threshold, {}).get(name, _UNSEEN)
        if found is _UNSEEN:
            self.screen_many([name], threshold)
            found = self._screened[threshold][name]
        return found

    def screen_many(self, names: list, threshold: float) -> list:
        """``screen`` of each name, the names not screened yet screened all at once (a batch's names)."""
        memo = self._screened.setdefault(threshold, {})
        new = list({n: None for n in names if n not in memo and isinstance(n, str) and n.strip()})
        if new:
            if sum(map(len, self._screened.values())) + len(new) > SCREEN_MEMO:
                memo.clear()
            named = self.named_rows()
            for name, match in zip(new, self.name_index().best_many(new, threshold)):
                memo[name] = None if match is None else (named[match.position], match)
        return list(map(memo.get, names))  # a name not screened (None, blank) finds nothing


# --- compiled rules ------------------------------------------------------------

@dataclass
class Template:
    """A message template like ``"{org_id}: {sum_amount:,.0f} CNY"`` with checked fields."""

    text: str
    fields: tuple[str, ...]
    _parts: list = field(default_factory=list, init=False, repr=False, compare=False)  # parsed when first rendered

    def render(self, values: Mapping[str, Any]) -> str:
        if not self._parts:
            self._parts = [(literal, name, spec) for literal, name, spec, _conv in string.Formatter().parse(self.text)]
        out = []
        for literal, name, spec in self._parts:
            out.append(literal)
            if name is None:
                continue
            v = values.get(name)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                out.append("—")
                continue
            try:
                text = format(v, spec or "")
            except (ValueError, TypeError, OverflowError):
                text = str(v)
            out.append(text if len(text) <= MAX_FIELD_CHARS else text[: MAX_FIELD_CHARS - 1] + "…")
        return "".join(out)


@dataclass
class CompiledRule:
    """A rule ready for the scorer."""

    id: str
    title: str
    risk: Risk
    severity: str
    status: str
    kind: Literal["event", "window", "total"]
    when: Expr
    exceptions: list[tuple[ExceptionSpec, Expr]]
    key: tuple[str, ...]
    message: Template
    display: tuple[str, ...]  # event fields stored with state entries for messages
    spec: RuleSpec
    window_seconds: float = 0.0
    lateness_seconds: float = 0.0
    having: Expr | None = None
    aggregates: tuple[tuple[str, str | None], ...] = ()
    agg_fields: tuple[str, ...] = ()  # event fields kept per window entry for aggregates
    min_count: int = 0  # windows smaller than this cannot satisfy `having`
    add: Expr | None = None
    reference: Expr | None = None
    value_field: str = "amount"
    expires_seconds: float = 0.0

    @property
    def score(self) -> float:
        return SEVERITY_SCORE[self.severity]


@dataclass
class RulePack:
    """Everything the scorer and the alerting need from a rules folder."""

    rules: list[CompiledRule]
    risks: dict[str, Risk]
    posts: dict[str, Post]
    params: dict[str, Param]
    lists: dict[str, CounterpartyList]
    version: str  # content hash of every file that made it
    warnings: list[Problem] = field(default_factory=list)
    detectors: list = field(default_factory=list)  # CompiledDetector, from detectors.yaml
    controls: list = field(default_factory=list)  # CompiledControl, from review_controls.yaml

    def rule(self, rule_id: str) -> CompiledRule:
        """A rule, or a detector or a review control (which alert like one), by id."""
        return next(r for r in [*self.rules, *self.detectors, *self.controls] if r.id == rule_id)

    def only(self, rule_ids: set[str]) -> RulePack:
        """A copy scoring just the given rules, detectors and controls (for their own test cases)."""
        return RulePack([r for r in self.rules if r.id in rule_ids], self.risks, self.posts,
                        self.params, self.lists, self.version, self.warnings,
                        [d for d in self.detectors if d.id in rule_ids], [c for c in self.controls if c.id in rule_ids])

    def rules_alone(self) -> RulePack:
        """A copy scoring the rules, without detectors or review controls."""
        return self.only({r.id for r in self.rules})

    def with_drafts(self) -> RulePack:
        """A copy in which draft rules, detectors and controls run as shadow ones
        (alerts, no tickets): what a backtest or a diff scores."""
        def shadowed(items):
            return [dataclasses.replace(r, status="shadow") if r.status == "draft" else r for r in items]

        return RulePack(shadowed(self.rules), self.risks, self.posts, self.params, self.lists, self.version,
                        self.warnings, shadowed(self.detectors), shadowed(self.controls))

    def post_for(self, risk: Risk) -> Post | None:
        return self.posts.get(risk.owner)


def _key_path_ok(path: str) -> bool:
    return path in EVENT_FIELD_TYPES and EVENT_FIELD_TYPES[path] != "time"


def _format_spec_problem(spec: str) -> str | None:
    """Why a message's format spec is refused, or None.

    >>> _format_spec_problem(",.0f") is None, _format_spec_problem(">20000000")
    (True, 'is too wide: a width of at most 40')
    """
    m = _FORMAT_SPEC.match(spec)
    if m is None:
        return "is not one this language allows: [[fill]align][sign][#][0][width][,][.precision][s|d|f|e|g|%], e.g. ',.0f'"
    if m["width"] and (len(m["width"]) > 3 or int(m["width"]) > MAX_FORMAT_WIDTH):
        return f"is too wide: a width of at most {MAX_FORMAT_WIDTH}"
    if m["precision"] and (len(m["precision"]) > 3 or int(m["precision"]) > MAX_FORMAT_PRECISION):
        return f"is too precise: a precision of at most {MAX_FORMAT_PRECISION}"
    return None


def _compile_template(text: str, allowed: set[str]) -> tuple[Template | None, str | None]:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as err:
        return None, f"message: {err}"
    names = []
    for _lit, name, spec, conv in parsed:
        if name is None:
            continue
        if conv:
            return None, f"message: '!{conv}' conversions are not allowed"
        if name == "" or name not in allowed:
            close = difflib.get_close_matches(name, sorted(allowed), n=1, cutoff=0.75)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            return None, f"message: unknown field '{name}'{hint}"
        if "{" in (spec or ""):
            return None, "message: nested fields in a format spec are not allowed"
        if spec and (problem := _format_spec_problem(spec)):
            return None, f"message: format spec '{{{name}:{spec}}}' {problem}"
        names.append(name)
    return Template(text, tuple(dict.fromkeys(names))), None


def compile_rule(
    doc: Document, path: tuple, data: Any, risks: dict[str, Risk], params: dict[str, Param],
    lists: dict[str, CounterpartyList], today: dt.date, problems: list[Problem],
) -> CompiledRule | None:
    """Compile one rule item; append Problems and return None when it is invalid."""
    rule_id = data.get("rule") if isinstance(data, dict) else None
    rid = rule_id if isinstance(rule_id, str) else None
    spec = convert(doc, path, data, RuleSpec, rid, problems)
    if spec is None:
        return None
    start = len(problems)

    def problem(sub: tuple, message: str, key: bool = False):
        line, col = doc.where(path + sub, key=key)
        problems.append(Problem(doc.file, line, col, message, spec.rule))

    def expr(sub: tuple, source: str, scope: Scope, want: str | None = "bool") -> Expr | None:
        try:
            return compile_expr(source, scope, want)
        except ExprError as err:
            line, col = doc.expr_where(path + sub, err)
            problems.append(Problem(doc.file, line, col, err.message, spec.rule))
            return None

    if not RULE_ID.match(spec.rule):
        problem(("rule",), f"rule id '{spec.rule}' must be snake_case with a domain prefix (fin_, inv_, proc_, gov_)")
    risk = risks.get(spec.risk)
    if risk is None:
        problem(("risk",), f"risk '{spec.risk}' is not in risk_list.yaml")
    if spec.window and spec.total:
        problem(("total",), "a rule has either a window or a total, not both")
    event_scope = Scope.for_events(params, lists)
    when = expr(("when",), spec.when, event_scope)
    exceptions = []
    for i, exc in enumerate(spec.exceptions):
        compiled = expr(("exceptions", i, "where"), exc.where, event_scope)
        if exc.expires < today:
            line, col = doc.where(path + ("exceptions", i, "expires"))
            problems.append(Problem(doc.file, line, col, f"exception '{exc.name}' expired on {exc.expires} and no longer applies",
                                    spec.rule, "warning"))
            continue
        if compiled is not None:
            exceptions.append((exc, compiled))

    kind = "window" if spec.window else "total" if spec.total else "event"
    by = spec.window.by if spec.window else spec.total.by if spec.total else (spec.key or ["org_id", "source", "event_id"])
    by_base = ("window", "by") if spec.window else ("total", "by") if spec.total else ("key",)
    for i, p in enumerate(by):
        if not _key_path_ok(p):
            close = difflib.get_close_matches(p, [f for f in EVENT_FIELD_TYPES if _key_path_ok(f)], n=1, cutoff=0.75)
            problem(by_base + (i,), f"unknown field '{p}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    key = tuple(by)
    if "org_id" not in key:
        line, col = doc.where(path + by_base)
        problems.append(Problem(doc.file, line, col, "key has no org_id: scored in one process only (the Kafka "
                                "worker partitions the stream by org and refuses such rules)", spec.rule, "warning"))

    extra: dict[str, Any] = {}
    message_fields = set(EVENT_FIELD_TYPES) - {"occurred_at"}
    if spec.window:
        try:
            extra["window_seconds"] = parse_duration(spec.window.within)
            extra["lateness_seconds"] = parse_duration(spec.window.lateness)
        except ValueError as err:
            problem(("window", "within"), str(err))
        having_scope = Scope({p: EVENT_FIELD_TYPES[p] for p in key if _key_path_ok(p)}, params, lists, aggregates=True,
                             org_field="org_id" if "org_id" in key else None)
        having = expr(("window", "having"), spec.window.having, having_scope)
        if having is not None:
            extra["having"] = having
            extra["aggregates"] = tuple(sorted(having.aggregates, key=lambda a: (a[0], a[1] or "")))
            agg_fields = {f for _fn, f in having.aggregates if f}
            if ("cycle", None) in having.aggregates:
                agg_fields |= set(CYCLE_FIELDS)  # the edges a cycle is made of
            extra["agg_fields"] = tuple(sorted(agg_fields))
            extra["min_count"] = required_minimum(spec.window.having)
            message_fields |= {aggregate_column(fn, f) for fn, f in having.aggregates} | {"count"}
    elif spec.total:
        try:
            extra["expires_seconds"] = parse_duration(spec.total.expires)
        except ValueError as err:
            problem(("total", "expires"), str(err))
        if spec.total.value not in EVENT_FIELD_TYPES or EVENT_FIELD_TYPES[spec.total.value] != NUM:
            problem(("total", "value"), f"total value must be a num field, got '{spec.total.value}'")
        extra["value_field"] = spec.total.value
        extra["add"] = expr(("total", "add"), spec.total.add, event_scope)
        extra["reference"] = expr(("total", "reference"), spec.total.reference, event_scope)
        having_scope = Scope({p: EVENT_FIELD_TYPES[p] for p in key if _key_path_ok(p)}, params, lists,
                             aggregate_fields={"total": NUM, "reference": NUM, "count": NUM},
                             org_field="org_id" if "org_id" in key else None)
        extra["having"] = expr(("total", "having"), spec.total.having, having_scope)
        message_fields |= {"total", "reference", "count"}
    if when is not None and when.screens and kind == "event":
        message_fields |= {"screened"}  # the entry matched, its score and why
    if when is not None and when.links and kind == "event":
        message_fields |= {"linked"}  # who the counterparty is linked to, and by what
    if kind == "window" and ("cycle", None) in extra.get("aggregates", ()):
        message_fields |= {"cycle_path"}  # the parties the goods went round
    if kind == "window" and ("linked", "counterparty_id") in extra.get("aggregates", ()):
        message_fields |= {"linked"}  # which of the group's counterparties share what
    template, err = _compile_template(spec.message, message_fields)
    if err:
        problem(("message",), err)
    if any(p.level == "error" for p in problems[start:]) or when is None or template is None or risk is None:
        return None
    display = ()
    if kind != "event":
        display = tuple(f for f in template.fields if f in EVENT_FIELD_TYPES and f not in key)
        display = tuple(dict.fromkeys(("org_id", *display)))
    return CompiledRule(
        id=spec.rule, title=spec.title, risk=risk, severity=spec.severity or risk.severity,
        status=spec.status, kind=kind, when=when, exceptions=exceptions, key=key, message=template,
        display=display, spec=spec, **extra,
    )


def rule_fingerprint(rule: Any, pack: RulePack) -> str:
    """What a rule's state depends on: its own definition and the parameters and
    lists it reads. A reload keeps a rule's state while this stays the same."""
    h = hashlib.sha256(orjson.dumps(msgspec.to_builtins(rule.spec), option=orjson.OPT_SORT_KEYS))
    sources = _rule_sources(rule) if isinstance(rule, CompiledRule) else rule.spec.when
    if isinstance(rule, CompiledRule) and rule.spec.window:
        sources += " " + rule.spec.window.having
    if isinstance(rule, CompiledRule) and rule.spec.total:
        sources += " " + rule.spec.total.having
    for name in sorted(pack.params):
        if re.search(rf"\b{re.escape(name)}\b", sources):
            param = pack.params[name]
            h.update(orjson.dumps([name, param.default, param.per_org], option=orjson.OPT_SORT_KEYS, default=str))
    for name in sorted(pack.lists):
        if f"lists.{name}" in sources:
            h.update(orjson.dumps(name) + pack.lists[name].content())
    meta = getattr(rule, "trained_meta", None)
    if meta:
        h.update(orjson.dumps(meta, option=orjson.OPT_SORT_KEYS, default=str))
    return h.hexdigest()[:16]


def changed_rules(old: RulePack, new: RulePack) -> set[str]:
    """Ids of the rules and detectors whose state cannot carry over from ``old`` to ``new``."""
    before = {r.id: rule_fingerprint(r, old) for r in [*old.rules, *old.detectors]}
    after = {r.id: rule_fingerprint(r, new) for r in [*new.rules, *new.detectors]}
    # a review control's state holds for as long as its entry and the change tolerance it uses stay the same
    before |= {c.id: (orjson.dumps(msgspec.to_builtins(c.spec), option=orjson.OPT_SORT_KEYS), c.change)
               for c in old.controls}
    after |= {c.id: (orjson.dumps(msgspec.to_builtins(c.spec), option=orjson.OPT_SORT_KEYS), c.change)
              for c in new.controls}
    return {i for i in before if after.get(i) != before[i]}


def _rule_sources(rule: CompiledRule) -> str:
    s = rule.spec
    parts = [s.when, *(e.where for e in s.exceptions)]
    if s.total:
        parts += [s.total.add, s.total.reference]
    return " ".join(parts)


def pack_version(docs: list[Document], lists: dict[str, CounterpartyList]) -> str:
    """Content hash of a pack: the same files give the same version."""
    h = hashlib.sha256()
    # By file name, not path: the same folder gives the same version wherever it lies.
    for doc in sorted(docs, key=lambda d: d.file.rsplit("/", 1)[-1]):
        h.update(doc.file.rsplit("/", 1)[-1].encode())
        h.update(orjson.dumps(doc.data, default=str, option=orjson.OPT_SORT_KEYS))
    for name in sorted(lists):
        h.update(name.encode())
        h.update(lists[name].content())
    return h.hexdigest()[:12]
