"""The distributed runner: a faust-streaming worker on the Kafka event topics.

    riskwatch worker --broker kafka://127.0.0.1:9092 [--rules DIR] [--db URL] [--metrics-port 9465]

What consumes is thin: faust's consumer hands each fetch of records from the
four event topics over as a batch (``monitor.runners.batchconsumer`` — faust's agents
take one message at a time, which caps them near 15,000 events/s here), the
batch goes to ``WorkerCore`` (decode, score, merge alerts — the same scorer as
the embedded runner) and what comes out is sent: alerts to ``riskwatch.alerts``,
undecodable messages to ``riskwatch.deadletter``, tickets to the database.

Keyed state — windows, running totals, alerts — lives in one faust table
(``riskwatch-state``) backed by a changelog topic. Its keys start with the org,
and every entry goes to the changelog partition of its org's events (see
``monitor.runners.changelog``): a worker that takes over a partition recovers exactly
the state it needs. Producers of events must use the Java client's default
partitioner (murmur2 of the key), as kafka-python, aiokafka and Java clients
do; with kcat pass ``-X partitioner=murmur2_random``.

Exactly once. Tickets go to the database as soon as their batch is scored.
Everything else a batch produces — its alerts, its dead letters, the state it
changed, the offset it leads to — is committed together once a second (a
checkpoint), one Kafka transaction per input partition: alerts and dead
letters are visible to ``read_committed`` consumers exactly when the state
that saw their events is. The state records, per input partition, the next
offset it has not applied (``monitor.runners.tablestate.AppliedOffsets``), so a
redelivery is never applied twice, whatever offset the group resumes from.

Zombies are fenced. The transactions of input partition ``p`` go through a
producer whose transactional id is ``<app id>-state-<p>``; a worker that is
given ``p`` starts its producer before it recovers ``p``'s state, and the
broker then fences the old owner's producer (a higher epoch) and aborts its
open transaction. A worker frozen past its session timeout and resumed finds
its next commit refused and stops: it cannot commit state, offsets, alerts or
dead letters for a partition it lost.

A stop signal finishes the work in hand (``finish``, called by
``monitor.runners.graceful.GracefulWorker``): no batch is taken in any more,
the one being scored is finished and its tickets written, and one last
checkpoint commits everything scored before the worker leaves its group.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Collection, MutableMapping

import msgspec

from monitor.core.alerts import Alert, AlertBook
from monitor.core.batch import EventBatch
from monitor.runners.changelog import MAX_BATCH_BYTES, ChangelogTable, org_partition
from monitor.core.event import Event, Rejection, decode_one
from monitor.runners.heap import FrozenHeap
from monitor.metrics import Metrics
from monitor.cases.notify import announce
from monitor.core.rules import RulePack, changed_rules
from monitor.core.scorer import Scorer
from monitor.core.state import drop_rules
from monitor.runners.tablestate import TableEvidence, TableState
from monitor.runners.topics import ALERTS_TOPIC, DEADLETTER_TOPIC, EVENT_TOPICS, bootstrap_servers

__all__ = ["Finished", "Message", "WorkerCore", "WorkerOutput", "create_app"]

log = logging.getLogger("riskwatch.worker")
STATE_TABLE = "riskwatch-state"
REVOKE_WAIT_SECONDS = 5.0  # well inside the session timeout (10 s)
COMMIT_RETRY_SECONDS = 300.0  # a checkpoint is tried again this long while the broker is away (a restart takes seconds)
QUIET_AFTER_SECONDS = 60.0  # an org without events this long has its review deadlines judged by the clock
LIVE_WITHIN_SECONDS = 2 * 86400.0  # ... if its events were this close to the clock: live, not a replay of history


@dataclass(frozen=True)
class Finished:
    """How a worker's last checkpoint went, on a stop signal (``app.riskwatch_finish``)."""

    committed: bool  # every event scored is committed, with its alerts, state and offsets
    events: int  # the events the last checkpoint carried; if not committed, what the next owner scores again
    seconds: float


