"""Cost with many orgs: the demo mix as its 13 orgs and as 3,848.

A large group has thousands of legal entities. This takes the demo mix
(500k events by default, cached under ~/.cache/riskwatch-bench) and writes a
copy in which each event's org gets one of 296 suffixes (13 x 296 = 3,848
orgs), chosen by its counterparty so that a counterparty's events stay in one
org (an event without one is placed by its id). The two streams hold the same
events. Then, interleaved ``--repeat`` times, it times ``riskwatch run`` with
the rules and the detectors, 2 workers, SQLite tickets, on both, and prints
events/s, the ratio, and the targets: at least 100,000 events/s on the
many-org stream, and at least 0.8 of the 13-org rate.

    python benchmarks/bench_orgs.py [--events 500000] [--copies 296] [--repeat 3] [--no-detectors]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import CACHE, stream_file  # noqa: E402

TARGET_RATE, TARGET_RATIO = 100_000, 0.8


def many_orgs(path: Path, copies: int) -> Path:
    """The stream with each org split into ``copies`` orgs (cached beside it)."""
    out = CACHE / f"{path.stem}-orgs{copies}.jsonl"
    if out.exists():
        return out
    tmp = out.with_suffix(".tmp")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        for line in src:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                dst.write(line)  # a malformed line stays malformed
                continue
            if isinstance(event, dict) and isinstance(event.get("org_id"), str):
                anchor = event.get("counterparty_id") or event.get("event_id") or ""
                event["org_id"] += f"-{zlib.crc32(str(anchor).encode()) % copies:03d}"
                line = orjson.dumps(event) + b"\n"
            dst.write(line)
    tmp.replace(out)
    return out


def run_rate(path: Path, detectors: bool) -> tuple[float, int]:
    """events/s of one ``riskwatch run`` (2 workers, SQLite tickets), and the alerts it wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "monitor.cli", "run", "--input", str(path), "--alerts-out",
                        f"{tmp}/alerts.jsonl", "--rejected-out", f"{tmp}/rejected.jsonl", "--db",
                        f"sqlite:///{tmp}/tickets.db", "--workers", "2", "--quiet",
                        *([] if detectors else ["--no-detectors"])], check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        alerts = len(Path(f"{tmp}/alerts.jsonl").read_bytes().splitlines())
    with open(path, "rb") as f:
        events = sum(1 for _ in f)
    return events / seconds, alerts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--copies", type=int, default=296)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-detectors", action="store_true", help="Rules only.")
    args = parser.parse_args()
    demo = stream_file(args.events, 90)
    split = many_orgs(demo, args.copies)
    detectors = not args.no_detectors
    runs = []
    for _ in range(args.repeat):  # interleaved: drift in the machine hits both alike
        runs.append((run_rate(demo, detectors), run_rate(split, detectors)))
    few = statistics.median(r[0][0] for r in runs)
    many = statistics.median(r[1][0] for r in runs)
    what = "rules + detectors" if detectors else "rules only"
    print(f"{args.events:,} events, {what}, 2 workers, SQLite tickets; median of {args.repeat}")
    print(f"  13 orgs:                {few:>9,.0f} events/s ({runs[0][0][1]:,} alerts)")
    print(f"  {13 * args.copies:,} orgs:             {many:>9,.0f} events/s ({runs[0][1][1]:,} alerts)")
    print(f"  ratio many/13: {many / few:.2f} (target >= {TARGET_RATIO}): {'met' if many / few >= TARGET_RATIO else 'NOT met'}")
    print(f"  many-org rate: {many:,.0f} (target >= {TARGET_RATE:,}): {'met' if many >= TARGET_RATE else 'NOT met'}")


if __name__ == "__main__":
    main()
