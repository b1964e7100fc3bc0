"""The file connector against kcat: events/s onto the same broker.

Needs the local broker (scripts/kafka-local.sh start) and kcat (apt-get install kcat).
Times, as fresh processes, interleaved ``--repeat`` times:

- kcat sending the lines of the demo stream (500k events by default) to a
  scratch topic with the event topics' partition count, idempotent, acks=all:
  the transport alone, no parsing;
- ``riskwatch connect file`` on the same JSONL: each line checked against the
  event contract and sent, keyed by org, to its domain's topic (target >= 0.5 of kcat);
- ``riskwatch connect file`` on a CSV export of the same size with the ERP
  payments mapping (connectors/mappings/erp_payments.yaml): each row mapped,
  checked and sent (target >= 0.3 of kcat).

Prints the medians and the ratios. The connector's runs add to the event topics
(as a day's exports would): run it on a scratch broker, not one a test relies on.

    python benchmarks/bench_connectors.py [--events 500000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_run import CACHE, stream_file  # noqa: E402

from monitor.core.event import Event, decode_one  # noqa: E402
from monitor.runners.topics import EVENT_TOPICS, create_topics  # noqa: E402

BROKER = os.environ.get("RISKWATCH_BROKER", "kafka://127.0.0.1:9092")
BOOTSTRAP = BROKER.split("://", 1)[-1]
SCRATCH = "riskwatch.bench.kcat"
MAPPING = ROOT / "connectors" / "mappings" / "erp_payments.yaml"
COLUMNS = ["付款单号", "付款日期", "公司编码", "金额", "币种", "收款单位编码", "收款单位", "合同编号", "发票号", "收款方类型", "审批级别"]


def csv_export(jsonl: Path) -> Path:
    """The stream's events as rows of an ERP payments export (one per event, as payments)."""
    path = jsonl.with_suffix(".erp_payments.csv")
    if path.exists():
        return path
    cst = dt.timezone(dt.timedelta(hours=8))
    partial = path.with_suffix(".partial")
    with open(jsonl, "rb") as src, open(partial, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for n, line in enumerate(src):
            e = decode_one(line, n)
            if not isinstance(e, Event):
                continue  # the stream's planted malformed lines: an export has none
            amount = abs(e.amount) if e.amount is not None else 1000.0
            attrs = e.attributes or {}
            writer.writerow([f"FKD{n:010d}", e.occurred_at.astimezone(cst).strftime("%Y-%m-%d %H:%M:%S"), e.org_id,
                             f"¥{amount:,.2f}" if n % 3 == 0 else f"{amount:.2f}", "CNY",
                             e.counterparty_id or f"SUP-{n % 997:05d}", e.counterparty_name or "",
                             attrs.get("contract_id") or "", attrs.get("invoice_no") or "", "单位",
                             ("部门", "公司", "集团")[n % 3]])
    partial.rename(path)
    return path


def scratch_topic() -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=[BOOTSTRAP])
    try:
        partitions = len(admin.describe_topics([EVENT_TOPICS["finance"]])[0]["partitions"])
        admin.create_topics([NewTopic(SCRATCH, partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if shutil.which("kcat") is None:
        raise SystemExit("kcat not found: apt-get install kcat")
    create_topics(BROKER)
    scratch_topic()
    jsonl = stream_file(args.events, 90)
    export = csv_export(jsonl)
    lines = sum(1 for _ in open(jsonl, "rb"))
    rows = sum(1 for _ in open(export, "rb")) - 1
    kcat = ["kcat", "-P", "-q", "-b", BOOTSTRAP, "-t", SCRATCH, "-X", "enable.idempotence=true", "-X", "acks=all",
            "-X", "linger.ms=5", "-l", str(jsonl)]
    connector = [sys.executable, "-m", "monitor.cli", "connect", "file", "--broker", BROKER]
    rates: dict[str, list[float]] = {"kcat": [], "jsonl": [], "csv": []}
    for _ in range(args.repeat):
        rates["kcat"].append(lines / timed(kcat))
        rates["jsonl"].append(lines / timed([*connector, "--input", str(jsonl)]))
        rates["csv"].append(rows / timed([*connector, "--input", str(export), "--mapping", str(MAPPING)]))
    median = {k: statistics.median(v) for k, v in rates.items()}
    print(f"{lines:,} lines, {rows:,} CSV rows, median of {args.repeat}, whole processes:")
    print(f"  kcat (no parsing)              {median['kcat']:>10,.0f} events/s")
    print(f"  riskwatch connect file, JSONL  {median['jsonl']:>10,.0f} events/s  "
          f"{median['jsonl'] / median['kcat']:.2f} of kcat (target >= 0.5)")
    print(f"  riskwatch connect file, CSV    {median['csv']:>10,.0f} events/s  "
          f"{median['csv'] / median['kcat']:.2f} of kcat (target >= 0.3)")


if __name__ == "__main__":
    main()
