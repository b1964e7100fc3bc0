"""The rule expression language: parsed once, type-checked, evaluated on columns.

Expressions use Python's syntax, parsed with the standard ``ast`` module and
then checked against a whitelist: field names, constants, comparisons,
``and``/``or``/``not``, ``+ - * / %``, ``in`` against a literal list or a CSV
list, parameter look-ups and a fixed set of helpers. Nothing is ever passed to
``eval``; anything outside the whitelist (calls of unknown names, attribute
walks, lambdas, comprehensions, ``**``) is an error with its column.

The checked tree compiles to a function over a batch of rows, evaluated with
numpy on whole columns. ``and``/``or`` short-circuit per row: the right side is
evaluated only on the rows the left side leaves undecided.

>>> scope = Scope.for_events(params={"limit": Param("limit", 500000.0)})
>>> expr = compile_expr('type == "payment" and amount > limit', scope)
>>> expr.fields == {"type", "amount"}
True
>>> compile_expr('amount > "x"', scope)
Traceback (most recent call last):
...
monitor.core.rulelang.ExprError: 1:1: cannot compare num with str
"""

from __future__ import annotations

import ast
import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from monitor.core.event import ATTRIBUTE_TYPES

__all__ = [
    "AGGREGATES",
    "Columns",
    "Expr",
    "ExprError",
    "HELPERS",
    "ListRef",
    "Param",
    "Scope",
    "compile_expr",
]

NUM, STR, BOOL, TIME = "num", "str", "bool", "time"

EVENT_FIELD_TYPES: dict[str, str] = {
    "event_id": STR,
    "source": STR,
    "domain": STR,
    "type": STR,
    "occurred_at": TIME,
    "org_id": STR,
    "amount": NUM,
    "currency": STR,
    "counterparty_id": STR,
    "counterparty_name": STR,
    **{f"attributes.{name}": kind for name, kind in ATTRIBUTE_TYPES.items()},
}

# Aggregates allowed in a window's `having`: name -> whether it takes a field.
AGGREGATES = {"count": False, "sum": True, "min": True, "max": True, "distinct": True,
              # over a tender lot's bids (monitor.core.bidscreens, docs/bid-screens.md)
              "cv": True, "diffp": True, "rd": True, "rdnor": True, "kurtosis": True, "skewness": True,
              "ties": True, "steps": True,
              # how many of the group's counterparties share master data with another (monitor.core.parties)
              "linked": True,
              # the trade cycle a goods_transfer closes (monitor.core.tradegraph): written bare, like count
              "cycle": False}
TEXT_AGGREGATES = ("distinct", "linked")  # the aggregates that also take a text field
LINK_KINDS = ("employee",)  # what linked(counterparty_id, KIND) asks about

MAX_EXPRESSION_LENGTH = 2000


class ExprError(ValueError):
    """A rule expression is invalid; ``line`` and ``col`` are 1-based within it."""

    def __init__(self, message: str, line: int = 1, col: int = 1):
        super().__init__(f"{line}:{col}: {message}")
        self.message, self.line, self.col = message, line, col


@dataclass(frozen=True)
class Param:
    """A named rule parameter: a number, or a mapping str -> number indexed
    by a field (``tender_threshold[attributes.category]``), overridable per org."""

    name: str
    default: float | Mapping[str, float]
    per_org: Mapping[str, float | Mapping[str, float]] = field(default_factory=dict)

    @property
    def is_map(self) -> bool:
        return isinstance(self.default, Mapping)

    def value_for(self, org_id: str | None) -> float | Mapping[str, float]:
        override = self.per_org.get(org_id) if org_id is not None else None
        if override is None:
            return self.default
        if self.is_map:
            return {**self.default, **override}
        return override


class ListRef(Protocol):
    """A counterparty list: membership of a value at a business time."""

    def listed(self, values: list) -> set: ...  # the values that appear on the list at all

    def contains(self, value: Any, at: float) -> bool: ...


