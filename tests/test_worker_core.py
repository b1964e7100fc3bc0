"""The worker's core without Kafka: state in a table of bytes survives a new worker."""

from __future__ import annotations

import datetime as dt
import math

import orjson

from monitor.runners.changelog import ChangelogTable, org_partition
from monitor.runners.worker import Message, WorkerCore
from tests.conftest import live_state, make_event, org_watermarks


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
        assert org_partition(org, 8) == event_partition
        assert org_partition(org + b"\x1fwindow\x1frule\x1f\x92", 8) == event_partition


class FakeBatchProducer:
    """aiokafka's batch API, in memory: batches of at most ``limit`` records."""

    def __init__(self, limit: int = 3):
        self.limit, self.sent = limit, []

    def create_batch(self):
        producer = self

        class Batch(list):
            def append(self, key, value, timestamp):  # noqa: ARG002 - aiokafka's signature
                if len(self) >= producer.limit:
                    return None
                super().append((key, value))
                return object()

        return Batch()

    async def send_batch(self, batch, topic, *, partition):
        import asyncio

        self.sent.append((topic, partition, list(batch)))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def test_the_changelog_is_sent_in_batches_per_partition_with_tombstones():
    import asyncio

    from monitor.runners.changelog import ChangelogTable

    store: dict[bytes, bytes] = {b"SUB01\x1fold": b"x"}
    table = ChangelogTable(store, "app-riskwatch-state-changelog", partitions=8)
    for i in range(4):
        table[b"SUB01\x1fwindow\x1fr\x1f%d" % i] = b"v%d" % i
    table[b"SUB07\x1fwindow\x1fr\x1fk"] = b"w"
    table[b"SUB07\x1fwindow\x1fr\x1fk"] = b"w2"  # written twice, sent once
    del table[b"SUB01\x1fold"]
    producer = FakeBatchProducer(limit=3)
    assert asyncio.run(table.send_records(producer, table.take_pending())) == 6
    p1, p7 = org_partition(b"SUB01", 8), org_partition(b"SUB07", 8)
    sent = sorted(producer.sent)
    expected = sorted([
        ("app-riskwatch-state-changelog", p1, [(b"SUB01\x1fold", None), (b"SUB01\x1fwindow\x1fr\x1f0", b"v0"),
                                               (b"SUB01\x1fwindow\x1fr\x1f1", b"v1")]),
        ("app-riskwatch-state-changelog", p1, [(b"SUB01\x1fwindow\x1fr\x1f2", b"v2"), (b"SUB01\x1fwindow\x1fr\x1f3", b"v3")]),
        ("app-riskwatch-state-changelog", p7, [(b"SUB07\x1fwindow\x1fr\x1fk", b"w2")]),
    ])
    assert sent == expected
    assert b"SUB01\x1fold" not in store and store[b"SUB07\x1fwindow\x1fr\x1fk"] == b"w2"
    assert table.take_pending() == []  # nothing pending any more


def _stream_messages(events: int, partitions: int = 4) -> list[Message]:
    """A generated stream as Kafka would hold it: each org's events in its partition, offsets per partition."""
    from monitor.analyst.generator import generate

    from collections import Counter

    next_offset: Counter = Counter()
    out = []
    for line in generate(events=events, seed=5, malformed=0).lines:
        event = orjson.loads(line)
        tp = (f"riskwatch.events.{event['domain']}", org_partition(event["org_id"].encode(), partitions))
        out.append(Message(*tp, next_offset[tp], line.rstrip(b"\n")))
        next_offset[tp] += 1
    return out


