"""The HTTP connector on a real local socket: 202 with counts, 400 with reasons, limits."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import ClientSession, web

from connectors.http import HttpLimits, create_http_app
from connectors.sink import MemorySink

EVENT = {"event_id": "p1", "source": "oa", "domain": "governance", "type": "decision",
         "occurred_at": "2026-03-02T10:00:00+08:00", "org_id": "SUB01", "attributes": {"decision_id": "JC1"}}


async def _serve(sink, limits):
    runner = web.AppRunner(create_http_app(sink, limits))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}"


def call(requests, limits=HttpLimits(max_bytes=4096, max_records=3)):
    """Start the server, make the requests [(body, content_type)], return [(status, json)] and the sink."""
    sink = MemorySink()

    async def go():
        runner, base = await _serve(sink, limits)
        try:
            async with ClientSession() as http:
                out = []
                for body, ctype in requests:
                    async with http.post(f"{base}/events", data=body, headers={"Content-Type": ctype}) as r:
                        text = await r.text()
                        try:
                            out.append((r.status, orjson.loads(text)))
                        except orjson.JSONDecodeError:
                            out.append((r.status, text))
                async with http.get(f"{base}/healthz") as r:
                    out.append((r.status, await r.json()))
                return out
        finally:
            await runner.cleanup()

    return asyncio.run(go()), sink


def test_one_event_and_a_batch_are_accepted():
    batch = [dict(EVENT, event_id="p2"), dict(EVENT, event_id="p3")]
    results, sink = call([(orjson.dumps(EVENT), "application/json"), (orjson.dumps(batch), "application/json")])
    assert results[:2] == [(202, {"accepted": 1, "rejected": 0, "errors": []}),
                           (202, {"accepted": 2, "rejected": 0, "errors": []})]
    assert [orjson.loads(v)["event_id"] for _, v in sink.events["riskwatch.events.governance"]] == ["p1", "p2", "p3"]
    assert results[2] == (200, {"status": "ok", "accepted": 3, "rejected": 0})


def test_invalid_records_get_400_with_reasons_and_go_to_dead_letters():
    body = b"\n".join([orjson.dumps(EVENT), b"{bad", orjson.dumps(dict(EVENT, org_id=None))])
    results, sink = call([(body, "application/x-ndjson")])
    status, answer = results[0]
    assert status == 400 and (answer["accepted"], answer["rejected"]) == (1, 2)
    assert [(e["index"], e["reason"]) for e in answer["errors"]] == [(1, "not_json"), (2, "wrong_type")]
    assert [h["riskwatch.position"] for _, h in sink.dead_letters] == ["record 1", "record 2"]


def test_body_that_is_not_json_is_dead_lettered():
    results, sink = call([(b"<xml/>", "application/json")])
    assert results[0][0] == 400 and results[0][1]["errors"][0]["reason"] == "not_json"
    assert sink.dead_letters[0][0] == b"<xml/>"


def test_request_limits():
    too_many = orjson.dumps([dict(EVENT, event_id=f"p{i}") for i in range(4)])
    too_big = orjson.dumps([dict(EVENT, event_id="x" * 5000)])
    results, sink = call([(too_many, "application/json"), (too_big, "application/json")])
    assert [r[0] for r in results[:2]] == [413, 413]
    assert sink.events == {} and sink.dead_letters == []
