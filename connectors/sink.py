"""Where connectors put events: a narrow port, Kafka behind it, a fake for tests.

Events go to ``riskwatch.events.<domain>`` keyed by ``org_id``; records that
cannot become events go to ``riskwatch.deadletter`` with their original bytes
and the reason in headers. The Kafka producer is idempotent with acks=all, so a
retried send neither loses nor duplicates a record; one the broker never
acknowledges (it stayed away past the delivery timeout) makes ``flush`` raise
``DeliveryError``, so no caller counts it as sent.
"""

from __future__ import annotations

from typing import Protocol

from monitor.runners.topics import DEADLETTER_TOPIC, EVENT_TOPICS, bootstrap_servers

__all__ = ["DeliveryError", "EventSink", "KafkaSink", "MemorySink", "dead_letter_headers"]


class EventSink(Protocol):
    def send_event(self, domain: str, org_id: str, value: bytes) -> None: ...

    def send_dead_letter(self, raw: bytes, reason: str, detail: str, origin: str, position: str) -> None: ...

    def flush(self) -> None: ...


def dead_letter_headers(reason: str, detail: str, origin: str, position: str) -> list[tuple[str, bytes]]:
    """Headers of a dead letter: why, and where it came from (a topic or a file)."""
    return [("riskwatch.reason", reason.encode()), ("riskwatch.detail", detail.encode()),
            ("riskwatch.source", origin.encode()), ("riskwatch.position", position.encode())]


class DeliveryError(Exception):
    """Records the broker did not acknowledge since the last flush.

    >>> str(DeliveryError(3, "KafkaTimeoutError: delivery timed out"))
    'the broker did not acknowledge 3 records (first: KafkaTimeoutError: delivery timed out)'
    """

    def __init__(self, failed: int, first: str):
        super().__init__(f"the broker did not acknowledge {failed} records (first: {first})")
        self.failed = failed


class KafkaSink:
    """kafka-python producer: idempotent, acks=all, small linger for batching.

    ``flush`` waits for every record sent since the last one and raises
    ``DeliveryError`` if any was not acknowledged.
    """

    def __init__(self, broker: str, client_id: str = "riskwatch-connector"):
        from kafka import KafkaProducer

        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers(broker), client_id=client_id, acks="all",
            enable_idempotence=True, linger_ms=5, batch_size=256 * 1024, max_in_flight_requests_per_connection=5,
            retries=2**31 - 1, delivery_timeout_ms=120_000,
            bootstrap_timeout_ms=10_000,  # a broker that is up answers in milliseconds; say so sooner
        )
        self._failures: list[BaseException] = []  # appended from the producer's I/O thread

    def send_event(self, domain: str, org_id: str, value: bytes) -> None:
        self.producer.send(EVENT_TOPICS[domain], key=org_id.encode(), value=value).add_errback(self._failures.append)

    def send_dead_letter(self, raw: bytes, reason: str, detail: str, origin: str, position: str) -> None:
        self.producer.send(DEADLETTER_TOPIC, value=raw, headers=dead_letter_headers(reason, detail, origin, position)) \
            .add_errback(self._failures.append)

    def flush(self) -> None:
        self.producer.flush()  # kafka-python's flush returns even when records failed: ask their futures
        if self._failures:
            failed, self._failures = self._failures, []
            raise DeliveryError(len(failed), f"{type(failed[0]).__name__}: {failed[0]}")

    def close(self) -> None:
        self.producer.close()


class MemorySink:
    """Keeps what was sent, per topic, for unit tests."""

    def __init__(self) -> None:
        self.events: dict[str, list[tuple[bytes, bytes]]] = {}
        self.dead_letters: list[tuple[bytes, dict[str, str]]] = []

    def send_event(self, domain: str, org_id: str, value: bytes) -> None:
        self.events.setdefault(EVENT_TOPICS[domain], []).append((org_id.encode(), value))

    def send_dead_letter(self, raw: bytes, reason: str, detail: str, origin: str, position: str) -> None:
        headers = {k: v.decode() for k, v in dead_letter_headers(reason, detail, origin, position)}
        self.dead_letters.append((raw, headers))

    def flush(self) -> None:
        pass