def test_a_redelivered_batch_is_applied_once_by_rules_and_detectors(default_pack):
    """After a crash Kafka hands over again everything after the committed
    consumer offset, which may be older than the state recovered: the state
    must end as if each event had been seen once (detectors included)."""
    assert default_pack.detectors, "the default pack's detectors are what learn twice"
    messages = _stream_messages(6_000)
    once: dict[bytes, bytes] = {}
    clean = WorkerCore(default_pack, once)
    clean.evidence.max_events = 100  # held events per partition: the oldest go, the same ones in every run
    for start in range(0, len(messages), 500):
        clean.process(messages[start:start + 500])

    crashed: dict[bytes, bytes] = {}
    before = WorkerCore(default_pack, crashed)
    before.evidence.max_events = 100
    for start in range(0, 4_000, 500):
        before.process(messages[start:start + 500])
    after = WorkerCore(default_pack, dict(crashed))  # restarted on the recovered table
    after.evidence.max_events = 100
    redelivered = after.process(messages[2_000:2_500])  # the committed offsets lag the state by 2,000 events
    assert redelivered.redelivered == 500 and redelivered.scored == 0
    for start in range(2_500, len(messages), 500):
        after.process(messages[start:start + 500])
    marks = org_watermarks(m.value for m in messages)
    assert live_state(after.table, default_pack, marks) == live_state(once, default_pack, marks)
    from collections import Counter

    held = Counter(tuple(value.split(b"\x1f", 2)[:2]) for key, value in once.items() if b"\x1fheld\x1f" in key)
    assert max(held.values()) == 100 and len(held) > 4  # per topic partition, the busy ones at their bound


def test_a_restarted_worker_still_has_the_events_behind_its_next_alert(default_pack):
    table: dict[bytes, bytes] = {}
    WorkerCore(default_pack, table).process([message(1, po(1, 2, 1_200_000))])
    restarted = WorkerCore(default_pack, table)  # nothing but the table
    out = restarted.process([message(2, po(2, 9, 900_000))])
    assert [(a.rule_id, sorted(a.event_ids)) for a in out.alerts] == [("proc_split_purchase", ["e1", "e2"])]
    assert sorted(event["event_id"] for _, event in out.evidence) == ["e1", "e2"]  # e1 came from the table


# --- review controls when one input topic is read ahead of another ------------------------------

GOVERNANCE, PROCUREMENT = "riskwatch.events.governance", "riskwatch.events.procurement"


def _governance(offset: int, event_id: str, type_: str, day: int, matter: str, **attributes) -> Message:
    event = {"event_id": event_id, "source": "oa", "domain": "governance", "type": type_, "org_id": "SUB01",
             "occurred_at": f"2026-03-{day:02d}T09:00:00+08:00", "amount": 2_000_000,
             "attributes": {"matter_id": matter, "matter_kind": "contract", **attributes}}
    return Message(GOVERNANCE, 0, offset, orjson.dumps(event))


def _signed(offset: int, event_id: str, day: int, contract: str) -> Message:
    event = {"event_id": event_id, "source": "erp", "domain": "procurement", "type": "contract_signed",
             "org_id": "SUB01", "occurred_at": f"2026-03-{day:02d}T10:00:00+08:00", "amount": 2_000_000,
             "counterparty_id": "S1", "attributes": {"contract_id": contract, "legal_review": "none"}}
    return Message(PROCUREMENT, 0, offset, orjson.dumps(event))


def _by_matter(alerts) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a in alerts:
        matter = next(k for k in ("HT1", "HT2", "HT3", "HT9") if k in a.dedup_key)
        out.setdefault(matter, []).append(a.dedup_key.split("|")[0] + ":" + a.dedup_key.split("|")[-1])
    return out


