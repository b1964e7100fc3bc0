"""The event contract: one business event from a source system.

Decoding is strict and never raises on bad input: every line is either an
``Event`` or a ``Rejection`` that says why, so that in = scored + rejected.

>>> events, rejected = decode_lines([
...     b'{"event_id": "p1", "source": "erp", "domain": "finance", "type": "payment",'
...     b' "occurred_at": "2026-03-02T10:00:00+08:00", "org_id": "ORG01", "amount": 1200}',
...     b'{"event_id": "p2"}',
... ])
>>> events[0].amount, events[0].occurred_at.hour
(1200.0, 10)
>>> rejected[0].line, rejected[0].reason
(2, 'missing_field')
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
from typing import Annotated, Any, Literal

import msgspec
import orjson

__all__ = [
    "ATTRIBUTE_TYPES",
    "DOMAINS",
    "EVENT_TYPES",
    "Event",
    "Rejection",
    "REJECT_REASONS",
    "decode_lines",
    "decode_one",
    "event_json_schema",
]

DOMAINS = ("finance", "investment", "procurement", "governance")

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class Event(msgspec.Struct, kw_only=True):
    """One business event (contract 1). Unknown top-level keys are ignored;
    unknown keys inside ``attributes`` are kept."""

    event_id: Annotated[str, msgspec.Meta(min_length=1, description="Unique within its source; the idempotency key.")]
    source: Annotated[str, msgspec.Meta(min_length=1, description="The system it came from, e.g. erp-finance.")]
    domain: Literal["finance", "investment", "procurement", "governance"]
    type: Annotated[str, msgspec.Meta(min_length=1, description="Event type, e.g. payment, purchase_order.")]
    occurred_at: Annotated[
        dt.datetime,
        msgspec.Meta(tz=True, description="Business time, RFC 3339 with an offset; windows use it."),
    ]
    org_id: Annotated[str, msgspec.Meta(min_length=1, description="The group company or subsidiary.")]
    amount: Annotated[float, msgspec.Meta(ge=0, description="In `currency`.")] | None = None
    currency: NonEmpty = "CNY"
    counterparty_id: str | None = None
    counterparty_name: str | None = None
    attributes: Annotated[
        dict[str, Any],
        msgspec.Meta(description="Type-specific fields; unknown keys are kept."),
    ] = msgspec.field(default_factory=dict)


# Event types the default pack relies on, with their domain.
EVENT_TYPES: dict[str, str] = {
    "purchase_order": "procurement",
    "contract_signed": "procurement",
    "contract_changed": "procurement",
    "payment": "finance",
    "journal_entry": "finance",
    "investment_approval": "investment",
    "investment_disbursement": "investment",
    "decision": "governance",
    "regulation_issued": "governance",
}

# Known attribute names and their value types ("str", "num", "bool"), for the
# rule language's type checker. A rule naming any other attribute is a lint error.
ATTRIBUTE_TYPES: dict[str, str] = {
    "po_no": "str",
    "category": "str",
    "method": "str",
    "contract_id": "str",
    "legal_review": "str",
    "original_amount": "num",
    "approval_ref": "str",
    "payment_no": "str",
    "invoice_no": "str",
    "payee_type": "str",
    "approver_level": "str",
    "entry_no": "str",
    "manual": "bool",
    "account": "str",
    "posted_by": "str",
    "project_id": "str",
    "decision_ref": "str",
    "overseas": "bool",
    "filing_ref": "str",
    "decision_id": "str",
    "kind": "str",
    "meeting": "str",
    "regulation_id": "str",
}

REJECT_REASONS = (
    "not_json",
    "not_object",
    "missing_field",
    "empty_field",
    "wrong_type",
    "negative_amount",
    "bad_timestamp",
    "unknown_domain",
)


class Rejection(msgspec.Struct, frozen=True):
    """A record that could not be scored: where it was, why, and its bytes."""

    line: int
    reason: str  # one of REJECT_REASONS; low-cardinality, used as a metric label
    detail: str
    raw: bytes
    source: str = "unknown"


_decoder = msgspec.json.Decoder(Event)
_PATH = re.compile(r" - at `\$\.?([^`]*)`$")


def _classify(err: Exception) -> tuple[str, str]:
    """Map a msgspec error onto (reason code, human detail naming the field)."""
    if isinstance(err, msgspec.DecodeError) and not isinstance(err, msgspec.ValidationError):
        return "not_json", f"not valid JSON: {err}"
    text = str(err)
    m = _PATH.search(text)
    field = m.group(1) if m else ""
    message = text[: m.start()] if m else text
    if not field:
        if message.startswith("Object missing required field"):
            name = message.split("`")[1]
            return "missing_field", f"missing required field '{name}'"
        return "not_object", f"not a JSON object: {message}"
    detail = f"field '{field}': {message}"
    if field == "occurred_at":
        return "bad_timestamp", detail + " (RFC 3339 with an offset, e.g. 2026-03-02T10:00:00+08:00)"
    if field == "domain" and message.startswith("Invalid enum value"):
        return "unknown_domain", detail + f" (one of {', '.join(DOMAINS)})"
    if field == "amount" and ">= 0" in message:
        return "negative_amount", detail
    if "length >= 1" in message:
        return "empty_field", f"field '{field}' is empty"
    return "wrong_type", detail


def _source_of(raw: bytes) -> str:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "unknown"
    source = value.get("source") if isinstance(value, dict) else None
    return source if isinstance(source, str) and source else "unknown"


def decode_one(raw: bytes, line: int = 1) -> Event | Rejection:
    """Decode one JSON document into an Event, or say why not."""
    try:
        return _decoder.decode(raw)
    except msgspec.DecodeError as err:
        reason, detail = _classify(err)
        return Rejection(line, reason, detail, raw, _source_of(raw))


def decode_lines(lines: list[bytes], first_line: int = 1, numbers: list[int] | None = None,
                 raws: list[bytes] | None = None) -> tuple[list[Event], list[Rejection]]:
    """Decode JSONL lines; blank lines are skipped and not counted.

    Line numbers run from ``first_line``, or are given one per line in
    ``numbers``. Given a list as ``raws``, the line of each event is appended
    to it (the events' own JSON, for evidence). Line by line: with msgspec
    that is as fast as decoding a joined batch, and each rejection keeps its
    own line number.
    """
    events: list[Event] = []
    rejected: list[Rejection] = []
    skipped: list[int] = []  # indexes of blank and rejected lines
    decode = _decoder.decode
    append = events.append
    for i, raw in enumerate(lines):
        try:
            append(decode(raw))
        except msgspec.DecodeError as err:
            skipped.append(i)
            if not raw.strip():
                continue
            reason, detail = _classify(err)
            line = numbers[i] if numbers is not None else first_line + i
            rejected.append(Rejection(line, reason, detail, raw, _source_of(raw)))
    if raws is not None:
        start = 0
        for i in skipped:
            raws += lines[start:i]
            start = i + 1
        raws += lines[start:]
    return events, rejected


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema of the event contract, generated from the model."""
    schema = msgspec.json.schema(Event)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "riskwatch event"
    props = schema["$defs"]["Event"]["properties"]
    props["type"]["examples"] = list(EVENT_TYPES)
    json_types = {"str": ["string", "number"], "num": ["number", "string"], "bool": ["boolean", "string"]}
    # The attributes the default rules read; anything else is kept as it is.
    props["attributes"]["properties"] = {name: {"type": json_types[kind]} for name, kind in ATTRIBUTE_TYPES.items()}
    props["attributes"]["additionalProperties"] = True
    # Descriptions come from the docstrings, indented as written; how a msgspec
    # release reflows them is not ours to ship.
    for name, definition in schema["$defs"].items():
        doc = getattr(globals().get(name), "__doc__", None)
        if doc and "description" in definition:
            definition["description"] = inspect.cleandoc(doc)
    return schema


def schema_contract(schema: Any) -> Any:
    """What a JSON Schema promises, without its prose: every ``description`` and
    ``title`` text dropped (a property of that name stays), so two schemas that
    accept the same events compare equal.

    >>> schema_contract({"title": "t", "type": "object", "properties": {"a": {"description": "x", "type": "string"}}})
    {'type': 'object', 'properties': {'a': {'type': 'string'}}}
    """
    if isinstance(schema, dict):
        return {
            key: schema_contract(value)
            for key, value in schema.items()
            if not (key in ("description", "title") and isinstance(value, str))
        }
    if isinstance(schema, list):
        return [schema_contract(item) for item in schema]
    return schema
