"""The Kafka sink never counts a record as sent that the broker did not acknowledge."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError

from connectors.sink import BrokerUnreachable, DeliveryError, KafkaSink


class _Producer:
    """Keeps each record's delivery callback, as librdkafka would call it from poll or flush;
    flush leaves the outcomes to the test (``outcomes``: None for acknowledged, or an error)."""

    def __init__(self) -> None:
        self.callbacks: list = []
        self.outcomes: dict[int, KafkaError | None] = {}
        self.served = 0

    def produce(self, topic, value=None, key=None, headers=None, on_delivery=None) -> None:
        self.callbacks.append(on_delivery)

    def poll(self, timeout=None) -> int:
        return 0

    def flush(self, timeout=None) -> int:
        for i in range(self.served, len(self.callbacks)):
            self.callbacks[i](self.outcomes.get(i), None)
        self.served = len(self.callbacks)
        return 0


def _sink() -> tuple[KafkaSink, _Producer]:
    sink = KafkaSink.__new__(KafkaSink)  # no broker: the producer is the fake's
    sink.producer = _Producer()
    sink._failures = []
    sink._unpolled = 0
    return sink, sink.producer


def test_flush_raises_for_records_the_broker_did_not_acknowledge_and_then_starts_afresh():
    sink, producer = _sink()
    sink.send_event("procurement", "SUB01", b"{}")
    sink.send_event("procurement", "SUB01", b"{}")
    sink.send_dead_letter(b"x", "not_json", "not JSON", "file a.jsonl", "line 3")
    producer.outcomes[1] = producer.outcomes[2] = KafkaError(KafkaError._MSG_TIMED_OUT)
    with pytest.raises(DeliveryError) as raised:
        sink.flush()
    assert raised.value.failed == 2
    assert "2 records" in str(raised.value) and "_MSG_TIMED_OUT" in str(raised.value)
    sink.send_event("procurement", "SUB01", b"{}")
    sink.flush()  # the failures were reported once


def test_no_broker_is_said_at_once_not_after_the_delivery_timeout():
    started = time.monotonic()
    with pytest.raises(BrokerUnreachable, match="no Kafka broker answered at kafka://127.0.0.1:1"):
        KafkaSink("kafka://127.0.0.1:1", connect_timeout=30.0)
    assert time.monotonic() - started < 10  # a refused connection is not waited out
