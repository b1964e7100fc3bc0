"""Throughput of the default detector set against river's HalfSpaceTrees, one core.

Takes the payment events of the demo mix (500k events by default, cached
under ~/.cache/riskwatch-bench), trains the IsolationForest on the first fifth
(not timed), then times, in this process:

- the default detector set of ``rules/detectors.yaml`` — all of it, each org
  its own models — scoring and learning the payments in batches of 8192
  (column extraction, per-org models, thresholds and findings included);
- each detector alone, the same way;
- river's ``HalfSpaceTrees`` (the same settings as ours), ``score_one`` then
  ``learn_one`` per event, on the same payments' features as dicts.

Prints events/s for each and the ratio of the whole set to river's HST.

    python benchmarks/bench_detectors.py [--events 500000] [--river-events 30000]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import stream_file  # noqa: E402

BATCH = 8192


def payments(path: Path):
    from monitor.core.event import decode_lines

    with open(path, "rb") as f:
        events, _ = decode_lines(f.readlines())
    return [e for e in events if e.type == "payment"]


def time_set(pack, batches) -> tuple[float, list[float]]:
    """Seconds for the whole stream, and per-batch seconds, with the runner's GC settings."""
    from monitor.core.scorer import Scorer, ScorerState

    scorer, state = Scorer(pack), ScorerState()
    per_batch = []
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    started = time.perf_counter()
    for batch in batches:
        t = time.perf_counter()
        scorer.score(batch, state)
        per_batch.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    return elapsed, per_batch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=500_000, help="demo-mix events (about a third are payments)")
    ap.add_argument("--river-events", type=int, default=30_000, help="payments for river's per-event loop")
    args = ap.parse_args()

    from river.anomaly import HalfSpaceTrees

    from detectors.iforest import FlatForest
    from detectors.modelfile import train_isolation_forest
    from detectors.payments import FEATURES, training_matrix
    from monitor.core.batch import EventBatch
    from monitor.core.detecting import detector_columns
    from monitor.packs.rulefiles import default_rules_dir, load_pack

    pays = payments(stream_file(args.events, 90))
    pack = load_pack(default_rules_dir())
    detector_ids = {d.id for d in pack.detectors}
    dets = pack.only(detector_ids)
    history = EventBatch(pays[: len(pays) // 5])
    forest = train_isolation_forest(training_matrix(detector_columns(history, history.all_rows, ("org_id", "counterparty_id"))))
    for d in dets.detectors:
        if d.model == "isolation_forest":
            d.trained = FlatForest.from_sklearn(forest)
    batches = [EventBatch(pays[i:i + BATCH]) for i in range(0, len(pays), BATCH)]
    print(f"{len(pays):,} payments of a {args.events:,}-event demo stream, batches of {BATCH}, "
          f"1 process ({os.cpu_count()} cores here)")

    time_set(dets, batches[:2])  # warm-up: imports, tree building
    elapsed, per_batch = time_set(dets, batches)
    ours = len(pays) / elapsed
    ms = sorted(x * 1000 for x in per_batch)
    print(f"default detector set ({len(dets.detectors)} detectors): {ours:>10,.0f} events/s  "
          f"(per batch p50 {statistics.median(ms):.0f} ms, p99 {ms[min(len(ms) - 1, int(0.99 * len(ms)))]:.0f} ms)")
    for d in dets.detectors:
        alone = dets.only({d.id})
        t, _ = time_set(alone, batches)
        print(f"  {d.id:<28} {d.model:<18} {len(pays) / t:>10,.0f} events/s alone")

    hst = next(d for d in dets.detectors if d.model == "half_space_trees")
    river = HalfSpaceTrees(n_trees=hst.settings.get("n_trees", 25), height=hst.settings.get("height", 8),
                           window_size=hst.settings.get("window_size", 500), seed=hst.settings.get("seed", 42))
    sample = EventBatch(pays[: args.river_events])
    matrix = training_matrix(detector_columns(sample, sample.all_rows, ("org_id", "counterparty_id")))
    rows = [dict(zip(FEATURES, r)) for r in matrix.tolist()]
    started = time.perf_counter()
    for x in rows:
        river.score_one(x)
        river.learn_one(x)
    river_rate = len(rows) / (time.perf_counter() - started)
    print(f"river HalfSpaceTrees, score_one + learn_one per event ({len(rows):,} payments): {river_rate:>10,.0f} events/s")
    print(f"ratio, default detector set / river HST: {ours / river_rate:.1f}x   (target: set >= 50,000 events/s: "
          f"{'met' if ours >= 50_000 else 'NOT met'})")


if __name__ == "__main__":
    main()
