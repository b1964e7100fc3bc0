"""Detectors at any density: the same 90 days as 100k, 1M and 3M events.

For each size, a ``riskwatch generate`` stream and its ground truth (the
generator plants anomalies at the same share at every size: one amount
outlier per 8,000 events, half as many payment bursts, and two fabricated
journal months of 250 entries per 100,000 events), cached under
~/.cache/riskwatch-bench per version of the generator. Each is scored by
``riskwatch run`` with the rules and detectors of ``--rules`` (the default
pack unless given), no database. Per detector it prints:

- alerts, and alerts per 10,000 events;
- precision@k: of its k highest-scoring alerts, the share that hold an event
  of a planted anomaly it is meant to find (k = the number planted; all its
  alerts when it raised fewer), and how many planted it caught (see MEANT for
  the general models, which have no anomaly of their own).

Then the targets: detector alerts per 10,000 events within ×1.5 between the
sizes, precision@k ≥ 0.8 at each for the detectors that have a planted
anomaly of their own, and every fabricated journal month caught at each.

Each run's peak resident memory is printed too. With ``--memory`` each size
is also run with the rules alone, so the detectors' own share shows; the
memory target (peak RSS at 3M ≤ 1.2 × at 500k) needs both sizes in ``--sizes``.
With ``--state-dir DIR`` every run keeps its per-key state on disk there
(``riskwatch run --state-dir``, with ``--state-cache`` entries and ``--state-memory`` MiB a process).

    python benchmarks/bench_density.py [--sizes 100000,1000000,3000000] [--seed N] [--rules DIR] [--memory]
                                       [--state-dir DIR [--state-cache N] [--state-memory MIB]] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import add_state_options, generator_version, state_options, timed  # noqa: E402

CACHE = Path.home() / ".cache" / "riskwatch-bench"
ROOT = Path(__file__).resolve().parent.parent

AMOUNT, BURST, FABRICATED = 101, 102, 103  # the generator's anomaly scenarios
# What each detector of the default pack is meant to find (k is how many of
# these were planted). The general payment models (the org's amounts, the
# trees, the forest) have no anomaly of their own: k is the payment anomalies
# planted, and an alert is true when it holds the event of any planted case,
# a rule's violation included (a large payment to a person, say).
MEANT = {
    "det_amount_outlier": {AMOUNT},
    "det_counterparty_velocity": {BURST},
    "det_benford_journal": {FABRICATED},
    "det_org_amount_outlier": {AMOUNT, BURST},
    "det_payment_pattern": {AMOUNT, BURST},
    "det_payment_iforest": {AMOUNT, BURST},
    "det_benford_payments": set(),  # nothing planted: every alert is a false one
}
GENERAL = {"det_org_amount_outlier", "det_payment_pattern", "det_payment_iforest"}
TARGET_SPREAD, TARGET_PRECISION, TARGET_MEMORY = 1.5, 0.8, 1.2


def stream_with_truth(events: int, seed: int | None = None) -> tuple[Path, Path]:
    """The generated stream and its ground truth, cached per size, seed and generator version."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"density-{events}-{generator_version()}{'' if seed is None else f'-seed{seed}'}.jsonl"
    truth = path.with_name(path.stem + ".truth.jsonl")
    if not (path.exists() and truth.exists()):
        subprocess.run([sys.executable, "-m", "monitor.cli", "generate", "--events", str(events), "--out", str(path),
                        "--labels", str(truth), *([] if seed is None else ["--seed", str(seed)])],
                       check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return path, truth


def planted(truth: Path) -> tuple[dict[int, list[set[str]]], set[str]]:
    """Scenario -> the event ids of each planted anomaly; and the events of every planted case."""
    out: dict[int, list[set[str]]] = {}
    cases: set[str] = set()
    for line in truth.read_bytes().splitlines():
        inst = orjson.loads(line)
        if inst["kind"] == "anomaly":
            out.setdefault(inst["scenario"], []).append(set(inst["event_ids"]))
        if inst["kind"] != "near_miss":
            cases.update(inst["event_ids"])
    return out, cases


STATE: list[str] = []  # the run's --state-dir, --state-cache and --state-memory, when given


def run_command(path: Path, rules: Path | None, tmp: str, detectors: bool = True) -> list[str]:
    return [sys.executable, "-m", "monitor.cli", "run", "--input", str(path), "--alerts-out", f"{tmp}/alerts.jsonl",
            "--rejected-out", f"{tmp}/rejected.jsonl", "--db", "none", "--quiet", *STATE,
            *(["--rules", str(rules)] if rules else []), *([] if detectors else ["--no-detectors"])]


def score(path: Path, rules: Path | None) -> tuple[list[dict], int, float, int]:
    """The detector alerts of one run (the last record of each alert), the events
    read, seconds, and the peak resident memory (KiB) of the run and its workers."""
    with tempfile.TemporaryDirectory() as tmp:
        alerts_out = Path(tmp) / "alerts.jsonl"
        seconds, peak = timed(run_command(path, rules, tmp))
        last: dict[str, dict] = {}
        for line in alerts_out.read_bytes().splitlines():
            alert = orjson.loads(line)
            if alert["rule_id"].startswith("det_"):
                last[alert["alert_id"]] = alert
    with open(path, "rb") as f:
        events = sum(1 for _ in f)
    return list(last.values()), events, seconds, peak


def rules_only_peak(path: Path, rules: Path | None) -> int:
    """Peak resident memory (KiB) of the same run with the rules alone."""
    with tempfile.TemporaryDirectory() as tmp:
        return timed(run_command(path, rules, tmp, detectors=False))[1]


def judge(alerts: list[dict], anomalies: dict[int, list[set[str]]], cases: set[str]) -> dict[str, dict]:
    """Per detector: alerts, precision@k, planted caught."""
    by_detector: dict[str, list[dict]] = {}
    for alert in alerts:
        by_detector.setdefault(alert["rule_id"], []).append(alert)
    out = {}
    for detector in sorted(set(MEANT) | set(by_detector)):
        mine = sorted(by_detector.get(detector, []), key=lambda a: -(a.get("score") or 0.0))
        meant = [ids for s in sorted(MEANT.get(detector, ())) for ids in anomalies.get(s, [])]
        meant_ids = cases if detector in GENERAL else set().union(*meant) if meant else set()
        k = len(meant)
        top = mine[:k] if k else mine
        hits = sum(bool(meant_ids & set(a["event_ids"])) for a in top)
        caught = sum(any(ids & set(a["event_ids"]) for a in mine) for ids in meant)
        out[detector] = {"alerts": len(mine), "planted": k, "caught": caught,
                         "precision_at_k": hits / len(top) if top else None}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,3000000")
    parser.add_argument("--rules", type=Path, help="A rules folder (default: the embedded pack).")
    parser.add_argument("--memory", action="store_true", help="Also run each size with the rules alone (peak RSS).")
    add_state_options(parser)
    parser.add_argument("--seed", type=int, help="Generate the streams with this seed (another draw of the same group).")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON too.")
    args = parser.parse_args()
    STATE.extend(state_options(args))
    sizes = [int(s) for s in args.sizes.split(",")]
    figures = {}
    for size in sizes:
        path, truth = stream_with_truth(size, args.seed)
        alerts, events, seconds, peak = score(path, args.rules)
        anomalies, cases = planted(truth)
        per = judge(alerts, anomalies, cases)
        figures[size] = {"events": events, "seconds": round(seconds, 1), "alerts": len(alerts),
                         "per_10k": 1e4 * len(alerts) / events, "detectors": per, "peak_rss_mib": peak // 1024}
        rules_alone = ""
        if args.memory:
            figures[size]["rules_only_peak_rss_mib"] = rules_only_peak(path, args.rules) // 1024
            rules_alone = f", {figures[size]['rules_only_peak_rss_mib']:,} MiB with the rules alone"
        print(f"\n{events:,} events ({seconds:.1f} s, peak RSS {peak // 1024:,} MiB{rules_alone}): "
              f"{len(alerts):,} detector alerts, {1e4 * len(alerts) / events:.2f} per 10,000 events")
        print(f"  {'detector':<28} {'alerts':>7} {'per 10k':>8} {'planted':>8} {'caught':>7} {'precision@k':>12}")
        for detector, f in per.items():
            precision = "-" if f["precision_at_k"] is None else f"{f['precision_at_k']:.2f}"
            print(f"  {detector:<28} {f['alerts']:>7,} {1e4 * f['alerts'] / events:>8.2f} {f['planted']:>8,} "
                  f"{f['caught']:>7,} {precision:>12}")

    print("\ntargets")
    rates = [figures[s]["per_10k"] for s in sizes]
    spread = max(rates) / min(rates) if min(rates) > 0 else float("inf")
    print(f"  detector alerts per 10,000 events: {', '.join(f'{r:.2f}' for r in rates)}; "
          f"spread x{spread:.2f} (target <= x{TARGET_SPREAD}): {'met' if spread <= TARGET_SPREAD else 'NOT met'}")
    for detector in MEANT:
        if not MEANT[detector]:
            continue
        values = [figures[s]["detectors"][detector]["precision_at_k"] for s in sizes]
        shown = ", ".join("-" if v is None else f"{v:.2f}" for v in values)
        if detector in GENERAL:  # nothing planted is theirs: what they flag is shown, not judged
            print(f"  precision@k {detector}: {shown} (a general model: no plant of its own, not a target)")
            continue
        met = all(v is not None and v >= TARGET_PRECISION for v in values)
        print(f"  precision@k {detector}: {shown} (target >= {TARGET_PRECISION}): {'met' if met else 'NOT met'}")
    months = [(figures[s]["detectors"]["det_benford_journal"]["caught"],
               figures[s]["detectors"]["det_benford_journal"]["planted"]) for s in sizes]
    print(f"  fabricated journal months caught: {', '.join(f'{c} of {p}' for c, p in months)}: "
          f"{'met' if all(c == p for c, p in months) else 'NOT met'}")
    if 500_000 in figures and 3_000_000 in figures:
        small, large = figures[500_000], figures[3_000_000]
        ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
        line = (f"  peak RSS at 3M / at 500k: {large['peak_rss_mib']:,} / {small['peak_rss_mib']:,} MiB = x{ratio:.2f} "
                f"(target <= x{TARGET_MEMORY}): {'met' if ratio <= TARGET_MEMORY else 'NOT met'}")
        if args.memory:
            own = [f["peak_rss_mib"] - f["rules_only_peak_rss_mib"] for f in (small, large)]
            line += (f"; the rules alone x{large['rules_only_peak_rss_mib'] / small['rules_only_peak_rss_mib']:.2f}, "
                     f"the detectors' own share {own[1]:,} / {own[0]:,} MiB")
        print(line)
    if args.json:
        print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
