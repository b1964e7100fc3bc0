"""The Kafka sink never counts a record as sent that the broker did not acknowledge."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.future import Future

from connectors.sink import DeliveryError, KafkaSink


class _Producer:
    """Records each send's future, as kafka-python returns it; flush leaves them to the test."""

    def __init__(self) -> None:
        self.futures: list[Future] = []

    def send(self, topic, key=None, value=None, headers=None) -> Future:
        self.futures.append(Future())
        return self.futures[-1]

    def flush(self) -> None:
        pass


def _sink() -> tuple[KafkaSink, _Producer]:
    sink = KafkaSink.__new__(KafkaSink)  # no broker: the producer is the fake's
    sink.producer = _Producer()
    sink._failures = []
    return sink, sink.producer


def test_flush_raises_for_records_the_broker_did_not_acknowledge_and_then_starts_afresh():
    sink, producer = _sink()
    sink.send_event("procurement", "SUB01", b"{}")
    sink.send_event("procurement", "SUB01", b"{}")
    sink.send_dead_letter(b"x", "not_json", "not JSON", "file a.jsonl", "line 3")
    producer.futures[0].success(None)
    producer.futures[1].failure(KafkaTimeoutError("delivery timed out"))
    producer.futures[2].failure(KafkaTimeoutError("delivery timed out"))
    with pytest.raises(DeliveryError) as raised:
        sink.flush()
    assert raised.value.failed == 2
    assert "2 records" in str(raised.value) and "KafkaTimeoutError" in str(raised.value)
    sink.send_event("procurement", "SUB01", b"{}")
    producer.futures[3].success(None)
    sink.flush()  # the failures were reported once