def test_a_topic_read_ahead_neither_silences_nor_unclaims_a_matter_whose_signing_is_still_unread(default_pack):
    """As after a restart, the worker is handed 20 days of the OA's topic before
    the ERP's signings of the 2nd to 4th. HT1 was submitted on the 1st and signed
    on the 2nd with no review: executed early, not silent. HT2's signing is read
    first, while the OA's topic is unread: its flag rule's finding waits, and
    the control claims it once the submission of the 1st is read. HT3, signed
    on the 25th, the OA never mentions: its flag rule's ticket stands once
    everything is read, though the org's stream time never passes the 25th. A
    restart between the batches keeps what waits."""
    table: dict[bytes, bytes] = {}
    core = WorkerCore(default_pack, table)
    out = core.process([_signed(0, "c2", 2, "HT2"), _signed(1, "c3", 25, "HT3")], unread={(GOVERNANCE, 0)})
    assert out.alerts == []  # both wait: the OA's topic has not been read at all
    core.write_state()
    core = WorkerCore(default_pack, table)  # restarted: nothing but the table
    oa = [_governance(0, "s1", "matter_submitted", 1, "HT1", drafter_id="u1"),
          _governance(1, "s2", "matter_submitted", 1, "HT2", drafter_id="u1"),
          _governance(2, "s9", "matter_submitted", 20, "HT9", drafter_id="u1")]
    out = core.process(oa, unread={(PROCUREMENT, 0)})  # HT1's signing is still unread
    assert core.scorer.judge_until == -math.inf  # nothing read from procurement since the restart
    alerts = list(out.alerts)
    out = core.process([_signed(2, "c1", 4, "HT1")])
    alerts += out.alerts
    assert _by_matter(alerts) == {
        "HT1": ["RC-CON-01:executed_early:legal_review"],
        "HT2": ["RC-CON-01:executed_early:legal_review"],
        "HT3": ["proc_contract_without_legal_review:HT3"],
    }


