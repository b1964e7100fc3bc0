"""Whole-process `riskwatch backtest` over a million events of the demo mix, with labels.

Generates the stream and its ground truth (cached under ~/.cache/riskwatch-bench),
then times the command a user runs, as a fresh process:

    riskwatch backtest --events demo-1000000.jsonl --labels demo-1000000.truth.jsonl --html report.html

and prints events/s and the time against the target of one minute.

    python benchmarks/bench_backtest.py [--events 1000000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import stream_file  # noqa: E402


def truth_file(events_path: Path, events: int) -> Path:
    truth = events_path.with_suffix(".truth.jsonl")
    if not truth.exists():
        code = (f"from monitor.analyst.generator import generate; open({str(truth)!r}, 'wb')"
                f".write(generate(events={events}, days=90).truth.to_jsonl())")
        subprocess.run([sys.executable, "-c", code], check=True)
    return truth


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    events = stream_file(args.events, 90)
    truth = truth_file(events, args.events)
    lines = sum(1 for _ in open(events, "rb"))
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            started = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "monitor.cli", "backtest", "--events", str(events), "--labels",
                                  str(truth), "--html", str(Path(tmp) / "report.html")], capture_output=True, text=True)
            times.append(time.perf_counter() - started)
            if out.returncode != 0:
                raise SystemExit(out.stderr)
        overall = next((line for line in out.stdout.splitlines() if line.startswith("overall:")), "")
    t = statistics.median(times)
    print(f"riskwatch backtest over {lines:,} events with labels and the HTML report: {t:.1f} s "
          f"({lines / t:,.0f} events/s; median of {args.repeat})")
    print(f"target: under 60 s — {'met' if t < 60 else 'NOT met'} ({t / 60:.2f} of the minute)")
    print(overall)


if __name__ == "__main__":
    main()