@dataclass(frozen=True)
class Message:
    """What the core needs of a Kafka message."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


@dataclass
class WorkerOutput:
    alerts: list[Alert] = field(default_factory=list)  # new or changed, to produce and to ticket
    new_alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[tuple[Message, Rejection]] = field(default_factory=list)
    scored: int = 0
    events_by_source: Counter = field(default_factory=Counter)
    hits_by_rule: Counter = field(default_factory=Counter)
    scoring_seconds: float = 0.0
    occurred_at: object = None  # epoch seconds of the scored events (numpy)
    detector_scores: dict = field(default_factory=dict)
    evidence: list = field(default_factory=list)  # (dedup key, event) for the tickets
    redelivered: int = 0  # messages the state had already applied, skipped
    judgements: list = field(default_factory=list)  # executed matters the review controls judged


class WorkerCore:
    """Decode, score and alert a batch of messages, with state in ``table``.

    No Kafka here: the table is any mapping of bytes (a faust Table in the
    worker, a dict in tests), and messages are plain values.
    """

    def __init__(self, pack: RulePack, table: MutableMapping[bytes, bytes], quiet_after: float = QUIET_AFTER_SECONDS,
                 live_within: float = LIVE_WITHIN_SECONDS):
        self.pack = pack
        self.table = table
        self.quiet_after = quiet_after
        self.live_within = live_within
        self.last_seen: dict[str, float] = {}  # org -> when (the clock) its last event was scored
        self.live: set[str] = set()  # orgs whose newest business time was near the clock when last scored
        self.partition_times: dict[tuple[str, int], float] = {}  # (topic, partition) -> newest business time read
        self.scorer = Scorer(pack)
        self.tables = TableState(pack, table)
        self.book = AlertBook(pack, self.tables.alerts)  # type: ignore[arg-type]
        self.evidence = TableEvidence(table)  # in the table: a restarted worker still has the events behind later alerts

    def swap_pack(self, new: RulePack) -> set[str]:
        """Score with ``new`` from the next batch on. The table entries of rules
        whose definition changed are deleted; every other rule keeps its state."""
        self.tables.flush()
        dropped = changed_rules(self.pack, new)
        drop_rules(self.tables.state, dropped)
        self.pack = new
        self.scorer = Scorer(new)  # its review schedule is built from the table at first use
        self.tables = TableState(new, self.table)
        self.book = AlertBook(new, self.tables.alerts)  # type: ignore[arg-type]
        return dropped

    def process(self, messages: list[Message], write_state: bool = True,
                unread: Collection[tuple[str, int]] | None = ()) -> WorkerOutput:
        """Score a batch. With ``write_state=False`` the state stays in memory until
        ``write_state()``: the worker first makes the batch's alerts and tickets
        durable, so a crash can never leave state that says "seen" for a finding
        nobody was told about (a redelivered event does not fire again).

        ``unread`` are the input partitions (topic, partition) that still hold
        records after these: review checks judge no further in business time
        than the oldest of them has been read (``judge_until``)."""
        out = WorkerOutput()
        events: list[Event] = []
        raws: list[bytes] = []
        positions: list[tuple[str, int, int]] = []
        fresh = self._not_applied(messages)
        out.redelivered = len(messages) - len(fresh)
        self.tables.marks.load()
        for m in fresh:
            decoded = decode_one(m.value if m.value is not None else b"", m.offset)
            if isinstance(decoded, Event):
                events.append(decoded)
                raws.append(m.value)
                positions.append((m.topic, m.partition, m.offset))
            else:
                out.dead_letters.append((m, decoded))
        if events:
            batch = EventBatch(events)
            times = batch.column("occurred_at", batch.all_rows).tolist()
            newest = self.partition_times
            for (topic, partition, _offset), t in zip(positions, times):
                if t > newest.get((topic, partition), -math.inf):
                    newest[(topic, partition)] = t
            self.scorer.judge_until = self.judge_until(unread)
            started = time.perf_counter()
            findings = self.scorer.score(batch, self.tables.state)
            out.scoring_seconds = time.perf_counter() - started
            new, updated = self.book.merge_split(findings)
            out.alerts, out.new_alerts = new + updated, new
            held = self.scorer.held_rows.tolist()
            self.evidence.remember(map(events.__getitem__, held), map(raws.__getitem__, held),
                                   map(positions.__getitem__, held))
            released = self.scorer.released_events  # events that waited for master data
            out.evidence = self.evidence.collect(out.alerts, events + released if released else events) if out.alerts else []
            out.scored = len(events)
            out.hits_by_rule = Counter(f.rule_id for f in findings)
            out.events_by_source = Counter((e.domain, e.source) for e in events)
            out.occurred_at = batch.column("occurred_at", batch.all_rows)
            out.detector_scores = dict(self.scorer.detector_scores)
            now = time.time()
            orgs = set(batch.column("org_id", batch.all_rows).tolist())
            self.tables.marks.touch(orgs)
            self.last_seen.update(dict.fromkeys(orgs, now))
            marks = self.tables.state.org_watermarks
            for org in orgs:
                if now - marks.get(org, -math.inf) <= self.live_within:
                    self.live.add(org)
                else:
                    self.live.discard(org)
        out.judgements = self.scorer.take_judgements()
        for m in reversed(fresh):  # the last record of each partition is its highest
            self.tables.applied.advance(m.topic, m.partition, m.offset)
        if write_state:
            self.write_state()
        return out

    def _not_applied(self, messages: list[Message]) -> list[Message]:
        """The messages the state has not applied yet: after a crash or a
        rebalance Kafka delivers again from the committed consumer offset,
        which may lag the state recovered (see ``AppliedOffsets``)."""
        applied = self.tables.applied
        nexts: dict[tuple[str, int], int] = {}
        fresh = []
        for m in messages:
            tp = (m.topic, m.partition)
            next_offset = nexts.get(tp)
            if next_offset is None:
                next_offset = nexts[tp] = applied.next_offset(m.topic, m.partition)
            if m.offset >= next_offset:
                fresh.append(m)
        return fresh

    def write_state(self) -> None:
        """Write the state the last batches changed into the table (its changelog)."""
        self.tables.flush()
        self.evidence.flush()

    def judge_until(self, unread: Collection[tuple[str, int]] | None) -> float:
        """The oldest business time read on a partition with records still unread
        (-inf for one nothing has been read from since the state was recovered,
        and when which partitions hold records is not known: ``unread`` None)."""
        if unread is None:
            return -math.inf
        return min((self.partition_times.get(tp, -math.inf) for tp in unread), default=math.inf)

    def tick(self, now: float, unread: Collection[tuple[str, int]] | None = ()) -> WorkerOutput:
        """Let the clock stand in for business time in orgs gone quiet: a
        review step past its limit fires though no event comes to say so.
        An org counts as quiet after ``quiet_after`` seconds without events,
        and only a live one: its newest events were within ``live_within`` of
        the clock when scored. A replay of history is judged by its own
        business time alone (the clock would find every old deadline passed)."""
        out = WorkerOutput()
        self.scorer.judge_until = self.judge_until(unread)
        # Events that waited for master data: the inputs may have caught up with no batch after
        # (the end of a stream), and nothing else would judge them.
        findings = self.scorer.release_waiting(self.tables.state)
        released = self.scorer.released_events
        if now == math.inf:  # a stop: only what waited (see ``release``)
            return self._output(out, findings, released)
        quiet = {}
        for org in self.scorer.reviews_pending(self.tables.state):
            if org not in self.live:
                continue
            if now - self.last_seen.get(org, now) >= self.quiet_after:
                quiet[org] = now
        if quiet:
            findings += self.scorer.advance_time(self.tables.state, quiet)
        return self._output(out, findings, released)

    def release(self, unread: Collection[tuple[str, int]] | None = ()) -> WorkerOutput:
        """Judge the events that waited for master data, if every input has caught up
        with them (a graceful stop: the end of a stream is judged the same whenever the
        stop comes, not only when the timer happened to beat it)."""
        return self.tick(math.inf, unread)

    def _output(self, out: WorkerOutput, findings: list, released: list) -> WorkerOutput:
        if findings:
            new, updated = self.book.merge_split(findings)
            out.alerts, out.new_alerts = new + updated, new
            out.evidence = self.evidence.collect(out.alerts, released)
            out.hits_by_rule = Counter(f.rule_id for f in findings)
        out.judgements = self.scorer.take_judgements()
        return out

    def forget(self) -> None:
        self.tables.forget()
        self.evidence.forget()
        self.scorer.forget_reviews()
        self.last_seen.clear()
        self.live.clear()
        self.partition_times.clear()


def create_app(pack: RulePack, broker: str, db_url: str | None, metrics: Metrics | None = None,
               partitions: int = 8, batch_size: int = 10_000, app_id: str = "riskwatch", reloader=None, notifier=None,
               checkpoint_every: float = 1.0, checkpoint_events: int = 50_000, alerts_within: float = 0.1,
               quiet_after: float = QUIET_AFTER_SECONDS, live_within: float = LIVE_WITHIN_SECONDS):
    """The faust app; ``faust.Worker(app).execute_from_commandline()`` runs it.

    Each fetch of event records is scored as it comes (in batches of up to
    ``batch_size``; a fetch holds at most that many), its alerts sent at once;
    the state it changed is written and its offsets committed every ``checkpoint_every``
    seconds or ``checkpoint_events`` events, whichever comes first: a state
    entry touched by many batches is written once, and a crash scores again
    at most that much. Alerts commit with that state, so a batch that raised
    any brings the checkpoint forward: it comes ``alerts_within`` seconds after
    the last one at the latest (a floor on the interval, as Kafka Streams'
    100 ms commit interval under exactly-once).
    """
    import faust
    from aiokafka import TopicPartition
    from aiokafka.errors import KafkaError, ProducerFenced

    from monitor.runners.batchconsumer import BatchConsumer
    from monitor.runners.graceful import crash
    from monitor.runners.txnrecovery import TRANSACTION_TIMEOUT_MS, TransactionalTableManager
    from monitor.cases.tickets import Fence, FencedError, SqlTicketStore

    # faust keeps a small data folder per app: under the user's cache, not the working directory
    data_root = os.environ.get("RISKWATCH_DATA_DIR", os.path.expanduser("~/.cache/riskwatch/faust"))
    os.makedirs(data_root, exist_ok=True)
    app = faust.App(
        app_id,
        broker=broker,
        store="memory://",
        datadir=os.path.join(data_root, "{conf.id}"),
        topic_partitions=partitions,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        # a fetch is a batch: up to 8 MiB a partition, ``batch_size`` records
        consumer_max_fetch_size=8 * 1024 * 1024,
        broker_max_poll_records=batch_size,
        web_enabled=False,
        broker_session_timeout=10.0,  # a dead worker's partitions move on within seconds
        broker_heartbeat_interval=2.0,
        table_cleanup_interval=3600.0,
        key_serializer="raw",  # every topic, the table's changelog included, carries plain bytes
        value_serializer="raw",
        TableManager=TransactionalTableManager,  # the changelog is written in transactions
        table_standby_replicas=0,  # every rebalance recovers from the changelog (monitor.runners.txnrecovery)
    )
    # The event topics are subscribed here, not by an agent: their records go
    # to ``score_batch`` a fetch at a time (see ``monitor.runners.batchconsumer``).
    app.transport.Consumer = BatchConsumer
    events_topic = app.topic(*EVENT_TOPICS.values(), key_serializer="raw", value_serializer="raw")
    app.topics.add(events_topic)
    table = app.Table(STATE_TABLE, partitions=partitions, key_type=bytes, value_type=bytes, use_partitioner=True,
                      extra_topic_configs={"cleanup.policy": "compact"})
    state = ChangelogTable(table.data, table.changelog_topic.get_topic_name(), partitions)
    core = WorkerCore(pack, state, quiet_after, live_within)
    store = SqlTicketStore(db_url) if db_url else None
    if store is not None:
        store.record_pack(pack, dt.datetime.now(dt.timezone.utc))
    encoder = msgspec.json.Encoder()
    app.riskwatch_core = core  # for tests and introspection

    state_producers: dict[int, Any] = {}  # input partition -> its transactional producer (``claim``)
    pending: dict = {}  # (topic, partition) -> next offset, of events scored whose state is not in the changelog yet
    outbox: dict[int, list] = {}  # input partition -> (topic, key, value, headers) to send with its checkpoint
    fence: Fence | None = None  # this worker's latest claim, for the ticket database
    pending_events = 0
    alerts_waiting = False  # the outbox holds alerts: the next checkpoint is due ``alerts_within`` after the last
    waking: asyncio.Future | None = None  # the pending commit of alerts (``wake_for_alerts``)
    lock = asyncio.Lock()  # a batch and a checkpoint never interleave
    last_checkpoint = time.monotonic()
    rebalances = 0  # a batch that spans a rebalance is dropped, not committed
    finishing: asyncio.Task | None = None  # the last checkpoint's transaction
    uncommitted_events = 0  # scored, and not yet in a committed checkpoint
    stopping = False  # a stop signal came (``finish``): no batch is taken in any more
    heap = FrozenHeap()  # settled at each checkpoint

    async def checkpoint(wait: bool = False) -> None:
        """Take what the scored events produced — alerts, dead letters, the
        state they changed, their offsets — and commit it, one Kafka
        transaction per input partition, in the background: scoring goes on
        meanwhile (``wait``: until it is committed).

        A crash loses nothing and learns nothing twice: the state recovered
        (read_committed) is exactly the one the committed offsets lead to, and
        the events after them are delivered again and scored on it.
        """
        nonlocal last_checkpoint, pending_events, finishing, alerts_waiting
        if finishing is not None:
            await finishing  # one in flight at a time: a slow broker slows scoring, not memory
        events = pending_events
        core.write_state()
        by_partition: dict[int, tuple[list, dict, list]] = {}
        for record in state.take_pending():
            by_partition.setdefault(record[0], ([], {}, []))[0].append(record)
        for (topic, partition), offset in pending.items():
            by_partition.setdefault(partition, ([], {}, []))[1][TopicPartition(topic, partition)] = offset
        for partition, messages in outbox.items():
            by_partition.setdefault(partition, ([], {}, []))[2].extend(messages)
        pending.clear()
        outbox.clear()
        pending_events = 0
        alerts_waiting = False
        last_checkpoint = time.monotonic()
        finishing = asyncio.ensure_future(_commit_checkpoint(by_partition, rebalances, events))
        # A full collection scanning the state took 120-300 ms, every few seconds, for nothing.
        heap.settle()
        if wait:
            await finishing

    async def _commit_checkpoint(by_partition: dict[int, tuple[list, dict, list]], generation: int,
                                 events: int) -> None:
        nonlocal uncommitted_events
        started = time.perf_counter()
        try:
            by_producer: dict[Any, tuple[list, dict, list]] = {}
            for partition, (records, offsets, messages) in sorted(by_partition.items()):
                producer = state_producers.get(partition)
                if producer is None:  # only state under a key naming no org, filed here: any of our producers
                    producer = state_producers.get(min(state_producers)) if state_producers else await _start_producer(partition)
                mine = by_producer.setdefault(producer, ([], {}, []))
                mine[0].extend(records)
                mine[1].update(offsets)
                mine[2].extend(messages)
            await asyncio.gather(*(_commit_partition(producer, *parts, generation=generation)
                                   for producer, parts in by_producer.items()))
            if rebalances == generation:
                uncommitted_events -= events
            if metrics is not None:
                metrics.checkpoint_seconds.observe(time.perf_counter() - started)
        except Exception as exc:
            if rebalances != generation:
                # Revoked meanwhile: the state it carried was forgotten, and whoever owns the
                # partitions now scores the events again from the last committed checkpoint.
                log.warning("a checkpoint begun before a rebalance was not committed (%s); its events are scored "
                            "again from the last one", exc)
                return
            if isinstance(exc, ProducerFenced):
                log.error("fenced: another worker owns these partitions now; this one stops without committing (%s)", exc)
            # Without this checkpoint the in-memory state is ahead of what a restart recovers.
            await crash(app, exc)
            raise

    async def _commit_partition(producer, records: list, offsets: dict, messages: list, generation: int) -> None:
        """One transaction: the partition's alerts and dead letters, its state records, its offsets.

        While the broker is away (restarting, a leader moving) the transaction fails and is
        aborted; it is then sent again, whole, until ``COMMIT_RETRY_SECONDS`` have passed —
        an aborted transaction is never seen by read_committed readers, so nothing doubles.
        """
        deadline = time.monotonic() + COMMIT_RETRY_SECONDS
        pause = 0.5
        while True:
            try:
                async with producer.transaction():
                    futures = [await producer.send(topic, key=key, value=value, headers=headers)
                               for topic, key, value, headers in messages]
                    # The offsets join the transaction while its records are under way: the
                    # commit makes them all visible at once, in whatever order they arrived.
                    await asyncio.gather(state.send_records(producer, records), *futures,
                                         *([producer.send_offsets_to_transaction(offsets, app.conf.id)] if offsets else []))
                return
            except KafkaError as exc:
                plan = commit_failure_plan(exc, _sender_stopped(producer))
                if plan == "raise" or rebalances != generation or time.monotonic() + pause > deadline:
                    raise
                renew = plan == "renew"
                log.warning("checkpoint not committed (%s: %s), aborted; trying again in %.1f s",
                            type(exc).__name__, exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)
                while renew:
                    try:
                        producer = await _renew_producer(producer)
                        renew = False
                    except (KafkaError, MembershipUnconfirmed) as err:  # the broker still away, or the group unsure
                        if rebalances != generation or time.monotonic() + pause > deadline:
                            raise
                        log.warning("the partition's producer did not start again (%s: %s); trying again in %.1f s",
                                    type(err).__name__, err, pause)
                        await asyncio.sleep(pause)
                        pause = min(pause * 2, 10.0)

    async def _renew_producer(producer):
        """A fresh producer in place of one whose sender stopped, for the partition it served.

        Starting it fences whoever holds the transactional id, so first the group
        coordinator must confirm this worker is still a member: one frozen past its
        session (its partitions given to another) would otherwise fence their new
        owner and commit stale work. Until the coordinator confirms it, the retry
        loop waits — and a worker that was dropped hears of its revocation meanwhile."""
        partition = next((p for p, mine in state_producers.items() if mine is producer), None)
        if partition is None:  # claimed again meanwhile: the new owner's producer is not ours to replace
            raise RuntimeError("the partition's producer was replaced while its checkpoint was retried")
        await confirm_membership(broker, app.conf.id, app.consumer.member_id())
        try:
            await producer.stop()
        except Exception as exc:  # noqa: BLE001 - it is dead already; the new one fences it anyway
            log.debug("stopping a failed producer: %s", exc)
        return await _start_producer(partition)

    async def _start_producer(partition: int):
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(
            client_id=f"{app_id}-state-{partition}", transactional_id=f"{app_id}-state-{partition}",
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS, bootstrap_servers=bootstrap_servers(broker),
            acks="all", enable_idempotence=True, max_batch_size=MAX_BATCH_BYTES, retry_backoff_ms=10)
        try:
            await producer.start()  # InitProducerId: the previous owner is fenced, its open transaction aborted
        except BaseException:
            await producer.stop()
            raise
        state_producers[partition] = producer
        return producer

    async def claim(partitions: set[int]) -> None:
        """Become the only writer for these input partitions, before their state is
        recovered (``monitor.runners.txnrecovery`` calls this): a fresh producer for each,
        whose start fences whoever held it last, this worker's older producer included."""
        nonlocal fence
        if finishing is not None and not finishing.done():
            await asyncio.wait([finishing], timeout=REVOKE_WAIT_SECONDS)
        old = list(state_producers.values())
        state_producers.clear()
        await asyncio.gather(*(p.stop() for p in old))
        await asyncio.gather(*(_start_producer(p) for p in sorted(partitions)))
        if store is not None:  # and in the ticket database: an earlier owner's ticket writes are refused
            owner = uuid.uuid4().hex
            await asyncio.get_running_loop().run_in_executor(
                None, store.claim_partitions, app.conf.id, partitions, owner, dt.datetime.now(dt.timezone.utc))
            fence = Fence(app.conf.id, owner, frozenset(partitions))
        log.info("claimed input partitions %s", sorted(partitions))

    app.riskwatch_claim = claim

    async def finish(within: float) -> Finished:
        """On a stop signal: take no more batches in, let the one in hand be
        scored (its tickets written), then commit what every scored event
        produced — alerts, dead letters, state, offsets — in one last checkpoint.
        If that takes longer than ``within`` seconds, its transaction is aborted
        and the events it carried are scored again by the partitions' next owner."""
        nonlocal stopping
        started = time.monotonic()
        stopping = True
        if waking is not None:  # the last checkpoint takes its alerts; it never awaits inside a checkpoint
            waking.cancel()
        app.consumer.hold()
        events = 0

        async def last_checkpoint_() -> None:
            nonlocal events
            async with lock:  # after the batch in hand
                if state_producers:  # what waited for master data, if every input is read by now
                    released = core.release(app.consumer.unread_partitions())
                    if released.alerts:
                        await _deliver(released, core.pack, set(state_producers))
                events = uncommitted_events
                if pending or outbox:
                    await checkpoint(wait=True)
                elif finishing is not None:
                    await finishing

        attempt = asyncio.ensure_future(last_checkpoint_())
        # Not asyncio.wait_for: it waits for the cancelled transaction's abort, which a frozen
        # broker never answers. The stop is bounded by ``within``; the abort goes on meanwhile.
        await asyncio.wait({attempt}, timeout=within)
        failure = (f"no answer within {within:.1f} s" if not attempt.done() else
                   "cancelled" if attempt.cancelled() else attempt.exception())
        if failure is None:
            return Finished(True, events, time.monotonic() - started)
        attempt.cancel()  # a transaction cancelled is aborted on the way out of its ``async with``
        log.error("the last checkpoint was not committed: %s", failure.__class__.__name__ if not str(failure) else failure)
        return Finished(False, uncommitted_events, time.monotonic() - started)

    app.riskwatch_finish = finish

    async def score_batch(records: list) -> None:
        """One fetch of event records (aiokafka's): score, and checkpoint when due."""
        async with lock:
            if stopping:  # handed over while the last checkpoint was waiting for the lock: left unread
                return
            await _score_batch(records)  # a fetch holds at most batch_size (broker_max_poll_records)
            # While a checkpoint commits, scoring goes on; the next one waits for it only when
            # checkpoint_events have piled up (a slow broker slows scoring, not memory).
            if pending_events >= checkpoint_events or (
                    time.monotonic() - last_checkpoint >= checkpoint_every and not committing()):
                await checkpoint()

    def committing() -> bool:
        return finishing is not None and not finishing.done()

    def wake_for_alerts() -> None:
        """Have the alerts now in the outbox committed ``alerts_within`` after the last
        checkpoint began, or as soon as the one in flight is done, whichever is later."""
        nonlocal waking
        if waking is None or waking.done():
            waking = asyncio.ensure_future(_commit_alerts(max(0.0, alerts_within - (time.monotonic() - last_checkpoint))))

    async def _commit_alerts(delay: float) -> None:
        await asyncio.sleep(delay)
        while committing():
            await asyncio.wait([finishing])
        async with lock:
            if alerts_waiting and not stopping and not committing():
                await checkpoint()

    app.consumer.batch_topics = frozenset(EVENT_TOPICS.values())
    app.consumer.on_batch = score_batch
    app.consumer.on_fetch = app.tables.recovery.apply_fetched  # the changelog in bulk while recovering

    @app.on_before_shutdown.connect
    async def stop_producers(app_, **kwargs) -> None:
        if finishing is not None and not finishing.done():
            await asyncio.wait([finishing], timeout=REVOKE_WAIT_SECONDS)  # not left open for the broker to abort
        await asyncio.gather(*(p.stop() for p in state_producers.values()))

    async def _score_batch(records: list) -> None:
        nonlocal pending_events, uncommitted_events
        generation = rebalances
        if reloader is not None and reloader.pending:  # between batches: nothing lost, nothing twice
            new_pack = reloader.poll()
            if new_pack is not None:
                await checkpoint(wait=True)  # the old pack's state is durable before rules change
                core.swap_pack(new_pack)
                if store is not None:
                    store.record_pack(new_pack, dt.datetime.now(dt.timezone.utc))
        scored_partitions = {r.partition for r in records}
        if not scored_partitions <= set(state_producers):  # given outside a recovery: claimed before it is scored
            await claim(scored_partitions | set(state_producers))
        pack = core.pack
        out = core.process(records, write_state=False, unread=app.consumer.unread_partitions())
        await _deliver(out, pack, scored_partitions)
        # Tickets are durable before the state that saw their events is
        # committed (a state that has seen an event whose ticket was lost would
        # never fire again on redelivery); alerts commit with that state.
        if generation == rebalances:
            pending.update({(r.topic, r.partition): r.offset + 1 for r in records})
            pending_events += len(records)
            uncommitted_events += len(records)

    async def _deliver(out: WorkerOutput, pack: RulePack, owned: set[int]) -> None:
        """What a batch (or the clock) produced: dead letters and alerts into the
        outbox of the next checkpoint, live alerts to tickets with their evidence."""
        nonlocal alerts_waiting
        if out.alerts:
            alerts_waiting = True
            wake_for_alerts()
        for m, r in out.dead_letters:
            outbox.setdefault(m.partition, []).append((DEADLETTER_TOPIC, None, m.value or b"", [
                ("riskwatch.reason", r.reason.encode()), ("riskwatch.detail", r.detail.encode()),
                ("riskwatch.source", m.topic.encode()), ("riskwatch.position", f"{m.partition}:{m.offset}".encode())]))
        for alert in out.alerts:
            outbox.setdefault(org_partition(alert.org_id.encode(), partitions), []).append(
                (ALERTS_TOPIC, alert.dedup_key.encode(), encoder.encode(alert), None))
        live = [a for a in out.alerts if a.status == "live"]
        if store is not None and live:
            mine = Fence(fence.app_id, fence.owner, frozenset(owned)) if fence else None
            try:
                result = await asyncio.get_running_loop().run_in_executor(
                    None, store.upsert, live, pack, dt.datetime.now(dt.timezone.utc), mine)
            except FencedError as exc:
                log.error("fenced: %s; this worker stops without writing its tickets", exc)
                await crash(app, exc)
                raise
            await asyncio.get_running_loop().run_in_executor(None, store.add_evidence, out.evidence)
            announce(metrics, notifier, opened=result.opened)
        if store is not None and out.judgements:
            await asyncio.get_running_loop().run_in_executor(None, store.record_reviews, out.judgements)
        if metrics is not None:
            _observe(metrics, pack, out)

    if core.scorer.watch is not None or core.scorer.link_rules:
        @app.timer(min(quiet_after, 30.0) / 2)
        async def judge_quiet_orgs() -> None:
            """Review deadlines in orgs whose topics went quiet, by the clock; events that
            waited for master data, once every input has caught up with them."""
            async with lock:
                if not state_producers or app.rebalancing or app.in_recovery:
                    return  # no partitions (yet), or their state is not all read back: nothing to judge
                out = core.tick(time.time(), app.consumer.unread_partitions())
                if out.alerts:
                    await _deliver(out, core.pack, set(state_producers))

    @app.timer(checkpoint_every)
    async def checkpoint_when_idle() -> None:
        async with lock:
            if pending or outbox:
                await checkpoint()

    @app.on_partitions_revoked.connect
    async def on_revoked(app_, revoked, **kwargs) -> None:
        # Back to the last checkpoint: after the rebalance faust seeks every
        # partition to its committed offset, so the events scored since are
        # scored again, by whoever owns them now, on the state committed with
        # that offset. A batch in flight sees the generation change and adds
        # nothing to the next checkpoint. The checkpoint in flight is let
        # finish (its transaction goes through the producer, not the consumer
        # the group is waiting on): whoever owns its partitions next starts from it.
        nonlocal rebalances, pending_events, uncommitted_events, alerts_waiting
        rebalances += 1
        pending.clear()
        outbox.clear()
        pending_events = uncommitted_events = 0
        alerts_waiting = False
        core.forget()
        state.discard_pending()
        if finishing is not None and not finishing.done():
            try:
                await asyncio.wait_for(asyncio.shield(finishing), timeout=REVOKE_WAIT_SECONDS)
            except asyncio.TimeoutError:
                log.warning("a checkpoint was still committing when its partitions were revoked")

    @app.on_rebalance_complete.connect
    async def relist_table(app_, **kwargs) -> None:
        state.reload()  # recovery emptied and refilled the table behind it; sent before scoring resumes

    if store is not None:
        @app.timer(60.0)
        async def check_escalations() -> None:
            """The periodic overdue check: escalate what is due."""
            done = await asyncio.get_running_loop().run_in_executor(
                None, store.escalate, core.pack, dt.datetime.now(dt.timezone.utc))
            announce(metrics, notifier, escalated=done)

    if metrics is not None:
        metrics.rule_pack.labels(pack.version).set(1)

        if store is not None:
            @app.timer(15.0)
            async def report_tickets() -> None:
                now = dt.datetime.now(dt.timezone.utc)
                loop = asyncio.get_running_loop()
                open_by = await loop.run_in_executor(None, store.open_by_risk)
                overdue_by = await loop.run_in_executor(None, store.overdue_by_risk, now)
                metrics.set_ticket_gauges(open_by, overdue_by)
                metrics.set_review_rates(await loop.run_in_executor(None, store.latest_review_rates))
                metrics.set_participation_rate(await loop.run_in_executor(None, store.latest_participation_rates))

        @app.timer(5.0)
        async def report_lag() -> None:
            consumer = app.consumer
            for tp in consumer.assignment():
                if tp.topic not in EVENT_TOPICS.values():
                    continue
                try:
                    highwater = consumer.highwater(tp)
                    position = await consumer.position(tp)
                except Exception:  # noqa: BLE001 - lag is best effort while rebalancing
                    continue
                if highwater is not None and position is not None:
                    metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))

    return app


