"""The Kafka topics of contract 5, and creating or checking them.

    riskwatch topics create [--broker kafka://127.0.0.1:9092] [--partitions 8]
    riskwatch topics check
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from monitor.core.event import DOMAINS

__all__ = ["ALERTS_TOPIC", "DEADLETTER_TOPIC", "EVENT_TOPICS", "TopicSpec", "bootstrap_servers", "check_topics",
           "create_topics", "default_broker", "topic_specs"]

EVENT_TOPICS = {domain: f"riskwatch.events.{domain}" for domain in DOMAINS}
ALERTS_TOPIC = "riskwatch.alerts"
DEADLETTER_TOPIC = "riskwatch.deadletter"
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def default_broker() -> str:
    """The broker URL: $RISKWATCH_BROKER or the local development broker."""
    return os.environ.get("RISKWATCH_BROKER", "kafka://127.0.0.1:9092")


def bootstrap_servers(broker: str) -> list[str]:
    """``kafka://h1:9092;h2:9092`` (faust's form) -> ``["h1:9092", "h2:9092"]``.

    >>> bootstrap_servers("kafka://127.0.0.1:9092")
    ['127.0.0.1:9092']
    """
    hosts = broker.split("://", 1)[-1]
    return [h for h in hosts.replace(",", ";").split(";") if h]


def topic_specs(partitions: int = 8) -> list[TopicSpec]:
    """Event topics keep a week (a replay window for a worker that was down);
    alerts are compacted to the latest version of each alert; the dead-letter
    topic keeps a month for people to look at."""
    events = [TopicSpec(name, partitions, {"retention.ms": str(7 * DAY_MS)}) for name in EVENT_TOPICS.values()]
    return events + [
        TopicSpec(ALERTS_TOPIC, partitions, {"cleanup.policy": "compact", "min.compaction.lag.ms": str(DAY_MS)}),
        TopicSpec(DEADLETTER_TOPIC, 1, {"retention.ms": str(30 * DAY_MS)}),
    ]


def create_topics(broker: str, partitions: int = 8) -> tuple[list[str], list[str]]:
    """Create the missing topics; returns (created, already there)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(broker), client_id="riskwatch-topics")
    try:
        existing = set(admin.list_topics())
        wanted = topic_specs(partitions)
        new = [NewTopic(s.name, s.partitions, 1 if _single_node(admin) else 3, topic_configs=s.config)
               for s in wanted if s.name not in existing]
        if new:
            admin.create_topics(new)
        return [t.name for t in new], [s.name for s in wanted if s.name in existing]
    finally:
        admin.close()


def _single_node(admin) -> bool:
    return len(admin.describe_cluster()["brokers"]) < 3


def check_topics(broker: str) -> list[str]:
    """Problems with the topics (missing ones, too few partitions); empty when fine."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(broker), client_id="riskwatch-topics")
    try:
        names = set(admin.list_topics())
        wanted = [s for s in topic_specs() if s.name in names]
        partitions = {t["name"]: len(t["partitions"]) for t in admin.describe_topics([s.name for s in wanted])}
    finally:
        admin.close()
    problems = [f"topic {s.name} is missing (run: riskwatch topics create)" for s in topic_specs() if s.name not in names]
    events = [partitions[s.name] for s in wanted if s.name.startswith("riskwatch.events.")]
    if len(set(events)) > 1:
        problems.append(f"event topics differ in partition count ({sorted(set(events))}): an org's events "
                        "must land in the same partition number on every topic")
    return problems
