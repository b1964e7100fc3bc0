"""The HTTP connector on a real local socket: 202 with counts, 400 with reasons,
limits, bearer tokens, and one record's fault kept to that record."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import ClientSession, web

from connectors.http import HttpLimits, create_http_app
from connectors.sink import MemorySink

EVENT = {"event_id": "p1", "source": "oa", "domain": "governance", "type": "decision",
         "occurred_at": "2026-03-02T10:00:00+08:00", "org_id": "SUB01", "attributes": {"decision_id": "JC1"}}


TOKEN = "rwh_test-token-0123456789abcdef"


async def _serve(sink, limits):
    runner = web.AppRunner(create_http_app(sink, ["rwh_other-token-0123456789abcdef", TOKEN], limits))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}"


def call(requests, limits=HttpLimits(max_bytes=4096, max_records=3), token=TOKEN):
    """Start the server, make the requests [(body, content_type)], return [(status, json)] and the sink."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    sink = MemorySink()

    async def go():
        runner, base = await _serve(sink, limits)
        try:
            async with ClientSession() as http:
                out = []
                for body, ctype in requests:
                    async with http.post(f"{base}/events", data=body, headers={"Content-Type": ctype, **headers}) as r:
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
    assert results[2] == (200, {"status": "ok", "accepted": 3, "rejected": 0, "unauthorized": 0})


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


def test_without_a_valid_token_nothing_is_taken():
    for token in (None, "rwh_wrong-token-0123456789abcdef", TOKEN[:-1]):
        results, sink = call([(orjson.dumps(EVENT), "application/json")], token=token)
        assert results[0][0] == 401, token
        assert results[1][1]["unauthorized"] == 1 and results[1][1]["accepted"] == 0
        assert sink.events == {} and sink.dead_letters == []


def test_a_deeply_nested_record_is_rejected_alone_with_its_index():
    """At 600 levels a decoder still parses it; at 5,000 none recurses that far:
    either way the record's neighbours are sent and it alone is rejected."""
    limits = HttpLimits(max_bytes=64 * 1024, max_records=10)
    for depth in (600, 5000):
        deep = orjson.dumps(dict(EVENT, event_id="deep")).replace(b'"attributes":{', b'"attributes":{"x":' + b"[" * depth
                                                                   + b"]" * depth + b",")
        body = b"[" + orjson.dumps(dict(EVENT, event_id="a")) + b"," + deep + b"," + orjson.dumps(dict(EVENT, event_id="b")) + b"]"
        results, sink = call([(body, "application/json")], limits=limits)
        status, answer = results[0]
        assert status == 400 and (answer["accepted"], answer["rejected"]) == (2, 1), depth
        assert [(e["index"], e["reason"]) for e in answer["errors"]] == [(1, "too_deep")]
        assert [orjson.loads(v)["event_id"] for _, v in sink.events["riskwatch.events.governance"]] == ["a", "b"]
        assert sink.dead_letters[0][0] == deep


def test_a_batch_the_broker_does_not_acknowledge_is_503_and_not_counted():
    from connectors.sink import DeliveryError

    class Unacknowledged(MemorySink):
        def flush(self) -> None:
            raise DeliveryError(1, "KafkaTimeoutError: delivery timed out")

    sink = Unacknowledged()

    async def go():
        runner, base = await _serve(sink, HttpLimits())
        try:
            async with ClientSession() as http:
                async with http.post(f"{base}/events", data=orjson.dumps(EVENT),
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}) as r:
                    posted = (r.status, await r.json())
                async with http.get(f"{base}/healthz") as r:
                    return posted, await r.json()
        finally:
            await runner.cleanup()

    (status, body), health = asyncio.run(go())
    assert status == 503 and "send again" in body["error"] and "did not acknowledge 1 records" in body["error"]
    assert health["accepted"] == 0
