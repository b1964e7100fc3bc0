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
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from connectors.sink import EventSink
from monitor.core.event import Event, decode_one

__all__ = ["HttpLimits", "create_http_app"]


COUNTS: web.AppKey["_Counts"] = web.AppKey("counts")


@dataclass(frozen=True)
class HttpLimits:
    max_bytes: int = 4 * 1024 * 1024
    max_records: int = 10_000


@dataclass
class _Counts:
    accepted: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def _split(body: bytes, content_type: str) -> list[bytes] | None:
    """The records of a request body as raw JSON documents; None if the body is not JSON."""
    if content_type in ("application/x-ndjson", "application/jsonl", "application/json-lines"):
        return [line for line in body.splitlines() if line.strip()]
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(value, list):
        return [orjson.dumps(item) for item in value]
    return [body]


def create_http_app(sink: EventSink, limits: HttpLimits = HttpLimits(), origin: str = "http") -> web.Application:
    counts = _Counts()
    lock = asyncio.Lock()  # one flush at a time through the (thread-safe) producer

    async def post_events(request: web.Request) -> web.Response:
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
            await loop.run_in_executor(None, send)
        counts.accepted += len(good)
        counts.rejected += len(errors)
        for e in errors:
            counts.reasons[e["reason"]] = counts.reasons.get(e["reason"], 0) + 1
        status = 202 if not errors else 400
        return web.json_response({"accepted": len(good), "rejected": len(errors), "errors": errors}, status=status)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "accepted": counts.accepted, "rejected": counts.rejected})

    app = web.Application(client_max_size=limits.max_bytes)
    app.router.add_post("/events", post_events)
    app.router.add_get("/healthz", health)
    app[COUNTS] = counts
    return app