def commit_failure_plan(exc: Exception, sender_stopped: bool) -> str:
    """What a checkpoint does when its transaction failed with ``exc``: ``"raise"``,
    ``"retry"`` (the same producer, the broker being briefly away) or ``"renew"``
    (a fresh producer under the same transactional id aborts the transaction and
    the checkpoint is sent again whole).

    A broker that restarted may have lost the tail of what the producer sent; its
    sender stops for good on the gap, as it does on a connection closed while it
    looks for the transaction coordinator: renew. But never when fenced — another
    worker has claimed the partition (or the transaction outlived its timeout),
    and a fresh producer would fence the new owner in turn and commit stale work.

    >>> from aiokafka.errors import ProducerFenced, KafkaTimeoutError, OutOfOrderSequenceNumber
    >>> commit_failure_plan(ProducerFenced(), sender_stopped=True)
    'raise'
    >>> commit_failure_plan(KafkaTimeoutError(), False), commit_failure_plan(OutOfOrderSequenceNumber(), False)
    ('retry', 'renew')
    """
    from aiokafka.errors import KafkaError, KafkaTimeoutError, OutOfOrderSequenceNumber, ProducerFenced

    if isinstance(exc, ProducerFenced):
        return "raise"
    if isinstance(exc, OutOfOrderSequenceNumber) or sender_stopped:
        return "renew"
    if (isinstance(exc, KafkaError) and exc.retriable) or isinstance(exc, KafkaTimeoutError):  # a batch that expired
        return "retry"
    return "raise"


