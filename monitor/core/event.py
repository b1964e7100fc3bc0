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
from typing import Annotated, Any, Literal, Union

import msgspec

__all__ = [
    "ATTRIBUTE_TYPES",
    "DOMAINS",
    "EVENT_TYPES",
    "Event",
    "MAX_ATTRIBUTE_DEPTH",
    "MAX_EVENT_BYTES",
    "YEARS",
    "Rejection",
    "REJECT_REASONS",
    "decode_lines",
    "decode_one",
    "event_json_schema",
]

DOMAINS = ("finance", "investment", "procurement", "governance")

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]

# Bounds that keep one record from costing the engine more than any other:
# a record longer than this is rejected unread,
MAX_EVENT_BYTES = 1 << 20
# ``attributes`` nest at most this deep (the attributes object is level 1),
MAX_ATTRIBUTE_DEPTH = 10
# and business time lies in these years, so that every shift, window and
# calendar computation stays inside what a datetime can hold.
YEARS = (1900, 2999)

_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


def _attribute_value(levels: int) -> Any:
    """A JSON value nesting at most ``levels`` deep, integers within 64 bits:
    msgspec stops at the first level too deep instead of recursing on."""
    value: Any = Union[str, _Int64, float, bool, None]
    for _ in range(levels - 1):
        value = Union[str, _Int64, float, bool, None, list[value], dict[str, value]]
    return value


AttributeValue = _attribute_value(MAX_ATTRIBUTE_DEPTH - 1)