def test_judging_stops_at_the_oldest_input_with_records_unread(default_pack):
    core = WorkerCore(default_pack, {})
    core.process([_governance(0, "s1", "matter_submitted", 1, "HT1", drafter_id="u1"),
                  _signed(0, "c1", 5, "HT1")])
    march = dt.datetime(2026, 3, 1, 9, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
    assert core.judge_until({(GOVERNANCE, 0)}) == march
    assert core.judge_until({(GOVERNANCE, 0), (PROCUREMENT, 0)}) == march
    assert core.judge_until({(PROCUREMENT, 0)}) == march + 4 * 86400 + 3600
    assert core.judge_until({(PROCUREMENT, 5)}) == -math.inf  # never read
    assert core.judge_until(()) == math.inf  # caught up everywhere
    assert core.judge_until(None) == -math.inf  # not known (no assignment, a rebalance under way)


def test_nothing_is_judged_past_what_is_read_while_the_inputs_are_not_known(default_pack):
    """A batch scored while the consumer knows no assignment (a restarted worker's
    group rebalancing as its dead predecessor leaves) judges nothing a later
    record on another input could change: HT2's signing waits, as if the OA's
    topic were unread, and is judged once the inputs are known and read."""
    core = WorkerCore(default_pack, {})
    out = core.process([_signed(0, "c2", 2, "HT2")], unread=None)
    assert out.alerts == []
    assert core.scorer.judge_until == -math.inf
    out = core.process([_governance(0, "s2", "matter_submitted", 1, "HT2", drafter_id="u1"),
                        _governance(1, "s9", "matter_submitted", 20, "HT9", drafter_id="u1")], unread=set())
    assert _by_matter(out.alerts) == {"HT2": ["RC-CON-01:executed_early:legal_review"]}


def test_idle_window_keys_are_kept_while_their_topic_is_behind(default_pack):
    """Twenty days of procurement are read before the finance topic's second
    payment of the same amount, five days after the first: the first payment's
    window key is not swept as idle, and the duplicate is found."""
    FINANCE = "riskwatch.events.finance"

    def payment(offset, event_id, day):
        event = {"event_id": event_id, "source": "erp", "domain": "finance", "type": "payment", "org_id": "SUB01",
                 "occurred_at": f"2026-03-{day:02d}T10:00:00+08:00", "amount": 86420.5, "counterparty_id": "S1",
                 "attributes": {"invoice_no": f"FP-{event_id}"}}
        return Message(FINANCE, 0, offset, orjson.dumps(event))

    core = WorkerCore(default_pack, {})
    core.process([payment(0, "p1", 1)], unread={(FINANCE, 0), (PROCUREMENT, 0)})
    core.process([_signed(i, f"c{i}", day, f"HT{i}") for i, day in enumerate(range(2, 22))], unread={(FINANCE, 0)})
    out = core.process([payment(1, "p2", 6)])
    assert [(a.rule_id, a.event_ids) for a in out.alerts if a.rule_id == "fin_duplicate_amount"] == [
        ("fin_duplicate_amount", ["p1", "p2"])]


def _another_orgs_payment() -> Message:
    other = {"event_id": "x1", "source": "erp", "domain": "finance", "type": "payment", "org_id": "SUB02",
             "occurred_at": "2026-03-10T10:00:00+08:00", "amount": 10.0}
    return Message("riskwatch.events.finance", 1, 0, orjson.dumps(other))


def test_a_restarted_worker_judges_what_a_lagging_topic_held_back_though_the_org_sends_nothing_more(default_pack):
    """HT1 is signed on the 2nd without a review; its execution check falls due
    on the 3rd, but the procurement topic lags, so it waits. The worker
    restarts; SUB01 sends nothing more. The org's stream time is kept in the
    table, so the next batch — of another org — judges it."""
    table: dict[bytes, bytes] = {}
    core = WorkerCore(default_pack, table)
    out = core.process([_signed(0, "c1", 2, "HT1")], unread={(PROCUREMENT, 0), (GOVERNANCE, 0)})
    out = core.process([_governance(0, "s1", "matter_submitted", 1, "HT1", drafter_id="u1"),
                        _governance(1, "s9", "matter_submitted", 9, "HT9", drafter_id="u1")], unread={(PROCUREMENT, 0)})
    assert out.alerts == []
    core.write_state()
    core = WorkerCore(default_pack, table)
    out = core.process([_another_orgs_payment()])
    assert _by_matter(out.alerts) == {"HT1": ["RC-CON-01:executed_early:legal_review"]}


def test_a_worker_taking_over_lists_the_table_its_recovery_wrote_behind_the_changelog_mapping(default_pack):
    """The same restart over the worker's own table mapping, which keeps its keys
    listed by kind: the matters, marks and held events a recovery wrote into the
    store behind it are found once it is told to list them again."""
    previous: dict[bytes, bytes] = {}  # what the previous owner committed
    core = WorkerCore(default_pack, previous)
    core.process([_signed(0, "c1", 2, "HT1")], unread={(PROCUREMENT, 0), (GOVERNANCE, 0)})
    core.process([_governance(0, "s1", "matter_submitted", 1, "HT1", drafter_id="u1"),
                  _governance(1, "s9", "matter_submitted", 9, "HT9", drafter_id="u1")], unread={(PROCUREMENT, 0)})
    core.write_state()
    store: dict[bytes, bytes] = {}
    table = ChangelogTable(store, "riskwatch-state-changelog", partitions=8)
    assert table.keys_of_kind(b"matter") == []  # listed while empty
    store.update(previous)  # the recovery
    table.reload()
    core = WorkerCore(default_pack, table)
    out = core.process([_another_orgs_payment()])
    assert _by_matter(out.alerts) == {"HT1": ["RC-CON-01:executed_early:legal_review"]}
    assert sorted(table.keys_of_kind(b"mark")) == sorted(k for k in store if k.endswith(b"\x1fmark"))


def test_the_idle_sweep_reads_each_entrys_last_time_without_decoding_it(default_pack):
    """The sweep after a restart reads when each window and total entry was last
    seen straight off its plain form: the same time the decoded entry gives."""
    from monitor.analyst.generator import generate
    from monitor.core.event import decode_lines
    from monitor.core.keyed import _total_last_seen, _window_last_seen

    events, _ = decode_lines(generate(events=6000, seed=7).lines)
    table: dict[bytes, bytes] = {}
    core = WorkerCore(default_pack, table)
    core.process([message(i, e) for i, e in enumerate(events)])
    core.write_state()
    state = WorkerCore(default_pack, table).tables.state  # a restarted worker: nothing decoded yet
    checked = 0
    for stores, last_seen in ((state.windows, _window_last_seen), (state.totals, _total_last_seen)):
        for store in stores.values():
            decoded = sorted((k, last_seen(v)) for k, v in store.items())
            for k, _ in decoded[::2]:
                store.get(k)  # half of them decoded (and cached) by a batch
            assert sorted(store.last_seen_items(last_seen)) == decoded
            checked += len(decoded)
    assert checked > 1000
