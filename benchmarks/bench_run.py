"""Whole-process throughput of `riskwatch run` against the JSON decode floor.

Generates the demo mix (500k events by default, cached under
~/.cache/riskwatch-bench), then times, each as a fresh process:

- the decode floor: a Python process that only does ``orjson.loads`` on each line;
- ``riskwatch run`` with the default pack and SQLite tickets.

Prints events/s for both, the ratio, per-batch scoring latency percentiles
(from an in-process run), and peak RSS for growing inputs at a constant event
rate (state is bounded by the rules' windows, so memory should level off).

    python benchmarks/bench_run.py [--events 500000] [--repeat 3] [--memory]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE = Path.home() / ".cache" / "riskwatch-bench"
FLOOR = """
import sys, orjson
loads, bad = orjson.loads, orjson.JSONDecodeError
for line in open(sys.argv[1], "rb"):
    try:
        loads(line)
    except bad:
        pass
"""


def generator_version() -> str:
    """A hash of the generator's code (``monitor/analyst``: the builder, its plants, the fictional group)."""
    digest = hashlib.sha256()
    for module in sorted((Path(__file__).resolve().parent.parent / "monitor" / "analyst").glob("*.py")):
        digest.update(module.read_bytes())
    return digest.hexdigest()[:8]


def stream_file(events: int, days: int) -> Path:
    """The demo stream, cached per size and per version of the generator."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"demo-{events}-{days}d-{generator_version()}.jsonl"
    if not path.exists():  # in a child process, so this one stays small for the RSS readings
        code = f"from monitor.analyst.generator import generate; generate(events={events}, days={days}).write({str(path)!r})"
        subprocess.run([sys.executable, "-c", code], check=True)
    return path


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and its children, from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, StopIteration):
            continue
    return total


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak resident memory (KiB, the process and its
    workers, sampled every 20 ms) of one child process. (ru_maxrss is no good
    here: after fork and exec it still carries the parent's high-water mark.)"""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kib(proc.pid))
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return elapsed, peak


def riskwatch_cmd(path: Path, tmp: Path, n: int, workers: int, detectors: bool = True) -> list[str]:
    db = tmp / f"tickets-{n}-{detectors}.db"
    return [sys.executable, "-m", "monitor.cli", "run", "--input", str(path), "--alerts-out", str(tmp / "alerts.jsonl"),
            "--rejected-out", str(tmp / "rejected.jsonl"), "--db", f"sqlite:///{db}", "--quiet", "--workers", str(workers),
            "--detectors" if detectors else "--no-detectors"]


def add_state_options(parser: argparse.ArgumentParser) -> None:
    """``--state-dir``, ``--state-cache`` and ``--state-memory``, passed on to every ``riskwatch run``
    (see ``state_options``)."""
    parser.add_argument("--state-dir", type=Path, help="Runs keep their per-key state on disk under this folder.")
    parser.add_argument("--state-cache", type=int, help="With --state-dir: entries a scoring process keeps in memory.")
    parser.add_argument("--state-memory", type=int, metavar="MIB",
                        help="With --state-dir: the resident memory a scoring process aims to stay under.")


def state_options(args: argparse.Namespace) -> list[str]:
    """The ``riskwatch run`` options ``add_state_options`` asked for (printed once, if any)."""
    if not args.state_dir:
        return []
    print(f"state on disk under {args.state_dir}"
          + (f", {args.state_cache:,} entries a process in memory" if args.state_cache else "")
          + (f", {args.state_memory:,} MiB a process aimed at" if args.state_memory else ""))
    return ["--state-dir", str(args.state_dir), *(["--state-cache", str(args.state_cache)] if args.state_cache else []),
            *(["--state-memory", str(args.state_memory)] if args.state_memory else [])]


def longest_horizon_days() -> float:
    """The longest window or running-total expiry of the default pack."""
    from monitor.packs.rulefiles import default_rules_dir, load_pack

    pack = load_pack(default_rules_dir())
    return max(max(r.window_seconds + r.lateness_seconds, r.expires_seconds) for r in pack.rules) / 86400


def batch_latencies(path: Path) -> list[float]:
    """Per-batch scoring times of an in-process run."""
    from prometheus_client import CollectorRegistry

    from monitor.metrics import Metrics
    from monitor.packs.rulefiles import default_rules_dir, load_pack
    from monitor.runners.runner import EmbeddedRunner

    runner = EmbeddedRunner(load_pack(default_rules_dir()), None, Metrics(CollectorRegistry()))
    times: list[float] = []
    original = runner.local.scorer.score

    def score(batch, state):
        started = time.perf_counter()
        out = original(batch, state)
        times.append(time.perf_counter() - started)
        return out

    runner.local.scorer.score = score
    with open(path, "rb") as f:
        runner.run_stream(f)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--memory", action="store_true",
                    help="also measure RSS at 1/2, 1, 2 and 4x the events (4x spans twice the longest rule horizon)")
    ap.add_argument("--workers", type=int, default=2, help="scoring processes for riskwatch run")
    args = ap.parse_args()
    path = stream_file(args.events, 90)
    lines = sum(1 for _ in open(path, "rb"))
    print(f"input: {path} ({lines:,} lines, {path.stat().st_size / 1e6:.0f} MB), {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        floor, ours, full, rss, rss_full = [], [], [], 0, 0
        for i in range(args.repeat):
            floor.append(timed([sys.executable, "-c", FLOOR, str(path)])[0])
            t, rss = timed(riskwatch_cmd(path, tmp, i, args.workers, detectors=False))
            ours.append(t)
            t, rss_full = timed(riskwatch_cmd(path, tmp, i, args.workers, detectors=True))
            full.append(t)
        floor_rate = lines / statistics.median(floor)
        our_rate = lines / statistics.median(ours)
        full_rate = lines / statistics.median(full)
        print(f"decode floor (orjson.loads per line, whole process): {floor_rate:>10,.0f} events/s  "
              f"(median of {args.repeat}: {statistics.median(floor):.2f} s)")
        print(f"riskwatch run --no-detectors (the rule pack, SQLite tickets, {args.workers} workers): {our_rate:>10,.0f} events/s  "
              f"(median of {args.repeat}: {statistics.median(ours):.2f} s, peak RSS {rss / 1024:.0f} MiB)")
        print(f"ratio to the decode floor: {our_rate / floor_rate:.3f}   (target >= 0.35)")
        print(f"absolute target >= 150,000 events/s: {'met' if our_rate >= 150_000 else 'NOT met'}")
        print(f"riskwatch run (rules and the default detector set):     {full_rate:>10,.0f} events/s  "
              f"(median of {args.repeat}: {statistics.median(full):.2f} s, peak RSS {rss_full / 1024:.0f} MiB; "
              f"ratio {full_rate / floor_rate:.3f})")
        lat = sorted(batch_latencies(path))
        q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
        print(f"scoring latency per 8192-event batch: p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {lat[-1] * 1000:.1f} ms")
        if args.memory:
            print(f"peak RSS at a constant event rate (~100k events per 90 days); the longest rule "
                  f"horizon is {longest_horizon_days():.0f} days, beyond which rule state stops growing:")
            for n in (args.events // 2, args.events, args.events * 2, args.events * 4):
                d = max(90, round(90 * n / 100_000))
                p = stream_file(n, d)
                t, rss = timed(riskwatch_cmd(p, tmp, n + 1000, args.workers))
                print(f"  {n:>9,} events over {d:>4} days: {rss / 1024:6.0f} MiB, {n / t:,.0f} events/s")


if __name__ == "__main__":
    main()
