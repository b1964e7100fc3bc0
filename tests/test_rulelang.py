"""The rule expression language: every construct, every error, the whitelist."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.batch import EventBatch
from monitor.core.rulelang import ExprError, Param, Scope, compile_expr, required_minimum
from monitor.core.rules import CounterpartyList
from tests.conftest import CST, make_event

LIMIT = Param("limit", 500_000.0, {"ORG2": 300_000.0})
TABLE = Param("tender", {"goods": 2_000_000.0, "services": 1_000_000.0}, {"ORG2": {"goods": 1_500_000.0}})
DEBARRED = CounterpartyList("debarred", {
    "S-BAD": [(dt.datetime(2026, 1, 1, tzinfo=CST).timestamp(), dt.datetime(2026, 6, 1, tzinfo=CST).timestamp())],
}, [])
SCOPE = Scope.for_events(params={"limit": LIMIT, "tender": TABLE}, lists={"debarred": DEBARRED})

EVENTS = [
    make_event(0, amount=600_000, counterparty_id="S-BAD", attributes={"method": "inquiry", "category": "goods",
               "manual": True, "original_amount": 500_000}),
    make_event(1, type="journal_entry", amount=100, org_id="ORG2", counterparty_id="S-OK",
               occurred_at="2026-03-07T23:30:00+08:00", attributes={"manual": False, "category": "services"}),
    make_event(2, amount=400_000, org_id="ORG2", counterparty_name="临江建材",
               occurred_at="2026-07-01T10:00:00+02:00", attributes={"method": "tender", "category": "goods",
                                                                   "contract_id": "HT-1"}),
    make_event(3, type="contract_signed", counterparty_id="S-BAD", occurred_at="2026-06-02T10:00:00+08:00",
               attributes={"category": "construction", "contract_id": 12345}),
]
BATCH = EventBatch(EVENTS)


def rows_where(source: str) -> list[int]:
    expr = compile_expr(source, SCOPE)
    return np.flatnonzero(expr.fn(BATCH, BATCH.all_rows)).tolist()


@pytest.mark.parametrize("source, expected", [
    ('type == "payment"', [0, 2]),
    ('type != "payment"', [1, 3]),
    ("amount > 450000", [0]),
    ("amount >= 400000", [0, 2]),
    ("amount < 500", [1]),
    ("amount <= 100", [1]),
    ('type == "payment" and amount > 500000', [0]),
    ('type == "journal_entry" or amount > 500000', [0, 1]),
    ('not type == "payment"', [1, 3]),
    ("amount * 2 > 1000000", [0]),
    ("amount / 4 == 100000", [2]),
    ("amount - 100 == 0", [1]),
    ("amount + 1 > 600000", [0]),
    ("amount % 300000 == 0", [0]),
    ("-amount < -500000", [0]),
    ("100 < amount < 500000", [2]),
    ('type in ("journal_entry", "contract_signed")', [1, 3]),
    ('type not in ("journal_entry", "contract_signed")', [0, 2]),
    ("amount in (100, 400000)", [1, 2]),
    ('attributes.method == "inquiry"', [0]),
    ('attributes.method != "tender"', [0, 1, 3]),  # absent counts as "not tender"
    ("attributes.manual", [0]),
    ("not attributes.manual", [1, 2, 3]),
    ("attributes.original_amount > 400000", [0]),
    ('attributes.contract_id == "12345"', [3]),  # numbers in text attributes compare as text
    ("missing(attributes.contract_id)", [0, 1]),
    ("present(attributes.contract_id)", [2, 3]),
    ("missing(amount)", [3]),
    ("missing(counterparty_name)", [0, 1, 3]),
    ("amount > limit", [0, 2]),  # ORG2's limit is 300,000
    ("amount >= tender[attributes.category]", []),
    ("amount * 5 >= tender[attributes.category]", [0, 2]),  # ORG2's goods threshold is 1,500,000
    ("hour(occurred_at) >= 20", [1]),
    ("hour(occurred_at) == 10", [2, 3]),  # the local hour, in each event's own offset
    ("weekday(occurred_at) >= 6", [1]),
    ("day(occurred_at) == 1", [2]),
    ("counterparty_id in lists.debarred", [0]),  # event 3 is after the listing expired
    ("counterparty_id not in lists.debarred", [1, 2, 3]),
    ("abs(amount - 500000) <= 100000", [0, 2]),
    ("min(amount, 1000) == 1000", [0, 2]),
    ("max(amount, 1000) == 1000", [1]),
    ('lower(counterparty_id) == "s-ok"', [1]),
    ('startswith(counterparty_id, "S-B")', [0, 3]),
    ('contains(counterparty_name, "建材")', [2]),
    ("True", [0, 1, 2, 3]),
    ("False", []),
])
def test_construct_selects_the_expected_rows(source, expected):
    assert rows_where(source) == expected


def test_short_circuit_evaluates_the_right_side_only_on_undecided_rows():
    seen = []

    class Spy:
        def column(self, path, rows):
            seen.append((path, rows.tolist()))
            return BATCH.column(path, rows)

        def equals(self, path, value, rows):
            return self.column(path, rows) == value

    expr = compile_expr('type == "journal_entry" and attributes.manual', SCOPE)
    assert expr.fn(Spy(), BATCH.all_rows).tolist() == [False, False, False, False]
    assert ("attributes.manual", [1]) in seen


def test_cheap_conjuncts_run_first_whatever_the_written_order():
    a = compile_expr('attributes.manual and type == "payment" and amount > 1', SCOPE)
    b = compile_expr('type == "payment" and amount > 1 and attributes.manual', SCOPE)
    assert a.fn(BATCH, BATCH.all_rows).tolist() == b.fn(BATCH, BATCH.all_rows).tolist() == [True, False, False, False]


def test_fields_read_are_reported():
    expr = compile_expr('type == "payment" and attributes.method != "tender" and amount > limit', SCOPE)
    assert expr.fields == {"type", "attributes.method", "amount", "org_id"}


@pytest.mark.parametrize("source, message, col", [
    ("counterpary_id == 'x'", "unknown field 'counterpary_id'", 1),
    ('type == "payment" and attributes.methd == "x"', "unknown field 'attributes.methd'", 23),
    ("amount > 'big'", "cannot compare num with str", 1),
    ('type > "a"', "str values can only be compared with == or !=", 1),
    ("amount and type", "'and' needs bool operands, got num", 1),
    ("not amount", "'not' needs a bool, got num (use missing(...) to test for absence)", 1),
    ("-type", "'-' needs a num, got str", 1),
    ('type + 1 > 2', "arithmetic needs num operands, got str", 1),
    ("amount", "expression must be bool, got num", 1),
    ("frobnicate(amount)", "unknown helper 'frobnicate'", 1),
    ("hour(amount) > 3", "hour() needs time, got num", 6),
    ("missing(amount, type)", "missing() takes 1 argument(s), got 2", 1),
    ("abs(type) > 1", "abs() needs num, got str", 5),
    ("startswith(type, counterparty_id)", "startswith() needs a constant here", 18),
    ("counterparty_id in lists.nosuch", "unknown list 'lists.nosuch' (known: debarred)", 20),
    ("amount in lists.debarred", "list membership needs a str, got num", 1),
    ("type in type", "'in' needs a literal list like (\"a\", \"b\") or lists.NAME", 9),
    ("type in ('a', amount)", "items of an 'in' list must be constants", 15),
    ("type in ('a', 1)", "list item is num, but the value is str", 15),
    ("amount > tender", "parameter 'tender' is a table: index it, e.g. tender[attributes.category]", 10),
    ("amount > limit['x']", "parameter 'limit' is a number, not a table", 10),
    ("amount > tender['cars']", "'cars' is not a key of tender (goods, services)", 17),
    ("amount > tender[amount]", "a table is indexed by str, got num", 17),
    ("occurred_at > 5", "cannot compare time with num", 1),
    ("amount == None", "constant None is not allowed (use missing(...) for absent values)", 11),
    ("type is 'x'", "'is' is not allowed; use == or missing(...)", 1),
    ("amount >", "syntax error: the expression ends too soon", 9),
    ("amount > > 1", "syntax error: invalid syntax", 10),
    ("", "expression is empty", 1),
])
def test_errors_name_the_problem_and_column(source, message, col):
    with pytest.raises(ExprError) as info:
        compile_expr(source, SCOPE)
    assert info.value.message.startswith(message)
    if col is not None:
        assert info.value.col == col


def test_column_counts_characters_not_bytes():
    with pytest.raises(ExprError) as info:
        compile_expr('counterparty_name == "临江" and nope == 1', SCOPE)
    assert (info.value.message, info.value.col) == ("unknown field 'nope'", 31)


def test_multi_line_expression_reports_the_line():
    with pytest.raises(ExprError) as info:
        compile_expr('type == "payment"\nand bogus > 1', SCOPE)
    assert (info.value.line, info.value.col, info.value.message) == (2, 5, "unknown field 'bogus'")


@pytest.mark.parametrize("source, message", [
    ("__import__('os').system('true')", "only helper functions may be called"),
    ("__import__('os') == 1", "unknown helper '__import__'"),
    ("eval('1') == 1", "unknown helper 'eval'"),
    ("().__class__.__bases__[0] == 1", "only a table parameter can be indexed"),
    ("().__class__ == 1", "only attributes.NAME and lists.NAME may use a dot"),
    ("attributes.__class__ == 'x'", "unknown field 'attributes.__class__'"),
    ("type.__len__() == 1", "only helper functions may be called, e.g. hour(occurred_at)"),
    ("__builtins__ == 1", "unknown name '__builtins__'"),
    ("(lambda: 1)() == 1", "only helper functions may be called, e.g. hour(occurred_at)"),
    ("(lambda: True)", "lambda is not allowed in a rule expression"),
    ("[x for x in (1, 2)] == 1", "comprehension is not allowed in a rule expression"),
    ("any(x for x in (1,))", "unknown helper 'any'"),
    ("9 ** 9 ** 9 > 1", "'**' (power) is not allowed in a rule expression"),
    ("amount ** 2 > 1", "'**' (power) is not allowed in a rule expression"),
    ("f'{amount}' == 'x'", "f-string is not allowed in a rule expression"),
    ("(x := 1) == 1", "assignment is not allowed in a rule expression"),
    ("{1: 2} == 1", "dict literal is not allowed in a rule expression"),
    ("amount if True else 1", "conditional expression is not allowed in a rule expression"),
    ("type[0] == 't'", "only a table parameter can be indexed"),
    ("open('/etc/passwd') == 1", "unknown helper 'open'"),
    ("amount << 2 > 1", "operator LShift is not allowed"),
])
def test_whitelist_refuses_injection(source, message):
    with pytest.raises(ExprError) as info:
        compile_expr(source, SCOPE)
    assert info.value.message.startswith(message)


def test_oversized_and_deeply_nested_expressions_are_refused_cleanly():
    with pytest.raises(ExprError, match="longer than"):
        compile_expr("amount > 1 and " * 200 + "True", SCOPE)
    with pytest.raises(ExprError):
        compile_expr("(" * 400 + "amount > 1" + ")" * 400, SCOPE)
    with pytest.raises(ExprError):
        compile_expr("not " * 600 + "True", SCOPE)


def test_having_scope_knows_aggregates_and_key_fields_only():
    scope = Scope({"org_id": "str", "attributes.category": "str"}, {"tender": TABLE}, aggregates=True)
    expr = compile_expr("count >= 2 and sum(amount) >= tender[attributes.category] and distinct(counterparty_id) > 1", scope)
    assert expr.aggregates == {("count", None), ("sum", "amount"), ("distinct", "counterparty_id")}
    with pytest.raises(ExprError, match="unknown field 'counterparty_id'"):
        compile_expr("counterparty_id == 'x'", scope)
    with pytest.raises(ExprError, match="sum\\(\\) needs a num field, got str"):
        compile_expr("sum(type) > 1", scope)
    with pytest.raises(ExprError, match="write 'count' without parentheses"):
        compile_expr("count() > 1", scope)


@pytest.mark.parametrize("source, least", [
    ("count >= 2", 2), ("count > 2", 3), ("count == 4", 4), ("count > 1.5", 2),
    ("count >= 2 and sum(amount) > 1", 2), ("count >= 2 or sum(amount) > 1", 0), ("sum(amount) > 1", 0),
])
def test_required_minimum_reads_top_level_count_bounds(source, least):
    assert required_minimum(source) == least


# --- screened(): names against a list's names ----------------------------------------------

LISTED = (dt.datetime(2026, 1, 1, tzinfo=CST).timestamp(), dt.datetime(2026, 6, 1, tzinfo=CST).timestamp())
SANCTIONED = CounterpartyList("sanctions", {"S-LIST": [LISTED]},
                              [{"counterparty_id": "S-LIST", "counterparty_name": "临江建材有限公司"},
                               {"counterparty_id": "", "counterparty_name": "Orion Precision Avionics GmbH"}],
                              [LISTED, (float("-inf"), float("inf"))])
NAMES = Scope.for_events(params={"limit": LIMIT}, lists={"sanctions": SANCTIONED})


def test_screened_matches_names_while_the_entry_is_listed():
    expr = compile_expr("screened(counterparty_name, lists.sanctions, 90)", NAMES)
    events = [make_event(0, counterparty_name="臨江建材有限公司"),  # traditional characters, listed then
              make_event(1, counterparty_name="临江建材有限公司", occurred_at="2026-07-01T10:00:00+08:00"),  # delisted
              make_event(2, counterparty_name="临江建设工程有限公司"), make_event(3),  # another company; no name
              make_event(4, counterparty_name="ORION PRECISION AVIONICS")]  # a row with a name and no id
    batch = EventBatch(events)
    assert np.flatnonzero(expr.fn(batch, batch.all_rows)).tolist() == [0, 4]
    assert expr.screens == (("counterparty_name", "sanctions", 90.0),)


@pytest.mark.parametrize("source, message", [
    ("screened(counterparty_name, lists.sanctions)", "screened() takes 3 arguments"),
    ("screened(amount, lists.sanctions, 90)", "screened() needs a str name, got num"),
    ("screened(counterparty_name, ('a', 'b'), 90)", "screened() screens against a list: lists.NAME"),
    ("screened(counterparty_name, lists.nothing, 90)", "unknown list 'lists.nothing' (known: sanctions)"),
    ("screened(counterparty_name, lists.sanctions, 101)", "constant threshold between 50 and 100"),
    ("screened(counterparty_name, lists.sanctions, limit)", "constant threshold between 50 and 100"),  # per-org
])
def test_screened_says_what_is_wrong(source, message):
    with pytest.raises(ExprError, match=re.escape(message)):
        compile_expr(source, NAMES)


def test_an_alert_says_which_entry_a_name_matched_and_why(default_pack):
    from monitor.core.alerts import AlertBook
    from monitor.core.scorer import Scorer
    from monitor.core.state import ScorerState

    event = make_event(0, type="payment", amount=10_000, counterparty_id="SUP-09999",
                       counterparty_name="NORTHWIND DUAL USE TRADING L.L.C.", attributes={"contract_id": "HT-1"})
    pack = default_pack.only({"gov_sanctioned_counterparty"})
    (alert,) = AlertBook(pack).merge(Scorer(pack).score(EventBatch([event]), ScorerState()))
    assert alert.message.endswith("name match: Northwind Dual-Use Trading LLC (sanctions SUP-S001, 100/100: "
                                  "'northwind dual use trading' vs 'northwind dual use trading')")


# --- linked() and the tender-lot aggregates --------------------------------------------------

@pytest.mark.parametrize("source, message", [
    ('linked(counterparty_id)', 'linked() takes 2 or 3 arguments (counterparty_id, "employee"[, department]), got 1'),
    ('linked(counterparty_id, "boss")', "linked() asks about one of: 'employee'"),
    ('linked(counterparty_id, attributes.post)', "linked() asks about one of: 'employee'"),
    ('linked(amount, "employee")', "linked() needs a str id, got num"),
    ('linked(counterparty_id, "employee", amount)', "linked() needs a str department, got num"),
])
def test_linked_says_what_is_wrong(source, message):
    with pytest.raises(ExprError, match=re.escape(message)):
        compile_expr(source, SCOPE)


def test_linked_without_master_data_is_false():
    expr = compile_expr('linked(counterparty_id, "employee")', SCOPE)
    batch = EventBatch([make_event(0, counterparty_id="S1")])
    assert expr.fn(batch, batch.all_rows).tolist() == [False]
    assert expr.links == (("counterparty_id", None),)


@pytest.mark.parametrize("source, message", [
    ("cv(counterparty_id) < 0.03", "cv() needs a num field, got str"),
    ("linked(amount) >= 2", "linked() counts counterparties: linked(counterparty_id)"),
    ("steps(attributes.lot_id) >= 4", "steps() needs a num field, got str"),
])
def test_lot_aggregates_check_their_field(source, message):
    having = Scope({"org_id": "str"}, aggregates=True)
    with pytest.raises(ExprError, match=re.escape(message)):
        compile_expr(source, having)


def test_an_attribute_read_over_overlapping_rows_is_each_rows_own_value():
    # Each row's value is read from its event once a batch, whichever subset asked first.
    batch = EventBatch(EVENTS)
    first = batch.column("attributes.contract_id", np.array([2, 3]))
    again = batch.column("attributes.contract_id", np.array([3, 0, 2]))
    numbers = batch.column("attributes.original_amount", np.array([1, 0]))
    flags = batch.column("attributes.manual", np.array([0])), batch.column("attributes.manual", np.array([1, 0, 2]))
    assert first.tolist() == ["HT-1", "12345"] and again.tolist() == ["12345", None, "HT-1"]
    assert np.isnan(numbers[0]) and numbers[1] == 500_000.0
    assert flags[0].tolist() == [True] and flags[1].tolist() == [False, True, False]


_ATTRIBUTE_VALUES = st.one_of(st.none(), st.text(max_size=4), st.booleans(), st.integers(-2**63, 2**63 - 1),
                              st.floats(allow_nan=False, allow_infinity=False), st.lists(st.integers(0, 3), max_size=2))


@settings(max_examples=200, deadline=None)
@given(st.lists(_ATTRIBUTE_VALUES, min_size=1, max_size=30))
def test_an_attribute_column_holds_each_rows_value_as_its_type_reads_it(values):
    """A whole column of an attribute is converted at once when its values are already
    of the column's type; the result equals converting each row alone, whatever the mix."""
    from monitor.core.batch import _as_num, _as_str

    events = [make_event(i, attributes={"contract_id": v, "original_amount": v, "manual": v})
              for i, v in enumerate(values)]
    batch = EventBatch(events)
    rows = batch.all_rows
    assert batch.column("attributes.contract_id", rows).tolist() == [_as_str(v) for v in values]
    numbers = batch.column("attributes.original_amount", rows)
    assert numbers.dtype == float
    assert np.array_equal(numbers, np.array([_as_num(v) for v in values], dtype=float), equal_nan=True)
    assert batch.column("attributes.manual", rows).tolist() == [v is True or v == "true" for v in values]