class Event(msgspec.Struct, kw_only=True, gc=False):
    """One business event (contract 1). Unknown top-level keys are ignored;
    unknown keys inside ``attributes`` are kept."""

    event_id: Annotated[str, msgspec.Meta(min_length=1, description="Unique within its source; the idempotency key.")]
    source: Annotated[str, msgspec.Meta(min_length=1, description="The system it came from, e.g. erp-finance.")]
    domain: Literal["finance", "investment", "procurement", "governance"]
    type: Annotated[str, msgspec.Meta(min_length=1, description="Event type, e.g. payment, purchase_order.")]
    occurred_at: Annotated[
        dt.datetime,
        msgspec.Meta(tz=True, description=f"Business time, RFC 3339 with an offset, in the years {YEARS[0]}-{YEARS[1]}; windows use it."),
    ]
    org_id: Annotated[str, msgspec.Meta(min_length=1, description="The group company or subsidiary.")]
    amount: Annotated[float, msgspec.Meta(ge=0, description="In `currency`.")] | None = None
    currency: NonEmpty = "CNY"
    counterparty_id: str | None = None
    counterparty_name: str | None = None
    attributes: Annotated[
        dict[str, AttributeValue],
        msgspec.Meta(description=f"Type-specific fields; unknown keys are kept. At most {MAX_ATTRIBUTE_DEPTH} "
                                 f"levels deep, integers within 64 bits; a record is at most {MAX_EVENT_BYTES >> 20} MiB."),
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
    # the review process, from the office/approval system (review_controls.yaml)
    "matter_submitted": "governance",
    "review_step": "governance",
    # master data and tender results (docs/master-data.md)
    "supplier_profile": "procurement",
    "employee_profile": "governance",
    "tender_bid": "procurement",
    "goods_transfer": "procurement",
    # major projects, start to end (the investment system), and legal cases (the legal system)
    "project_stage": "investment",
    "legal_case": "governance",
    # training and the compliance commitment (the HR/training system)
    "training_completed": "governance",
    "commitment_signed": "governance",
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
    "matter_id": "str",
    "matter_kind": "str",
    "drafter_id": "str",
    "step": "str",
    "reviewer_post": "str",
    "reviewer_id": "str",
    "opinion": "str",
    "opinion_no": "str",
    # master data: suppliers and bidders (counterparty_id, counterparty_name) and employees
    "credit_code": "str",
    "legal_rep": "str",
    "legal_rep_id": "str",
    "shareholders": "str",
    "bank_accounts": "str",
    "bank_account": "str",
    "phone": "str",
    "address": "str",
    "employee_id": "str",
    "name": "str",
    "id_number": "str",
    "department": "str",
    "post": "str",
    "active": "bool",
    # tender results: one tender_bid per bid of a lot, sent once the lot is awarded
    "lot_id": "str",
    "rank": "num",
    "bids_in_lot": "num",
    "winner_id": "str",
    # trading: a change of title to goods (货权转移), the org's own or along the chain it records
    "seller_id": "str",
    "buyer_id": "str",
    "goods": "str",
    # a major project's stages: initiation, feasibility, decision, contracting, implementation, acceptance
    "stage": "str",
    # a legal case: jurisdiction an ISO 3166-1 alpha-2 code (CN: mainland China), role defendant or
    # plaintiff, status filed, served, responded, hearing, judgment, settled or closed
    "case_id": "str",
    "jurisdiction": "str",
    "role": "str",
    "status": "str",
    "court": "str",
    # who acts: a payment's approver, a contract's signer (a review step's reviewer above)
    "approver_id": "str",
    "approver_post": "str",
    "signer_id": "str",
    "signer_post": "str",
    # training and the commitment
    "course": "str",
    "course_kind": "str",
    "year": "num",
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
    "out_of_range",
    "too_deep",
    "too_large",
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
    if field.startswith("attributes[") and message.endswith(("got `object`", "got `array`")):
        return "too_deep", f"field 'attributes' nests deeper than {MAX_ATTRIBUTE_DEPTH} levels"
    if message.startswith("Number out of range") or message.startswith("Expected `int` <=") \
            or message.startswith("Expected `int` >="):
        return "out_of_range", f"field '{field}': number out of range (integers within 64 bits, finite numbers)"
    if field == "occurred_at":
        return "bad_timestamp", detail + " (RFC 3339 with an offset, e.g. 2026-03-02T10:00:00+08:00)"
    if field == "domain" and message.startswith("Invalid enum value"):
        return "unknown_domain", detail + f" (one of {', '.join(DOMAINS)})"
    if field == "amount" and ">= 0" in message:
        return "negative_amount", detail
    if "length >= 1" in message:
        return "empty_field", f"field '{field}' is empty"
    return "wrong_type", detail


class _SourceOnly(msgspec.Struct):
    source: Any = None


_source_decoder = msgspec.json.Decoder(_SourceOnly)


def _source_of(raw: bytes) -> str:
    """The ``source`` of a record that is not an event, when it names one."""
    try:
        source = _source_decoder.decode(raw).source
    except (msgspec.DecodeError, RecursionError):
        return "unknown"
    return source if isinstance(source, str) and source else "unknown"


def _out_of_bounds(raw: bytes, event: Event | None) -> tuple[str, str] | None:
    """The bound a record breaks beyond what the decoder checks, if any."""
    if len(raw) > MAX_EVENT_BYTES:
        return "too_large", f"the record has {len(raw):,} bytes; at most {MAX_EVENT_BYTES:,} are read"
    if event is not None and not YEARS[0] <= event.occurred_at.year <= YEARS[1]:
        return "bad_timestamp", (f"field 'occurred_at': year {event.occurred_at.year} is outside "
                                 f"{YEARS[0]}–{YEARS[1]}")
    return None


def _rejection(raw: bytes, line: int, err: Exception) -> Rejection:
    if isinstance(err, RecursionError):  # the decoder's own guard, below any bound of ours
        reason, detail = "too_deep", f"the record nests deeper than {MAX_ATTRIBUTE_DEPTH} levels"
    else:
        reason, detail = _classify(err)
    return Rejection(line, reason, detail, raw, _source_of(raw) if len(raw) <= MAX_EVENT_BYTES else "unknown")


def decode_one(raw: bytes, line: int = 1) -> Event | Rejection:
    """Decode one JSON document into an Event, or say why not."""
    if len(raw) > MAX_EVENT_BYTES:
        reason, detail = _out_of_bounds(raw, None)
        return Rejection(line, reason, detail, raw)
    try:
        event = _decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError) as err:
        return _rejection(raw, line, err)
    broken = _out_of_bounds(raw, event)
    return event if broken is None else Rejection(line, *broken, raw, event.source)


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
    low, high = YEARS
    for i, raw in enumerate(lines):
        if len(raw) <= MAX_EVENT_BYTES:
            try:
                event = decode(raw)
            except (msgspec.DecodeError, RecursionError) as err:
                skipped.append(i)
                if raw.strip():  # blank lines are not records
                    rejected.append(_rejection(raw, numbers[i] if numbers is not None else first_line + i, err))
                continue
            if low <= event.occurred_at.year <= high:
                append(event)
                continue
        else:
            event = None
        skipped.append(i)
        line = numbers[i] if numbers is not None else first_line + i
        rejected.append(Rejection(line, *_out_of_bounds(raw, event), raw, event.source if event else "unknown"))
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
