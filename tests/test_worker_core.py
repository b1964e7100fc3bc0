"""The worker's core without Kafka: state in a table of bytes survives a new worker."""

from __future__ import annotations

import orjson

from monitor.worker import Message, WorkerCore, org_prefix_partitioner
from tests.conftest import make_event


def message(offset: int, event=None, raw: bytes | None = None) -> Message:
    value = raw if raw is not None else orjson.dumps(_plain(event))
    return Message("riskwatch.events.procurement", 3, offset, value)


def _plain(event):
    import msgspec

    return msgspec.to_builtins(event)


def po(i, day, amount):
    return make_event(i, type="purchase_order", amount=amount, counterparty_id="S1",
                      occurred_at=f"2026-03-{day:02d}T10:00:00+08:00", attributes={"category": "goods", "method": "inquiry"})


def test_state_and_alerts_continue_in_a_new_worker_over_the_same_table(default_pack):
    table: dict[bytes, bytes] = {}
    first = WorkerCore(default_pack, table)
    out = first.process([message(1, po(1, 2, 1_200_000))])
    assert out.alerts == [] and any(b"proc_split_purchase" in k for k in table)
    second = WorkerCore(default_pack, table)  # a restarted worker: nothing but the table
    out = second.process([message(2, po(2, 9, 900_000)), message(3, po(1, 2, 1_200_000))])
    assert [(a.rule_id, sorted(a.event_ids)) for a in out.alerts] == [("proc_split_purchase", ["e1", "e2"])]
    third = WorkerCore(default_pack, table)
    out = third.process([message(4, po(3, 12, 100_000))])
    assert [(a.rule_id, sorted(a.event_ids), a.count) for a in out.alerts] == [("proc_split_purchase", ["e1", "e2", "e3"], 2)]


def test_bad_messages_become_dead_letters_with_their_position(default_pack):
    core = WorkerCore(default_pack, {})
    out = core.process([message(7, raw=b"{nope"), message(8, raw=b"[1]"), Message("riskwatch.events.finance", 0, 9, None)])
    assert [(m.offset, r.reason) for m, r in out.dead_letters] == [(7, "not_json"), (8, "not_object"), (9, "not_json")]


def test_partitioner_puts_state_with_its_orgs_events():
    from aiokafka.partitioner import DefaultPartitioner
    from kafka.partitioner.default import murmur2

    parts = list(range(8))
    for org in (b"SUB01", b"SUB07", "江城".encode()):
        event_partition = (murmur2(org) & 0x7FFFFFFF) % 8  # where kafka-python (our connectors) puts the event
        assert DefaultPartitioner()(org, parts, parts) == event_partition  # and where aiokafka would
        assert org_prefix_partitioner(org, parts, parts) == event_partition
        assert org_prefix_partitioner(org + b"\x1fwindow\x1frule\x1f\x92", parts, parts) == event_partition
