"""Name screening's cost against a run of the same stream.

Builds a list of 20,000 company names (the demo's naming pools and more, so
that list and counterparties share cities, brands and trades — the hard case
for an index — plus traditional-character variants of 200 of the demo's
suppliers, which must be found), indexes it, and screens every distinct
counterparty name of the demo stream once (a run screens each name once and
remembers it). Prints the index build, the screening, names per second, the
variants found, and the ratio of the screening's cost to ``riskwatch run
--no-detectors`` on the same stream. Then end to end: the same run with
the default rules and with their sanctions list grown to the 20,000 names
(median of ``--repeat`` interleaved runs; the target: under 10% extra run
time), and with the list less its planted variants (what screening costs
when nothing is found). The list's name index is kept between runs
(``monitor/packs/kept.py``); a first run, which builds it, is left out.
For scale it also times scoring every pair for a sample of names.

    python benchmarks/bench_names.py [--events 100000] [--list 20000] [--repeat 3] [--tickets]
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import opencc
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import stream_file  # noqa: E402

from monitor.analyst import generator  # noqa: E402
from monitor.core.nameindex import NameIndex  # noqa: E402
from monitor.core.names import CITIES, PROVINCES, normalise, similarity  # noqa: E402
from monitor.packs.rulefiles import default_rules_dir  # noqa: E402

THRESHOLD = 90.0
MORE_BRANDS = ["金鹏", "华建", "中兴", "东方", "长城", "新纪元", "联创", "恒信", "龙腾", "盛达", "华泰", "伟业", "正泰",
               "海川", "百盛", "国泰", "富源", "泰丰", "永兴", "腾飞"]
MORE_TRADES = ["贸易", "投资", "实业", "能源", "医药", "食品", "纺织", "汽车", "化工", "电子", "机械", "建设"]


def counterparty_names(path: Path) -> list[str]:
    names = set()
    with open(path, "rb") as lines:
        for line in lines:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict) and isinstance(event.get("counterparty_name"), str):
                names.add(event["counterparty_name"])
    return sorted(names)


def make_list(size: int, suppliers: list[str], rng: random.Random) -> tuple[list[str], set[str]]:
    cities = generator._CITIES + list(CITIES) + list(PROVINCES)
    brands = generator._BRANDS + MORE_BRANDS
    trades = generator._TRADES + MORE_TRADES
    s2t = opencc.OpenCC("s2t")
    planted = rng.sample([n for n in suppliers if "公司" in n], 200)
    entries = {s2t.convert(n) for n in planted}
    own = set(suppliers)
    while len(entries) < size:
        name = rng.choice(cities) + rng.choice(brands) + rng.choice(brands) + rng.choice(trades) + rng.choice(generator._SUFFIX)
        if name not in own:
            entries.add(name)
    return sorted(entries), set(planted)


def run_seconds(path: Path, rules: Path | None = None, tickets: bool = False) -> tuple[float, int]:
    """Seconds of ``riskwatch run --no-detectors`` on the stream, and the alerts it wrote
    (with ``tickets``, each live alert a ticket in a SQLite database made at the run's start)."""
    with tempfile.TemporaryDirectory() as tmp:
        if tickets:  # the schema made beforehand, as a user's database already is
            from monitor.cases.tickets import SqlTicketStore

            SqlTicketStore(f"sqlite:///{tmp}/tickets.db").engine.dispose()
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "monitor.cli", "run", "--input", str(path), "--alerts-out",
                        f"{tmp}/alerts.jsonl", "--rejected-out", f"{tmp}/rejected.jsonl",
                        "--db", f"sqlite:///{tmp}/tickets.db" if tickets else "none",
                        "--no-detectors", "--quiet", *(["--rules", str(rules)] if rules else [])],
                       check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        return seconds, len(Path(f"{tmp}/alerts.jsonl").read_bytes().splitlines())


def rules_with_list(entries: list[str], folder: Path) -> Path:
    """The default rules, with the sanctions list grown to these entries (names, no ids)."""
    rules = folder / "rules"
    shutil.copytree(default_rules_dir(), rules)
    with open(rules / "lists" / "sanctions.csv", "a", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        for name in entries:
            writer.writerow(["", name, "bench", "bench", "2020-01-01", ""])
    return rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--list", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tickets", action="store_true",
                        help="every run writes its tickets to SQLite, as a user's does (default: no ticket database)")
    args = parser.parse_args()
    rng = random.Random(7)
    path = stream_file(args.events, 90)
    names = counterparty_names(path)
    entries, planted = make_list(args.list, names, rng)

    started = time.perf_counter()
    index = NameIndex(entries).complete()
    build = time.perf_counter() - started
    started = time.perf_counter()
    found = dict(zip(names, index.best_many(names, THRESHOLD)))
    screen = time.perf_counter() - started
    caught = sum(found[n] is not None for n in planted)
    others = sum(m is not None for n, m in found.items() if n not in planted)

    sample = rng.sample(names, 20)
    query_names = [normalise(e) for e in entries]
    started = time.perf_counter()
    for n in sample:
        q = normalise(n)
        max(similarity(q, e)[0] for e in query_names)
    brute_per_name = (time.perf_counter() - started) / len(sample)

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        listed = rules_with_list(entries, Path(tmp) / "planted")
        unplanted = rules_with_list([e for e in entries if opencc.OpenCC("t2s").convert(e) not in planted],
                                    Path(tmp) / "unplanted")
        for folder in (listed, unplanted):
            run_seconds(path, folder)  # the name index kept for the next runs, as a second run finds it
        for _ in range(args.repeat):  # interleaved, so that drift in the machine hits all alike
            runs.append((run_seconds(path, tickets=args.tickets), run_seconds(path, listed, args.tickets),
                         run_seconds(path, unplanted, args.tickets)))
    baseline = statistics.median(r[0][0] for r in runs)
    with_list = statistics.median(r[1][0] for r in runs)
    without_planted = statistics.median(r[2][0] for r in runs)
    alerts = runs[0][0][1], runs[0][1][1], runs[0][2][1]
    cost = build + screen
    print(f"stream: {args.events:,} events, {len(names):,} distinct counterparty names; list: {len(entries):,} names")
    print(f"index built in {build:.2f} s; screening {screen:.2f} s = {len(names) / screen:,.0f} names/s "
          f"({screen / len(names) * 1e6:.0f} us a name); scoring every pair would take {brute_per_name * 1e3:.0f} ms "
          f"a name ({brute_per_name * len(names):.0f} s)")
    print(f"planted variants found: {caught} of {len(planted)}; other names matched: {others}")
    print(f"riskwatch run --no-detectors: {baseline:.2f} s; screening alone costs {cost:.2f} s = ratio {cost / baseline:.3f}")
    print(f"end to end{', tickets in SQLite' if args.tickets else ''}, median of {args.repeat}: default rules {baseline:.2f} s ({alerts[0]} alerts); with the "
          f"{len(entries):,}-name sanctions list {with_list:.2f} s ({alerts[1]} alerts): "
          f"extra run time {with_list / baseline - 1:+.1%} (target < +10%)")
    print(f"the same list without the 200 planted variants ({alerts[2]} alerts, no flood of true matches): "
          f"{without_planted:.2f} s, extra run time {without_planted / baseline - 1:+.1%}")


if __name__ == "__main__":
    main()
