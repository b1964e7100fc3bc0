"""CSV rows mapped a chunk at a time, column by column, give exactly what
``map_record`` gives row by row: the same events (same keys, same order) and
the same rejections (line, reason, words, the record as it came)."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.file import csv_rows
from connectors.mapping import FieldSpec, Mapping, load_mapping, map_record
from connectors.rows import RowMapper
from monitor.core.event import Rejection

ROOT = Path(__file__).parent.parent.parent / "connectors"


def row_by_row(mapping: Mapping, header: list[str], rows: list[list], numbers: list[int]):
    width = len(header)
    out = []
    for number, row in zip(numbers, rows):
        padded = row + [None] * (width - len(row)) if len(row) < width else row
        out.append(map_record(mapping, dict(zip(header, padded)), number))
    return out


def column_by_column(mapping: Mapping, header: list[str], rows: list[list], numbers: list[int]):
    mapped, rejected = RowMapper(mapping, header).map_rows([list(r) for r in rows], numbers)
    by_line: dict[int, object] = {r.line: r for r in rejected}
    by_line.update((numbers[i], event) for i, event in mapped)
    return [by_line[n] for n in numbers]


def shown(results) -> list:
    return [(r.line, r.reason, r.detail, r.raw, r.source) if isinstance(r, Rejection) else orjson.dumps(r)
            for r in results]


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "samples").glob("*.csv")))
def test_every_sample_export_maps_the_same_either_way(name):
    mapping = load_mapping(ROOT / "mappings" / f"{name}.yaml")
    with open(ROOT / "samples" / f"{name}.csv", encoding=mapping.encoding, newline="") as f:
        header, rows = csv_rows(f, mapping)
        numbered = list(rows)
    numbers, cells = [n for n, _ in numbered], [r for _, r in numbered]
    expected = row_by_row(mapping, header, cells, numbers)
    assert shown(column_by_column(mapping, header, cells, numbers)) == shown(expected)
    assert any(isinstance(r, Rejection) for r in expected) or name != "erp_payments"


TIMES = ["2026-06-03 14:20:00", "2026-6-3 9:05:00", "2026-02-30 10:00:00", "2026-06-03T14:20:00+02:00",
         "2026-06-03", "yesterday", "2026-06-03 14:20:00.250000", "", "  2026-06-03 14:20:00 "]
NUMBERS = ["86420.50", "¥1,200.50", "1 000", "12元", "CNY 7", "-5", "abc", "", "1e3", "nan", " 42 "]
WORDS = ["SUB01", "  padded  ", "", "个人", "单位", "处室", "是", "否", "yes", "maybe", "1.0"]
any_cell = st.sampled_from(TIMES + NUMBERS + WORDS) | st.none()

MAPPING = Mapping(
    source="erp", domain="finance", type="payment", format="csv", timezone="+08:00",
    fields={"event_id": FieldSpec(column="单号", prefix="FK-"),
            "occurred_at": FieldSpec(column="日期", type="datetime", format="%Y-%m-%d %H:%M:%S"),
            "org_id": FieldSpec(column="公司"), "amount": FieldSpec(column="金额", type="number"),
            "currency": FieldSpec(value="CNY"), "counterparty_id": FieldSpec(column="不存在的列")},
    attributes={"payee_type": FieldSpec(column="类型", map={"单位": "company", "个人": "individual", "": "none"}),
                "flag": FieldSpec(column="布尔", type="bool"),
                "when": FieldSpec(column="日期", type="datetime"),
                "note": FieldSpec(column="标记", type="number", map={"是": "7", "否": "x"})})
HEADER = ["单号", "日期", "公司", "金额", "类型", "标记", "布尔", "公司"]  # a repeated column: the last one counts
GOOD = [WORDS, TIMES[:2] + TIMES[3:4] + TIMES[6:], WORDS, NUMBERS, ["单位", "个人", ""], ["是", "否", ""], ["是", "否", "yes", ""],
        WORDS]  # per column, values most rows carry, so that many rows map (and some still fail)
row = st.tuples(*[st.one_of(st.sampled_from(good), st.sampled_from(good), st.sampled_from(good), any_cell)
                  for good in GOOD]).map(list).flatmap(
    lambda cells: st.sampled_from([len(cells)] * 4 + list(range(len(cells) + 3))).map(
        lambda k: cells[:k] + ["extra"] * (k - len(cells))))  # mostly whole rows, some short or long


@settings(max_examples=500, deadline=None)
@given(st.lists(row, min_size=1, max_size=30), st.booleans())
def test_any_cells_map_the_same_either_way(rows, with_missing_column):
    mapping = MAPPING
    if not with_missing_column:
        fields = dict(MAPPING.fields)
        del fields["counterparty_id"]
        mapping = Mapping(**{f: getattr(MAPPING, f) for f in MAPPING.__struct_fields__ if f != "fields"}, fields=fields)
    numbers = [2 + i for i in range(len(rows))]
    expected = row_by_row(mapping, HEADER, rows, numbers)
    assert shown(column_by_column(mapping, HEADER, rows, numbers)) == shown(expected)


def test_the_generated_rows_both_map_and_fail():
    """The property above sees events as well as rejections of every kind."""
    rows = [["1", "2026-06-03 14:20:00", "", "¥1,200.50", "单位", "是", "yes", "  SUB01 "],
            ["2", "2026-02-30 10:00:00", "", "1", "", "", "", "SUB01"],
            ["3", "", "", "abc", "", "", "", "SUB01"], ["4", "", "", "", "处室", "", "", "SUB01"],
            ["5", "", "", "", "", "否", "", "SUB01"], ["6", "", "", "", "", "", "maybe", "SUB01"], ["7"]]
    mapping = Mapping(**{f: getattr(MAPPING, f) for f in MAPPING.__struct_fields__ if f != "fields"},
                      fields={k: v for k, v in MAPPING.fields.items() if k != "counterparty_id"})
    results = row_by_row(mapping, HEADER, rows, list(range(2, 9)))
    assert shown(column_by_column(mapping, HEADER, rows, list(range(2, 9)))) == shown(results)
    assert results[0] == {"source": "erp", "domain": "finance", "type": "payment", "event_id": "FK-1",
                          "occurred_at": "2026-06-03T14:20:00+08:00", "org_id": "SUB01", "amount": 1200.5,
                          "currency": "CNY", "attributes": {"payee_type": "company", "flag": True,
                                                            "when": "2026-06-03T14:20:00+08:00", "note": 7.0}}
    assert [r.reason for r in results[1:6]] == ["bad_timestamp", "wrong_type", "wrong_type", "wrong_type", "wrong_type"]
    assert results[6]["event_id"] == "FK-7" and "attributes" not in results[6]  # an empty cell is no value, mapped or not


def test_a_csv_file_reads_back_the_rows_csv_wrote(tmp_path):
    path = tmp_path / "x.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["a", "b"], ["1", "2"], [], ["3"]])
    with open(path, encoding="utf-8", newline="") as f:
        header, rows = csv_rows(f, MAPPING)
        assert header == ["a", "b"] and list(rows) == [(2, ["1", "2"]), (4, ["3"])]
