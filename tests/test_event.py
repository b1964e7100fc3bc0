"""The event contract: strict decoding, rejections with reasons, the schema file."""

from __future__ import annotations

import inspect
from pathlib import Path

import orjson
import pytest

from monitor.core.event import (
    REJECT_REASONS,
    Event,
    Rejection,
    decode_lines,
    decode_one,
    event_json_schema,
    schema_contract,
)

GOOD = (b'{"event_id":"p1","source":"erp","domain":"finance","type":"payment",'
        b'"occurred_at":"2026-03-02T10:00:00+08:00","org_id":"ORG01","amount":1200.5,'
        b'"attributes":{"contract_id":"HT-1","vendor_extra":{"x":1}}}')


def with_(**changes) -> bytes:
    record = orjson.loads(GOOD)
    for key, value in changes.items():
        if value is ...:
            record.pop(key)
        else:
            record[key] = value
    return orjson.dumps(record)


def test_valid_event_keeps_unknown_attributes_and_defaults_currency():
    event = decode_one(GOOD)
    assert isinstance(event, Event)
    assert (event.amount, event.currency, event.attributes) == (
        1200.5, "CNY", {"contract_id": "HT-1", "vendor_extra": {"x": 1}})
    assert event.occurred_at.utcoffset().total_seconds() == 8 * 3600


def test_unknown_top_level_keys_are_ignored():
    assert isinstance(decode_one(with_(extra_field=1)), Event)


@pytest.mark.parametrize("raw, reason, detail", [
    (b'{"event_id": "p1", ', "not_json", "not valid JSON"),
    (b"[1, 2]", "not_object", "not a JSON object"),
    (b'"payment"', "not_object", "not a JSON object"),
    (with_(org_id=...), "missing_field", "missing required field 'org_id'"),
    (with_(event_id=""), "empty_field", "field 'event_id' is empty"),
    (with_(amount="1200"), "wrong_type", "field 'amount': Expected `float | null`, got `str`"),
    (with_(amount=True), "wrong_type", "field 'amount'"),
    (with_(attributes=[1]), "wrong_type", "field 'attributes'"),
    (with_(amount=-0.01), "negative_amount", "field 'amount': Expected `float` >= 0.0"),
    (with_(occurred_at="2026-03-02T10:00:00"), "bad_timestamp", "field 'occurred_at': Expected `datetime` with a timezone"),
    (with_(occurred_at="yesterday"), "bad_timestamp", "field 'occurred_at': Invalid RFC3339"),
    (with_(occurred_at=1772416800), "bad_timestamp", "field 'occurred_at'"),
    (with_(domain="hr"), "unknown_domain", "field 'domain': Invalid enum value 'hr'"),
])
def test_each_kind_of_bad_input_is_rejected_with_its_reason(raw, reason, detail):
    result = decode_one(raw, line=7)
    assert isinstance(result, Rejection)
    assert (result.line, result.reason, result.raw) == (7, reason, raw)
    assert result.detail.startswith(detail)
    assert result.reason in REJECT_REASONS


def test_rejection_names_the_source_when_it_can():
    assert decode_one(with_(org_id=...)).source == "erp"
    assert decode_one(b"{nope").source == "unknown"


def test_lines_keep_their_numbers_and_blank_lines_are_not_counted():
    lines = [GOOD + b"\n", b"\n", b"{bad\n", with_(event_id="p2") + b"\n", b"   \n", with_(amount=-1) + b"\n"]
    events, rejected = decode_lines(lines, first_line=101)
    assert [e.event_id for e in events] == ["p1", "p2"]
    assert [(r.line, r.reason) for r in rejected] == [(103, "not_json"), (106, "negative_amount")]


@pytest.mark.parametrize("lines", [
    [GOOD, with_(event_id="p2")],
    [b"\n", GOOD, b"{bad", with_(event_id="p2"), b"   ", with_(amount=-1), with_(event_id="p3"), b"[]"],
])
def test_raws_are_the_lines_of_the_events_in_order(lines):
    raws: list[bytes] = []
    events, _ = decode_lines(lines, raws=raws)
    assert [decode_one(raw) for raw in raws] == events


def test_schema_file_is_generated_from_the_model():
    on_disk = orjson.loads((Path(__file__).parent.parent / "docs" / "event.schema.json").read_bytes())
    generated = event_json_schema()
    assert schema_contract(on_disk) == schema_contract(generated), "regenerate with: riskwatch schema > docs/event.schema.json"
    # The prose is the docstrings' own, not a msgspec release's reflow of them.
    assert generated["$defs"]["Event"]["description"] == inspect.cleandoc(Event.__doc__)


def test_schema_states_the_contract():
    schema = event_json_schema()
    event = schema["$defs"]["Event"]
    assert sorted(event["required"]) == ["domain", "event_id", "occurred_at", "org_id", "source", "type"]
    assert sorted(event["properties"]["domain"]["enum"]) == ["finance", "governance", "investment", "procurement"]
    assert event["properties"]["occurred_at"]["format"] == "date-time"
    assert event["properties"]["attributes"]["properties"]["legal_review"] == {"type": ["string", "number"]}