class Columns(Protocol):
    """What an expression reads: columns of the rows it is evaluated on."""

    def column(self, path: str, rows: np.ndarray) -> np.ndarray: ...

    def equals(self, path: str, value: Any, rows: np.ndarray) -> np.ndarray: ...

    def linked(self, rows: np.ndarray, party_ids: list, departments: list | None) -> np.ndarray: ...


@dataclass
class Scope:
    """The names an expression may use and their types."""

    fields: dict[str, str]
    params: dict[str, Param] = field(default_factory=dict)
    lists: dict[str, ListRef] = field(default_factory=dict)
    aggregates: bool = False  # True inside a window's `having`
    aggregate_fields: dict[str, str] = field(default_factory=dict)  # name -> type
    org_field: str | None = "org_id"  # where per-org parameters find the org

    @classmethod
    def for_events(cls, params=None, lists=None) -> Scope:
        return cls(dict(EVENT_FIELD_TYPES), dict(params or {}), dict(lists or {}))


@dataclass(frozen=True)
class Expr:
    """A compiled expression: evaluate with ``expr.fn(columns, rows)``."""

    source: str
    type: str
    fn: Callable[[Columns, np.ndarray], np.ndarray]
    fields: frozenset[str]  # event (or key) fields read
    aggregates: frozenset[tuple[str, str | None]]  # (function, field) pairs in a having
    constant: Any = None  # set when the whole expression is a constant
    screens: tuple[tuple[str | None, str, float], ...] = ()  # screened(field, lists.NAME, threshold) calls
    links: tuple[tuple[str | None, str | None], ...] = ()  # linked(field, "employee"[, department field]) calls


def compile_expr(source: str, scope: Scope, want: str | None = BOOL) -> Expr:
    """Parse, check and compile ``source``; raise ExprError naming the column."""
    if not isinstance(source, str) or not source.strip():
        raise ExprError("expression is empty")
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExprError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        # Parenthesised so that a multi-line YAML block parses as one expression.
        tree = ast.parse("(" + source + "\n)", mode="eval")
    except SyntaxError as err:
        lines = source.split("\n")
        line, col = err.lineno or 1, (err.offset or 1) - (1 if (err.lineno or 1) == 1 else 0)
        if line > len(lines):  # at the closing parenthesis we added: the expression ended too soon
            line, col = len(lines), len(lines[-1].rstrip()) + 1
            raise ExprError("syntax error: the expression ends too soon", line, col) from None
        raise ExprError(f"syntax error: {err.msg}", line, max(col, 1)) from None
    except (RecursionError, MemoryError, ValueError):
        raise ExprError("expression is too deeply nested or malformed") from None
    checker = _Compiler(source, scope)
    try:
        node = checker.visit(tree.body)
    except RecursionError:
        raise ExprError("expression is too deeply nested") from None
    if want is not None and node.type != want:
        raise ExprError(f"expression must be {want}, got {node.type}")
    return Expr(source, node.type, node.fn, frozenset(checker.fields), frozenset(checker.aggs), node.const,
                tuple(checker.screens), tuple(checker.links))


# --- compilation -----------------------------------------------------------

@dataclass
class _Node:
    type: str
    fn: Callable[[Columns, np.ndarray], np.ndarray]
    const: Any = None  # python value when the node is a constant
    is_const: bool = False
    path: str | None = None  # set when the node reads one field as it is
    cost: int = 1  # rough cost per row, to evaluate cheap conjuncts first


def _const(value: Any, kind: str) -> _Node:
    if kind == STR or kind == BOOL:
        dtype = object if kind == STR else bool

        def fn(cols, rows, v=value, d=dtype):
            out = np.empty(len(rows), dtype=d)
            out[:] = v
            return out
    else:
        def fn(cols, rows, v=float(value)):
            return np.full(len(rows), v)
    return _Node(kind, fn, value, True, cost=0)


