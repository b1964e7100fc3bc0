"""faust's own floor: an agent that takes the event topics in batches, as the
worker does, and does nothing with them. bench_kafka.py runs it as

    python benchmarks/faust_floor.py COUNT worker -l warn

and reads the one line it prints: ``floor COUNT SECONDS`` (from the first batch
to the COUNT-th event, read from the start of the topics by a fresh group).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import faust  # noqa: E402

from monitor.runners.topics import EVENT_TOPICS  # noqa: E402

COUNT = int(sys.argv.pop(1))
app = faust.App(f"bench-floor-{uuid.uuid4().hex[:6]}", broker=os.environ.get("RISKWATCH_BROKER", "kafka://127.0.0.1:9092"),
                store="memory://", web_enabled=False, datadir=tempfile.mkdtemp(prefix="riskwatch-floor-"),
                consumer_auto_offset_reset="earliest", key_serializer="raw", value_serializer="raw",
                stream_wait_empty=False, consumer_max_fetch_size=8 * 1024 * 1024, broker_max_poll_records=5000)
topic = app.topic(*EVENT_TOPICS.values(), key_serializer="raw", value_serializer="raw")
seen = {"events": 0, "first": 0.0}


@app.agent(topic)
async def nothing(stream):
    async for batch in stream.take_events(10_000, within=0.02):
        if not seen["events"]:
            seen["first"] = time.perf_counter()
        seen["events"] += len(batch)
        if seen["events"] >= COUNT:
            print(f"floor {seen['events']} {time.perf_counter() - seen['first']:.3f}", flush=True)
            os._exit(0)


if __name__ == "__main__":
    app.main()