class MembershipUnconfirmed(Exception):
    """The group coordinator does not (yet) list this worker as a member: a producer
    renewed now might fence the partition's new owner. The retry loop waits for the
    coordinator to confirm it, or for the revocation that says the partition is gone."""


async def confirm_membership(broker: str, group_id: str, member_id: str) -> None:
    """Raise ``MembershipUnconfirmed`` unless the group coordinator lists ``member_id`` in
    ``group_id``, the group stable; a broker that cannot be reached raises aiokafka's error."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(broker), client_id=f"{group_id}-membership")
    try:
        await admin.start()
        described = [response.to_object() for response in await admin.describe_consumer_groups([group_id])]
    finally:
        await admin.close()
    if not is_group_member(described, group_id, member_id):
        raise MembershipUnconfirmed(f"the group coordinator does not list member {member_id!r} of {group_id}")


def is_group_member(described: list[dict], group_id: str, member_id: str) -> bool:
    """Whether a DescribeGroups answer (``Response.to_object()`` of each) lists ``member_id``
    in ``group_id``, the group stable (not between generations).

    >>> answer = [{"groups": [{"error_code": 0, "group": "rw", "state": "Stable",
    ...                        "members": [{"member_id": "rw-1-abc"}, {"member_id": "rw-2-def"}]}]}]
    >>> is_group_member(answer, "rw", "rw-2-def"), is_group_member(answer, "rw", "rw-9-old")
    (True, False)
    >>> answer[0]["groups"][0]["state"] = "PreparingRebalance"
    >>> is_group_member(answer, "rw", "rw-2-def"), is_group_member(answer, "rw", "")
    (False, False)
    """
    if not member_id:
        return False
    for response in described:
        for group in response.get("groups", []):
            if group.get("group") == group_id and group.get("error_code") == 0 and group.get("state") == "Stable":
                return any(m.get("member_id") == member_id for m in group.get("members", []))
    return False


def _sender_stopped(producer) -> bool:
    """Whether an aiokafka producer's sender routine has ended: it does so for good on an
    error it does not expect, and every later send fails (aiokafka keeps it private)."""
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return task is not None and task.done()


def _observe(metrics: Metrics, pack: RulePack, out: WorkerOutput) -> None:
    metrics.count_events(out.events_by_source)
    metrics.count_rejected([r for _, r in out.dead_letters])
    if out.scored:
        metrics.scoring_latency.observe(out.scoring_seconds)
        metrics.batch_events.observe(out.scored)
        metrics.observe_lag(out.occurred_at)
    for detector_id, scores in out.detector_scores.items():
        metrics.observe_many(metrics.detector_score.labels(detector_id), scores)
    for rule_id, n in out.hits_by_rule.items():
        rule = pack.rule(rule_id)
        metrics.rule_hits.labels(rule_id, rule.risk.id, rule.severity, rule.status).inc(n)
    metrics.count_judged(out.judgements)
    for alert in out.new_alerts:
        metrics.alerts.labels(alert.risk_id, alert.severity, alert.domain, alert.status).inc()