_CMP = {
    ast.Eq: np.equal, ast.NotEq: np.not_equal, ast.Lt: np.less,
    ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal,
}
_ARITH = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide, ast.Mod: np.mod}
_NODE_NAMES = {
    ast.Lambda: "lambda", ast.ListComp: "comprehension", ast.SetComp: "comprehension",
    ast.DictComp: "comprehension", ast.GeneratorExp: "comprehension", ast.IfExp: "conditional expression",
    ast.NamedExpr: "assignment", ast.Await: "await", ast.Yield: "yield", ast.Starred: "starred expression",
    ast.JoinedStr: "f-string", ast.Dict: "dict literal", ast.Set: "set literal",
}


class _Compiler:
    def __init__(self, source: str, scope: Scope):
        self.source, self.scope = source, scope
        self.fields: set[str] = set()
        self.aggs: set[tuple[str, str | None]] = set()
        self.screens: list[tuple[str | None, str, float]] = []  # (name field, list, threshold) of screened()
        self.links: list[tuple[str | None, str | None]] = []  # (party field, department field) of linked()
        self._line_starts = [0]
        for i, ch in enumerate(source):
            if ch == "\n":
                self._line_starts.append(i + 1)

    def error(self, node: ast.AST, message: str) -> ExprError:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 1)
        # ast columns are UTF-8 byte offsets in the wrapped text "(" + source.
        text_line = ("(" + self.source).split("\n")[line - 1] if line >= 1 else ""
        col_chars = len(text_line.encode()[:col].decode(errors="ignore"))
        if line == 1:
            col_chars -= 1
        return ExprError(message, line, col_chars + 1)

    def visit(self, node: ast.AST) -> _Node:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            what = _NODE_NAMES.get(type(node), type(node).__name__)
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
                what = "'**' (power)"
            raise self.error(node, f"{what} is not allowed in a rule expression")
        return method(node)

    # leaves
    def visit_Constant(self, node: ast.Constant) -> _Node:
        v = node.value
        if isinstance(v, bool):
            return _const(v, BOOL)
        if isinstance(v, (int, float)):
            if isinstance(v, int) and not -2**63 <= v < 2**63:
                raise self.error(node, "number out of range: integers must fit in 64 bits")
            if isinstance(v, float) and not math.isfinite(v):
                raise self.error(node, "number is not finite")
            return _const(v, NUM)
        if isinstance(v, str):
            return _const(v, STR)
        raise self.error(node, f"constant {v!r} is not allowed (use missing(...) for absent values)")

    def visit_Name(self, node: ast.Name) -> _Node:
        name = node.id
        if name.startswith("_"):
            raise self.error(node, f"unknown name '{name}'")
        if name in self.scope.fields:
            return self._field(node, name)
        if self.scope.aggregates and name in ("count", "cycle"):
            self.aggs.add((name, None))
            return self._aggregate_column(node, name, NUM)
        if name in self.scope.aggregate_fields:
            return self._aggregate_column(node, name, self.scope.aggregate_fields[name])
        if name in self.scope.params:
            param = self.scope.params[name]
            if param.is_map:
                raise self.error(node, f"parameter '{name}' is a table: index it, e.g. {name}[attributes.category]")
            return self._param(node, param, None)
        raise self.error(node, f"unknown field '{name}'{self._suggest(name)}")

    def _suggest(self, name: str) -> str:
        known = [*self.scope.fields, *self.scope.params, *self.scope.aggregate_fields]
        if self.scope.aggregates:
            known += ["count", "cycle"]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        return f" (did you mean '{close[0]}'?)" if close else ""

    def visit_Attribute(self, node: ast.Attribute) -> _Node:
        if not isinstance(node.value, ast.Name) or node.value.id not in ("attributes", "lists"):
            raise self.error(node, "only attributes.NAME and lists.NAME may use a dot")
        path = f"{node.value.id}.{node.attr}"
        if node.value.id == "lists":
            raise self.error(node, f"{path} can only be used after 'in'")
        if path not in self.scope.fields:
            raise self.error(node, f"unknown field '{path}'{self._suggest(path)}")
        return self._field(node, path)

    def _field(self, node: ast.AST, path: str) -> _Node:
        self.fields.add(path)
        kind = self.scope.fields[path]

        def fn(cols, rows, p=path):
            return cols.column(p, rows)
        # Attributes are read from each event's dict; top-level fields are cached columns.
        return _Node(kind, fn, path=path, cost=6 if path.startswith("attributes.") else 1)

    def _aggregate_column(self, node: ast.AST, name: str, kind: str) -> _Node:
        def fn(cols, rows, p=name):
            return cols.column(p, rows)
        return _Node(kind, fn)

    def _param(self, node: ast.AST, param: Param, index: _Node | None) -> _Node:
        org_field = self.scope.org_field
        if not param.per_org or org_field is None:
            if index is None:
                return _const(param.default, NUM)
            table = param.default

            def fn(cols, rows, t=table, ix=index.fn):
                keys = ix(cols, rows)
                return np.fromiter((t.get(k, np.nan) for k in keys), float, len(rows))
            return _Node(NUM, fn, cost=index.cost + 2)
        self.fields.add(org_field)

        def fn(cols, rows, p=param, ix=None if index is None else index.fn, of=org_field):
            orgs = cols.column(of, rows)
            if ix is None:
                return np.fromiter((p.value_for(o) for o in orgs), float, len(rows))
            keys = ix(cols, rows)
            return np.fromiter((p.value_for(o).get(k, np.nan) for o, k in zip(orgs, keys)), float, len(rows))
        return _Node(NUM, fn, cost=4 + (0 if index is None else index.cost))

    def visit_Subscript(self, node: ast.Subscript) -> _Node:
        if not isinstance(node.value, ast.Name) or node.value.id not in self.scope.params:
            raise self.error(node, "only a table parameter can be indexed, e.g. tender_threshold[attributes.category]")
        param = self.scope.params[node.value.id]
        if not param.is_map:
            raise self.error(node, f"parameter '{param.name}' is a number, not a table")
        index = self.visit(node.slice)
        if index.type != STR:
            raise self.error(node.slice, f"a table is indexed by str, got {index.type}")
        if index.is_const and index.const not in param.default:
            raise self.error(node.slice, f"'{index.const}' is not a key of {param.name} ({', '.join(param.default)})")
        return self._param(node, param, index)

    # operators
    def visit_BoolOp(self, node: ast.BoolOp) -> _Node:
        parts = [self.visit(v) for v in node.values]
        for part, v in zip(parts, node.values):
            if part.type != BOOL:
                raise self.error(v, f"'{'and' if isinstance(node.op, ast.And) else 'or'}' needs bool operands, got {part.type}")
        # Operands have no side effects and never raise, so the cheap ones can
        # go first: later ones then run only on the rows still undecided.
        parts = sorted(parts, key=lambda p: p.cost)
        fns = [p.fn for p in parts]
        cost = sum(p.cost for p in parts)
        if isinstance(node.op, ast.And):
            def fn(cols, rows, fns=fns):
                out = np.ones(len(rows), bool)
                live = np.arange(len(rows))
                for f in fns:
                    if not len(live):
                        break
                    res = f(cols, rows[live])
                    out[live[~res]] = False
                    live = live[res]
                return out
        else:
            def fn(cols, rows, fns=fns):
                out = np.zeros(len(rows), bool)
                live = np.arange(len(rows))
                for f in fns:
                    if not len(live):
                        break
                    res = f(cols, rows[live])
                    out[live[res]] = True
                    live = live[~res]
                return out
        return _Node(BOOL, fn, cost=cost)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> _Node:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            if operand.type != BOOL:
                raise self.error(node, f"'not' needs a bool, got {operand.type} (use missing(...) to test for absence)")
            return _Node(BOOL, lambda cols, rows, f=operand.fn: ~f(cols, rows), cost=operand.cost)
        if isinstance(node.op, ast.USub):
            if operand.type != NUM:
                raise self.error(node, f"'-' needs a num, got {operand.type}")
            if operand.is_const:
                return _const(-operand.const, NUM)
            return _Node(NUM, lambda cols, rows, f=operand.fn: -f(cols, rows), cost=operand.cost)
        raise self.error(node, f"operator {type(node.op).__name__} is not allowed")

    def visit_BinOp(self, node: ast.BinOp) -> _Node:
        op = _ARITH.get(type(node.op))
        if op is None:
            raise self.error(node, "'**' (power) is not allowed in a rule expression"
                             if isinstance(node.op, ast.Pow) else f"operator {type(node.op).__name__} is not allowed")
        left, right = self.visit(node.left), self.visit(node.right)
        for side, n in ((left, node.left), (right, node.right)):
            if side.type != NUM:
                raise self.error(n, f"arithmetic needs num operands, got {side.type}")

        def fn(cols, rows, op=op, lf=left.fn, rf=right.fn):
            with np.errstate(divide="ignore", invalid="ignore"):
                return op(lf(cols, rows), rf(cols, rows))
        return _Node(NUM, fn, cost=left.cost + right.cost)

    def visit_Compare(self, node: ast.Compare) -> _Node:
        left_ast = node.left
        parts = []
        for op, right_ast in zip(node.ops, node.comparators):
            parts.append(self._compare(node, op, left_ast, right_ast))
            left_ast = right_ast
        if len(parts) == 1:
            return parts[0]
        fns = [p.fn for p in parts]

        def fn(cols, rows, fns=fns):
            out = fns[0](cols, rows)
            for f in fns[1:]:
                out &= f(cols, rows)
            return out
        return _Node(BOOL, fn, cost=sum(p.cost for p in parts))

    def _compare(self, node, op, left_ast, right_ast) -> _Node:
        if isinstance(op, (ast.In, ast.NotIn)):
            return self._membership(node, left_ast, right_ast, negate=isinstance(op, ast.NotIn))
        if isinstance(op, (ast.Is, ast.IsNot)):
            raise self.error(node, "'is' is not allowed; use == or missing(...)")
        left, right = self.visit(left_ast), self.visit(right_ast)
        if left.type != right.type:
            raise self.error(node, f"cannot compare {left.type} with {right.type}")
        if left.type == TIME:
            raise self.error(node, "compare times through helpers, e.g. hour(occurred_at) < 8")
        if left.type in (STR, BOOL) and not isinstance(op, (ast.Eq, ast.NotEq)):
            raise self.error(node, f"{left.type} values can only be compared with == or !=")
        ufunc = _CMP[type(op)]
        if left.type == STR and right.is_const:
            const = right.const
            path = left.path
            if path is not None:
                if isinstance(op, ast.Eq):
                    return _Node(BOOL, lambda cols, rows, p=path, c=const: cols.equals(p, c, rows), cost=left.cost)
                return _Node(BOOL, lambda cols, rows, p=path, c=const: ~cols.equals(p, c, rows), cost=left.cost)
            if isinstance(op, ast.Eq):
                return _Node(BOOL, lambda cols, rows, f=left.fn, c=const: f(cols, rows) == c, cost=left.cost)
            return _Node(BOOL, lambda cols, rows, f=left.fn, c=const: f(cols, rows) != c, cost=left.cost)

        def fn(cols, rows, u=ufunc, lf=left.fn, rf=right.fn, is_str=left.type == STR):
            with np.errstate(invalid="ignore"):
                out = u(lf(cols, rows), rf(cols, rows))
            return out.astype(bool) if is_str else out
        return _Node(BOOL, fn, cost=left.cost + right.cost)

    def _membership(self, node, left_ast, right_ast, negate: bool) -> _Node:
        left = self.visit(left_ast)
        if isinstance(right_ast, ast.Attribute) and isinstance(right_ast.value, ast.Name) and right_ast.value.id == "lists":
            name = right_ast.attr
            if name not in self.scope.lists:
                known = ", ".join(sorted(self.scope.lists)) or "none"
                raise self.error(right_ast, f"unknown list 'lists.{name}' (known: {known})")
            if left.type != STR:
                raise self.error(left_ast, f"list membership needs a str, got {left.type}")
            lst = self.scope.lists[name]
            self.fields.add("occurred_at")

            def fn(cols, rows, lf=left.fn, lst=lst, neg=negate):
                values = lf(cols, rows).tolist()
                out = np.zeros(len(rows), bool)
                listed = lst.listed(values)  # usually empty: no per-row work then
                if listed:
                    times = cols.column("occurred_at", rows)
                    for i, v in enumerate(values):
                        if v in listed and lst.contains(v, times[i]):
                            out[i] = True
                return ~out if neg else out
            return _Node(BOOL, fn, cost=left.cost + 2)
        if not isinstance(right_ast, (ast.Tuple, ast.List)):
            raise self.error(right_ast, "'in' needs a literal list like (\"a\", \"b\") or lists.NAME")
        items = [self.visit(e) for e in right_ast.elts]
        for item, e in zip(items, right_ast.elts):
            if not item.is_const:
                raise self.error(e, "items of an 'in' list must be constants")
            if item.type != left.type:
                raise self.error(e, f"list item is {item.type}, but the value is {left.type}")
        values = frozenset(i.const for i in items)
        if left.path is not None and left.type == STR:
            # Per-value equality masks are cached per batch and shared between rules.
            def fn(cols, rows, p=left.path, s=tuple(sorted(values)), neg=negate):
                out = np.zeros(len(rows), bool)
                for v in s:
                    out |= cols.equals(p, v, rows)
                return ~out if neg else out
            return _Node(BOOL, fn, cost=left.cost)

        def fn(cols, rows, lf=left.fn, s=values, neg=negate):
            out = np.fromiter((v in s for v in lf(cols, rows)), bool, len(rows))
            return ~out if neg else out
        return _Node(BOOL, fn, cost=left.cost + 2)

    def visit_Call(self, node: ast.Call) -> _Node:
        if not isinstance(node.func, ast.Name):
            raise self.error(node, "only helper functions may be called, e.g. hour(occurred_at)")
        name = node.func.id
        if node.keywords:
            raise self.error(node, f"{name}() takes no keyword arguments")
        if self.scope.aggregates and name in AGGREGATES:
            return self._aggregate(node, name)
        if name == "screened":
            return self._screened(node)
        if name == "linked":
            return self._linked(node)
        if name in TIME_HELPERS:
            if len(node.args) != 1:
                raise self.error(node, f"{name}() takes 1 argument(s), got {len(node.args)}")
            arg = self.visit(node.args[0])
            if arg.type != TIME:
                raise self.error(node.args[0], f"{name}() needs time, got {arg.type}")
            self.fields.add("occurred_at")
            return _Node(NUM, lambda cols, rows, p=f"occurred_at:{name}": cols.column(p, rows), cost=2)
        helper = HELPERS.get(name)
        if helper is None:
            known = ", ".join(sorted([*HELPERS, *TIME_HELPERS]))
            raise self.error(node, f"unknown helper '{name}' (known: {known})")
        if len(node.args) != len(helper.args):
            raise self.error(node, f"{name}() takes {len(helper.args)} argument(s), got {len(node.args)}")
        args = [self.visit(a) for a in node.args]
        for arg, a, allowed in zip(args, node.args, helper.args):
            if arg.type not in allowed:
                raise self.error(a, f"{name}() needs {' or '.join(allowed)}, got {arg.type}")
            if helper.const_args and a is not node.args[0] and not arg.is_const:
                raise self.error(a, f"{name}() needs a constant here")
        fns = [a.fn for a in args]
        kinds = [a.type for a in args]

        def fn(cols, rows, impl=helper.impl, fns=fns, kinds=kinds):
            return impl(*[f(cols, rows) for f in fns], kinds=kinds)
        return _Node(helper.returns, fn, cost=2 + sum(a.cost for a in args))

    def _screened(self, node: ast.Call) -> _Node:
        """``screened(counterparty_name, lists.sanctions, name_match_threshold)``: the name
        matches a list entry's counterparty_name (normalised, across scripts, scored by
        ``monitor.core.names``) at the threshold or above, and that entry is listed at the
        event's time."""
        if len(node.args) != 3:
            raise self.error(node, f"screened() takes 3 arguments (name, lists.NAME, threshold), got {len(node.args)}")
        name_ast, list_ast, threshold_ast = node.args
        value = self.visit(name_ast)
        if value.type != STR:
            raise self.error(name_ast, f"screened() needs a str name, got {value.type}")
        if not (isinstance(list_ast, ast.Attribute) and isinstance(list_ast.value, ast.Name)
                and list_ast.value.id == "lists"):
            raise self.error(list_ast, "screened() screens against a list: lists.NAME")
        if list_ast.attr not in self.scope.lists:
            known = ", ".join(sorted(self.scope.lists)) or "none"
            raise self.error(list_ast, f"unknown list 'lists.{list_ast.attr}' (known: {known})")
        threshold = self.visit(threshold_ast)
        if threshold.type != NUM or not threshold.is_const or not 50 <= float(threshold.const) <= 100:
            raise self.error(threshold_ast, "screened() needs a constant threshold between 50 and 100 (a score out of 100)")
        lst, cut = self.scope.lists[list_ast.attr], float(threshold.const)
        self.fields.add("occurred_at")
        self.screens.append((value.path, list_ast.attr, cut))

        def fn(cols, rows, lf=value.fn, lst=lst, cut=cut):
            found = lst.screen_many(lf(cols, rows).tolist(), cut)
            out = np.zeros(len(rows), bool)
            hits = [i for i, f in enumerate(found) if f is not None]
            if hits:
                times = cols.column("occurred_at", rows)
                for i in hits:
                    out[i] = lst.listed_row(found[i][0], times[i])
            return out
        return _Node(BOOL, fn, cost=value.cost + 4)

    def _linked(self, node: ast.Call) -> _Node:
        """``linked(counterparty_id, "employee")``: the counterparty's master data shares a
        phone, bank account, address or identity number with an employee of the event's
        org (``monitor.core.parties``); ``linked(counterparty_id, "employee",
        attributes.department)``: with an employee of that department."""
        if len(node.args) not in (2, 3):
            raise self.error(node, f"linked() takes 2 or 3 arguments (counterparty_id, \"employee\"[, department]), "
                                   f"got {len(node.args)}")
        party = self.visit(node.args[0])
        if party.type != STR:
            raise self.error(node.args[0], f"linked() needs a str id, got {party.type}")
        kind = self.visit(node.args[1])
        if not kind.is_const or kind.const not in LINK_KINDS:
            raise self.error(node.args[1], f"linked() asks about one of: {', '.join(map(repr, LINK_KINDS))}")
        department = self.visit(node.args[2]) if len(node.args) == 3 else None
        if department is not None and department.type != STR:
            raise self.error(node.args[2], f"linked() needs a str department, got {department.type}")
        self.fields.update(("org_id", "occurred_at"))
        self.links.append((party.path, department.path if department else None))

        def fn(cols, rows, pf=party.fn, df=department.fn if department else None):
            return cols.linked(rows, pf(cols, rows).tolist(), df(cols, rows).tolist() if df else None)
        return _Node(BOOL, fn, cost=party.cost + 4)

    def _aggregate(self, node: ast.Call, name: str) -> _Node:
        takes_field = AGGREGATES[name]
        if not takes_field:
            raise self.error(node, f"write '{name}' without parentheses")
        if len(node.args) != 1 or not isinstance(node.args[0], (ast.Name, ast.Attribute)):
            raise self.error(node, f"{name}() takes one event field, e.g. {name}(amount)")
        arg = node.args[0]
        path = arg.id if isinstance(arg, ast.Name) else f"{getattr(arg.value, 'id', '?')}.{arg.attr}"
        if path not in EVENT_FIELD_TYPES:
            raise self.error(arg, f"unknown field '{path}'")
        kind = EVENT_FIELD_TYPES[path]
        if name not in TEXT_AGGREGATES and kind != NUM:
            raise self.error(arg, f"{name}() needs a num field, got {kind}")
        if name == "linked" and path != "counterparty_id":
            raise self.error(arg, "linked() counts counterparties: linked(counterparty_id)")
        self.aggs.add((name, path))
        return self._aggregate_column(node, aggregate_column(name, path), NUM)


