"""Cost flat as work grows: memory over ten times the events, speed over a longer span.

Two comparisons, each `riskwatch run` as a fresh process on the demo mix
(rules and detectors, SQLite tickets, the default scoring processes):

- memory: peak RSS (the process and its scoring processes, sampled every
  0.2 s) on 5M events against 500k at the same density (events per day), so
  the longer stream spans ten times the days (target <= 1.3x). State is
  bounded by the rules' windows and expiries, but the longest (730 days) is
  longer than the smaller stream, so the larger one legitimately holds more
  history: it also prints how much memory still grew once the stream had
  passed that horizon, which for bounded state is nothing;
- speed: events/s on 500k events spread over three years against the same
  count over 90 days (target >= 0.85): sweeping expired state, calendars and
  per-month aggregates must not cost more as the span grows.

With ``--state-dir DIR`` every run keeps its per-key state on disk there
(``riskwatch run --state-dir``, with ``--state-cache`` entries and ``--state-memory`` MiB a process).

    python benchmarks/bench_flat.py [--events 500000] [--times 10] [--repeat 3] [--skip-memory] [--skip-span]
                                    [--state-dir DIR [--state-cache N] [--state-memory MIB]]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_run import (_tree_rss_kib, add_state_options, longest_horizon_days, riskwatch_cmd,  # noqa: E402
                       state_options, stream_file, timed)

BASE_DAYS = 90
LONG_DAYS = 3 * 365


def sampled(cmd: list[str]) -> tuple[float, list[tuple[float, int]]]:
    """Wall seconds and (seconds in, RSS KiB of the process and its workers) every 0.2 s."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    samples = []
    while proc.poll() is None:
        samples.append((time.perf_counter() - started, _tree_rss_kib(proc.pid)))
        time.sleep(0.2)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return time.perf_counter() - started, samples


STATE: list[str] = []  # the run's --state-dir, --state-cache and --state-memory, when given


def memory(events: int, times: int, workers: int) -> None:
    """Peak RSS at ten times the events; and, since the rules keep up to the
    pack's longest horizon of history, how much it still grew once the stream
    was past that horizon (read at the same share of the run's time, the
    rate being steady): state bounded by the rules stops growing there."""
    big = events * times
    horizon = longest_horizon_days()
    with tempfile.TemporaryDirectory() as tmp:
        peaks = {}
        for n, days in ((events, BASE_DAYS), (big, BASE_DAYS * times)):
            path = stream_file(n, days)
            elapsed, samples = sampled(riskwatch_cmd(path, Path(tmp), n, workers) + STATE)
            peaks[n] = max(rss for _, rss in samples)
            print(f"memory: {n:,} events over {days} days: peak RSS {peaks[n] / 1024:,.0f} MiB "
                  f"({n / elapsed:,.0f} events/s)", flush=True)
            if days > horizon:
                at = horizon / days * elapsed
                reached = max(rss for t, rss in samples if t <= at)
                print(f"memory: past the longest horizon ({horizon:.0f} days, about {at:.0f} s in): "
                      f"{reached / 1024:,.0f} MiB, then x{peaks[n] / reached:.2f} to the end")
    print(f"memory: {big:,} / {events:,} events: peak RSS x{peaks[big] / peaks[events]:.2f} (target <= 1.3)")


def span(events: int, repeat: int, workers: int) -> None:
    rates: dict[int, list[float]] = {BASE_DAYS: [], LONG_DAYS: []}
    paths = {days: stream_file(events, days) for days in rates}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):  # interleaved, so drift in the machine touches both alike
            for days, path in paths.items():
                elapsed, _ = timed(riskwatch_cmd(path, Path(tmp), i, workers) + STATE)
                rates[days].append(events / elapsed)
    for days, values in rates.items():
        print(f"speed: {events:,} events over {days} days: {statistics.median(values):,.0f} events/s "
              f"(runs: {', '.join(f'{v:,.0f}' for v in values)})")
    ratio = statistics.median(rates[LONG_DAYS]) / statistics.median(rates[BASE_DAYS])
    print(f"speed: {LONG_DAYS} days / {BASE_DAYS} days at the same count: x{ratio:.2f} (target >= 0.85)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--times", type=int, default=10, help="the memory run's larger stream, in multiples of --events")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-span", action="store_true")
    add_state_options(ap)
    args = ap.parse_args()
    STATE.extend(state_options(args))
    if not args.skip_span:
        span(args.events, args.repeat, args.workers)
    if not args.skip_memory:
        memory(args.events, args.times, args.workers)


if __name__ == "__main__":
    main()
