"""The HTTP push connector: source systems POST events; they land on Kafka.

    riskwatch connect http [--host 127.0.0.1] [--port 8088] [--broker ...]

``POST /events`` takes one event (a JSON object), a batch (a JSON array), or
JSON Lines (``Content-Type: application/x-ndjson``). Every record is checked
against the event contract:

- all valid: they are sent (idempotent producer, acks=all, flushed before the
  answer) and the answer is ``202 {"accepted": n, "rejected": 0}``;
- some invalid: the valid ones are still sent, the invalid ones go to the
  dead-letter topic, and the answer is ``400`` with the counts and, per
  rejected record, its index, reason and detail — so the sender knows exactly
  which to fix and resend.

Requests over ``max_bytes`` get 413 before anything is read; over
``max_records`` records, 413 too. ``GET /healthz`` is for probes.

Every ``POST`` needs ``Authorization: Bearer <token>`` with one of the
connector's tokens (``riskwatch connect http --tokens-file``, or
``RISKWATCH_HTTP_TOKENS``); anything else is 401 and counted.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import msgspec
from aiohttp import web

from connectors.sink import DeliveryError, EventSink
from monitor.core.event import Event, decode_one

__all__ = ["HttpLimits", "create_http_app", "read_tokens"]

log = logging.getLogger(__name__)


COUNTS: web.AppKey["_Counts"] = web.AppKey("counts")


@dataclass(frozen=True)
class HttpLimits:
    max_bytes: int = 4 * 1024 * 1024
    max_records: int = 10_000


@dataclass
class _Counts:
    accepted: int = 0
    rejected: int = 0
    unauthorized: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


_items = msgspec.json.Decoder(list[msgspec.Raw]).decode
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]')


def _split_array(body: bytes) -> list[bytes] | None:
    """The items of a JSON array, cut at its top-level commas without parsing
    them: for items nested past what a decoder will recurse into, which are
    then each rejected by themselves. None if the brackets do not balance."""
    items, depth, start = [], 0, None
    for m in _TOKEN.finditer(body):
        token = m.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth == 1:
                start = m.end()
        elif token in (b"]", b"}"):
            depth -= 1
            if depth == 0:
                items.append(body[start:m.start()])
                break
        elif token == b"," and depth == 1:
            items.append(body[start:m.start()])
            start = m.end()
    if depth != 0:
        return None
    return [item.strip() for item in items if item.strip()]


def _split(body: bytes, content_type: str) -> list[bytes] | None:
    """The records of a request body as raw JSON documents; None if the body is not JSON.

    >>> _split(b'[{"a": 1}, {"b": [2]}]', "application/json")
    [b'{"a": 1}', b'{"b": [2]}']
    """
    if content_type in ("application/x-ndjson", "application/jsonl", "application/json-lines"):
        return [line for line in body.splitlines() if line.strip()]
    if not body.lstrip().startswith(b"["):
        return [body]  # one record: decoding it says what is wrong with it
    try:
        return [bytes(item) for item in _items(body)]
    except RecursionError:
        return _split_array(body)
    except msgspec.DecodeError:
        return None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def read_tokens(lines: Iterable[str]) -> list[str]:
    """Tokens from a tokens file: one per line; blank lines and ``#`` comments skipped.

    >>> read_tokens(["# the ERP", "rwh_3f9a...", "", "rwh_77c1...  # OA"])
    ['rwh_3f9a...', 'rwh_77c1...']
    """
    return [t for line in lines if (t := line.split("#", 1)[0].strip())]


def create_http_app(sink: EventSink, tokens: Iterable[str], limits: HttpLimits = HttpLimits(),
                    origin: str = "http") -> web.Application:
    """The connector's app; ``tokens`` are the bearer tokens senders may use (at least one)."""
    digests = [_digest(t) for t in tokens]
    if not digests:
        raise ValueError("the HTTP connector needs at least one token")
    counts = _Counts()
    lock = asyncio.Lock()  # one flush at a time through the (thread-safe) producer

    def authorized(request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return False
        given = _digest(header[7:].strip())
        return any([hmac.compare_digest(given, d) for d in digests])  # every one compared: no timing by position

    async def post_events(request: web.Request) -> web.Response:
        if not authorized(request):
            counts.unauthorized += 1
            return web.json_response({"error": "a valid token is required: Authorization: Bearer <token>"},
                                     status=401, headers={"WWW-Authenticate": "Bearer"})
        if request.content_length is not None and request.content_length > limits.max_bytes:
            raise web.HTTPRequestEntityTooLarge(max_size=limits.max_bytes, actual_size=request.content_length)
        body = await request.read()
        records = _split(body, request.content_type)
        peer = request.remote or "unknown"
        loop = asyncio.get_running_loop()
        if records is None:
            await loop.run_in_executor(None, sink.send_dead_letter, body, "not_json", "request body is not JSON",
                                       f"{origin} {peer}", "body")
            counts.rejected += 1
            return web.json_response({"accepted": 0, "rejected": 1, "errors": [
                {"index": None, "reason": "not_json", "detail": "request body is not JSON"}]}, status=400)
        if len(records) > limits.max_records:
            return web.json_response({"error": f"at most {limits.max_records} records per request"}, status=413)
        good: list[tuple[Event, bytes]] = []
        errors: list[dict[str, Any]] = []
        for index, raw in enumerate(records):
            decoded = decode_one(raw, index)
            if isinstance(decoded, Event):
                good.append((decoded, raw))
            else:
                errors.append({"index": index, "reason": decoded.reason, "detail": decoded.detail})

        def send() -> None:
            for event, raw in good:
                sink.send_event(event.domain, event.org_id, raw)
            for error in errors:
                sink.send_dead_letter(records[error["index"]], error["reason"], error["detail"], f"{origin} {peer}",
                                      f"record {error['index']}")
            sink.flush()

        async with lock:
            try:
                await loop.run_in_executor(None, send)
            except DeliveryError as err:  # the sender keeps the batch and sends it again
                log.error("batch from %s not delivered: %s", peer, err)
                return web.json_response({"error": f"not accepted, send again: {err}"}, status=503)
        counts.accepted += len(good)
        counts.rejected += len(errors)
        for e in errors:
            counts.reasons[e["reason"]] = counts.reasons.get(e["reason"], 0) + 1
        status = 202 if not errors else 400
        return web.json_response({"accepted": len(good), "rejected": len(errors), "errors": errors}, status=status)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "accepted": counts.accepted, "rejected": counts.rejected,
                                  "unauthorized": counts.unauthorized})

    app = web.Application(client_max_size=limits.max_bytes)
    app.router.add_post("/events", post_events)
    app.router.add_get("/healthz", health)
    app[COUNTS] = counts
    return app