def required_minimum(source: str, name: str = "count") -> float:
    """The least value ``name`` must reach for the expression to hold, read
    from top-level conjuncts like ``count >= 2``; 0 when it says nothing.
    The scorer uses it to skip windows too small to matter.

    >>> required_minimum("count >= 2 and sum(amount) > 10"), required_minimum("count > 2"), required_minimum("sum(amount) > 1")
    (2, 3, 0)
    """
    try:
        tree = ast.parse("(" + source + "\n)", mode="eval").body
    except SyntaxError:
        return 0
    conjuncts = tree.values if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.And) else [tree]
    best = 0
    for c in conjuncts:
        if not (isinstance(c, ast.Compare) and len(c.ops) == 1 and isinstance(c.left, ast.Name) and c.left.id == name):
            continue
        right = c.comparators[0]
        if not isinstance(right, ast.Constant) or isinstance(right.value, bool) or not isinstance(right.value, (int, float)):
            continue
        value, op = right.value, c.ops[0]
        if isinstance(op, (ast.GtE, ast.Eq)):
            best = max(best, math.ceil(value))
        elif isinstance(op, ast.Gt):
            best = max(best, math.floor(value) + 1)
    return best


def aggregate_column(func: str, path: str | None) -> str:
    """The column name of an aggregate, as messages see it: sum_amount, count."""
    return func if path is None else f"{func}_{path.replace('.', '_')}"


