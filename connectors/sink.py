"""Where connectors put events: a narrow port, Kafka behind it, a fake for tests.

Events go to ``riskwatch.events.<domain>`` keyed by ``org_id``; records that
cannot become events go to ``riskwatch.deadletter`` with their original bytes
and the reason in headers. The Kafka producer is idempotent with acks=all, so a
retried send neither loses nor duplicates a record; one the broker never
acknowledges (it stayed away past the delivery timeout) makes ``flush`` raise
``DeliveryError``, so no caller counts it as sent.
"""

from __future__ import annotations

import time
from typing import Iterable, Protocol

from monitor.runners.topics import DEADLETTER_TOPIC, EVENT_TOPICS, bootstrap_servers

__all__ = ["BrokerUnreachable", "DeliveryError", "MissingTopics", "EventSink", "KafkaSink", "MemorySink", "dead_letter_headers"]


class EventSink(Protocol):
    def send_event(self, domain: str, org_id: str, value: bytes) -> None: ...

    def send_events(self, records: Iterable[tuple[str, str, bytes]]) -> None:
        """Many ``(domain, org_id, value)`` at once, in order within each topic."""

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


class BrokerUnreachable(ConnectionError):
    """No broker answered when the sink started."""


class MissingTopics(Exception):
    """The broker lacks topics the sink sends to."""


class KafkaSink:
    """librdkafka's producer (confluent-kafka): idempotent, acks=all, batched.

    ``flush`` waits for every record sent since the last one and raises
    ``DeliveryError`` if any was not acknowledged. Keys are partitioned with
    murmur2, as Kafka's Java clients and kafka-python do: an org's events land
    on the partition whose state the worker keeps for it
    (``monitor.runners.topics.org_partition``). librdkafka's own default
    (CRC32) would scatter them.

    A send queues the record and returns (a full queue waits for the broker to
    take some): about 20 times the rate of kafka-python's producer, whose
    every send runs in Python.
    """

    def __init__(self, broker: str, client_id: str = "riskwatch-connector", connect_timeout: float = 10.0):
        from confluent_kafka import KafkaException, Producer

        self._down: str | None = None  # librdkafka's word that no broker can be reached
        self.producer = Producer({
            "bootstrap.servers": ",".join(bootstrap_servers(broker)), "client.id": client_id,
            "enable.idempotence": True, "acks": "all",  # retries cannot reorder or double a record
            "linger.ms": 5, "partitioner": "murmur2_random", "delivery.timeout.ms": 120_000,
            "delivery.report.only.error": True,  # a report per failed record only: one per record costs more than its send
            "error_cb": self._on_error, "log_level": 0,  # errors come to us, not to stderr
        })
        self._failures: list = []  # from delivery reports, served by poll() and flush()
        self._unpolled = 0
        self._keys: dict[str, bytes] = {}  # org -> its key, encoded once
        # A broker that is up answers in milliseconds; one that refuses is said at once,
        # not after the delivery timeout.
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                metadata = self.producer.list_topics(timeout=0.5)
                break
            except KafkaException as exc:
                self.producer.poll(0)  # serves error_cb
                if self._down or time.monotonic() >= deadline:
                    raise BrokerUnreachable(f"no Kafka broker answered at {broker} ({self._down or exc})") from exc
        missing = [t for t in (*EVENT_TOPICS.values(), DEADLETTER_TOPIC) if t not in metadata.topics]
        if missing:  # a send would fail record by record: say it once, before reading anything
            raise MissingTopics(f"topic {', '.join(missing)} missing at {broker} (run: riskwatch topics create)")

    def _on_error(self, err) -> None:
        from confluent_kafka import KafkaError

        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._down = err.str()

    def _report(self, err, _msg) -> None:
        if err is not None:
            self._failures.append(err)

    def _produce(self, topic: str, value: bytes, key: bytes | None = None, headers=None) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers, on_delivery=self._report)
                break
            except BufferError:  # the local queue is full: let the broker take some
                self.producer.poll(0.05)
        self._unpolled += 1
        if self._unpolled >= 10_000:  # delivery reports are served by poll: keep their backlog small
            self._unpolled = 0
            self.producer.poll(0)

    def send_event(self, domain: str, org_id: str, value: bytes) -> None:
        self._produce(EVENT_TOPICS[domain], value, org_id.encode())

    def send_events(self, records: Iterable[tuple[str, str, bytes]]) -> None:
        by_domain: dict[str, list[dict]] = {domain: [] for domain in EVENT_TOPICS}
        keys = self._keys
        for domain, org_id, value in records:
            key = keys.get(org_id)
            if key is None:
                key = keys[org_id] = org_id.encode()
                if len(keys) > 100_000:  # a bound, not a cache of every org ever seen
                    keys.clear()
            by_domain[domain].append({"value": value, "key": key})
        for domain, messages in by_domain.items():
            if messages:
                self._produce_batch(EVENT_TOPICS[domain], messages)

    def _produce_batch(self, topic: str, messages: list[dict]) -> None:
        """One call into librdkafka for many records: what a full queue refused is
        offered again once the broker has taken some; any other refusal is a failure."""
        from confluent_kafka import KafkaError

        while messages:
            if self.producer.produce_batch(topic, messages, on_delivery=self._report) == len(messages):
                break
            refused = [m for m in messages if "_error" in m]
            messages = []
            for m in refused:
                err = m.pop("_error")
                if err.code() == KafkaError._QUEUE_FULL:
                    messages.append(m)
                else:
                    self._failures.append(err)
            if messages:
                self.producer.poll(0.05)
        self.producer.poll(0)

    def send_dead_letter(self, raw: bytes, reason: str, detail: str, origin: str, position: str) -> None:
        self._produce(DEADLETTER_TOPIC, raw, None, dead_letter_headers(reason, detail, origin, position))

    def flush(self) -> None:
        left = self.producer.flush()  # waits up to the delivery timeout: each record is acknowledged or failed
        if left:
            self._failures.extend(["not delivered at flush"] * left)
        if self._failures:
            failed, self._failures = self._failures, []
            first = failed[0]
            raise DeliveryError(len(failed), f"{first.name()}: {first.str()}" if hasattr(first, "name") else str(first))

    def close(self) -> None:
        self.producer.flush(5)  # what the caller did not flush is not waited for long


class MemorySink:
    """Keeps what was sent, per topic, for unit tests."""

    def __init__(self) -> None:
        self.events: dict[str, list[tuple[bytes, bytes]]] = {}
        self.dead_letters: list[tuple[bytes, dict[str, str]]] = []

    def send_event(self, domain: str, org_id: str, value: bytes) -> None:
        self.events.setdefault(EVENT_TOPICS[domain], []).append((org_id.encode(), value))

    def send_events(self, records: Iterable[tuple[str, str, bytes]]) -> None:
        for domain, org_id, value in records:
            self.send_event(domain, org_id, value)

    def send_dead_letter(self, raw: bytes, reason: str, detail: str, origin: str, position: str) -> None:
        headers = {k: v.decode() for k, v in dead_letter_headers(reason, detail, origin, position)}
        self.dead_letters.append((raw, headers))

    def flush(self) -> None:
        pass
