"""faust's Kafka consumer, handing the event topics' records over in batches.

    app.transport.Consumer = BatchConsumer        # before app.consumer is first used
    app.consumer.batch_topics = frozenset(EVENT_TOPICS.values())
    app.consumer.on_batch = score_batch           # async (records) -> None

A faust agent is handed one message at a time: the consumer awaits the
conductor for every message (two tasks each), the conductor puts it on the
stream's queue, the stream takes it off. On this 2-core machine an agent that
does nothing tops out near 15,000 events/s, while aiokafka fetches 400,000.
This consumer takes each fetched record batch of the event topics straight to
``on_batch`` — aiokafka's own records, no per-message objects or tasks — and
leaves everything else to faust: group membership, rebalances, pausing during
table recovery, and the per-message path for every other topic (the state
table's changelog, read during recovery and by standbys).

The event topics' offsets are not tracked by faust's acks: the caller commits
them, in the same Kafka transaction as the state they led to. So the consumer
reads ``read_committed``: the changelog records of a checkpoint that never
committed (its worker killed halfway) are never recovered.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Mapping

from aiokafka.errors import IllegalStateError
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer

__all__ = ["BatchConsumer"]


class BatchConsumer(Consumer):
    """A faust aiokafka consumer that gives ``batch_topics`` to ``on_batch`` a fetch at a time."""

    batch_topics: frozenset[str] = frozenset()
    on_batch: Callable[[list[Any]], Awaitable[None]] | None = None
    #: takes a fetch of one partition's records of another topic (a changelog being
    #: recovered) at once; False: not taken, each goes to faust as a message
    on_fetch: Callable[[Any, list[Any]], bool] | None = None
    holding = False  # ``hold()``: no more records are handed over

    def hold(self) -> None:
        """Hand no more records of the batch topics over, and fetch no more: the
        worker is stopping. A batch already handed over is the caller's to
        finish; records fetched but not handed over are never committed, so
        whoever owns their partitions next reads them again."""
        self.holding = True
        self.pause_partitions([tp for tp in self.assignment() if tp.topic in self.batch_topics])

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # faust's Fetcher runs this as its loop
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records, active = await self._wait_next_records(1.0)
                await asyncio.sleep(0)  # never hold the loop between fetches
                if not records or self.should_stop or self.holding:
                    continue
                if not self.flow_active:
                    # A rebalance began while fetching: these records may not be
                    # ours any more. As faust's own getmany: back to the committed offsets.
                    try:
                        await self._rewind(records)
                        await self.perform_seek()
                    except IllegalStateError:
                        # The assignment changed again under the seek (a worker joining
                        # while another is recovering): the new one's assignment seeks.
                        pass
                    continue
                await self._deliver(records, active)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _deliver(self, records: Mapping[Any, list], active: set | None) -> None:
        generation = self.app.consumer_generation_id
        read_offset = self._read_offset
        batch: dict = {}  # of the batch topics: partition -> records
        for tp, tp_records in records.items():
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                await self._rewind({tp: tp_records})  # paused meanwhile: fetch them again when it resumes
                continue
            start = read_offset[tp]  # faust's guard against records from before a seek
            if start is not None and tp_records[0].offset < start:
                tp_records = [r for r in tp_records if r.offset >= start]
                if not tp_records:
                    continue
            if tp.topic in self.batch_topics:
                batch[tp] = tp_records
            elif self.on_fetch is not None and self.on_fetch(tp, tp_records):
                pass
            else:
                for record in tp_records:
                    if self.app.consumer_generation_id != generation:
                        return
                    await self.callback(self._to_message(tp, record))
            read_offset[tp] = tp_records[-1].offset
        if not batch or self.on_batch is None or self.holding:
            return
        if self.app.consumer_generation_id == generation:
            await self.on_batch([r for tp_records in batch.values() for r in tp_records])
        else:
            await self._rewind(batch)

    def member_id(self) -> str:
        """This consumer's member id in its group, as its coordinator last heard it
        ("" before it first joined). A worker frozen past its session still holds
        the old one: only the group coordinator knows it is gone."""
        return self._thread._ensure_consumer()._coordinator.member_id or ""

    def unread_partitions(self) -> set[tuple[str, int]] | None:
        """The batch topics' assigned partitions that hold records not handed
        over yet: the position short of the last stable offset, or either not
        known (nothing fetched since the assignment). Read from aiokafka's
        subscription state, as its own ``last_stable_offset()`` does; the
        position is past the records ``on_batch`` was last given (aiokafka moves
        it when records are taken, and past transaction markers).

        None while no assignment is known (a rebalance under way, as when a
        restarted worker's dead predecessor leaves the group): which inputs
        hold records is then unknown, and nothing may count as read to its end."""
        subscription = self._thread._ensure_consumer()._subscription.subscription
        assignment = subscription.assignment if subscription is not None else None
        if assignment is None:
            return None
        unread = set()
        for tp in assignment.tps:
            if tp.topic not in self.batch_topics:
                continue
            state = assignment.state_value(tp)
            end = state.lso if state is not None and state.lso is not None and state.lso >= 0 else (
                state.highwater if state is not None else None)  # lso is -1 when reading read_uncommitted
            if end is None or not state.has_valid_position or state.position < end:
                unread.add((tp.topic, tp.partition))
        return unread

    async def _rewind(self, records: Mapping[Any, list]) -> None:
        """Seek back to the first of records fetched but not handed over, where
        the partition is still ours. faust's seek to the committed offset after a
        rebalance does not move a partition that has no committed offset yet, so
        without this such records would never be fetched again."""
        assigned = self.assignment()
        for tp, tp_records in records.items():
            if tp in assigned and tp_records:
                await self.seek(tp, tp_records[0].offset)


class _ReadCommittedThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # faust reads read_committed only when it runs the transactions itself
        # (processing_guarantee="exactly_once"); here the worker does. The
        # setting is read when the consumer starts, which is after this.
        consumer._isolation_level = "read_committed"
        return consumer