# --- helpers ---------------------------------------------------------------

@dataclass(frozen=True)
class _Helper:
    args: tuple[tuple[str, ...], ...]
    returns: str
    impl: Callable[..., np.ndarray]
    const_args: bool = False  # arguments after the first must be constants
    doc: str = ""


def _missing(values, kinds):
    if kinds[0] == NUM:
        return np.isnan(values)
    return np.fromiter((v is None or v == "" for v in values), bool, len(values))


def _str_map(values, fn):
    out = np.empty(len(values), dtype=object)
    out[:] = [None if v is None else fn(v) for v in values]
    return out


# Helpers over the business time read derived columns ("occurred_at:hour").
TIME_HELPERS = {
    "hour": "local hour 0-23 of occurred_at, in the offset written in it",
    "weekday": "local ISO weekday of occurred_at, 1 (Monday) to 7 (Sunday)",
    "day": "local calendar day of month 1-31 of occurred_at",
}

HELPERS: dict[str, _Helper] = {
    "missing": _Helper(((STR, NUM),), BOOL, _missing, doc="true when the value is absent or empty"),
    "present": _Helper(((STR, NUM),), BOOL, lambda v, kinds: ~_missing(v, kinds), doc="true when the value is there"),
    "abs": _Helper(((NUM,),), NUM, lambda v, kinds: np.abs(v), doc="absolute value"),
    "min": _Helper(((NUM,), (NUM,)), NUM, lambda a, b, kinds: np.minimum(a, b), doc="the smaller of two numbers (missing if either is)"),
    "max": _Helper(((NUM,), (NUM,)), NUM, lambda a, b, kinds: np.maximum(a, b), doc="the larger of two numbers (missing if either is)"),
    "lower": _Helper(((STR,),), STR, lambda v, kinds: _str_map(v, str.lower), doc="lower-case text"),
    "startswith": _Helper(((STR,), (STR,)), BOOL, lambda v, p, kinds: np.fromiter(
        (isinstance(s, str) and s.startswith(q) for s, q in zip(v, p)), bool, len(v)), const_args=True,
        doc="text starts with a constant prefix"),
    "contains": _Helper(((STR,), (STR,)), BOOL, lambda v, p, kinds: np.fromiter(
        (isinstance(s, str) and q in s for s, q in zip(v, p)), bool, len(v)), const_args=True,
        doc="text contains a constant"),
}
