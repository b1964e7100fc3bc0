"""The compliance managers' pages with 100,000 tickets in PostgreSQL: server time per page.

Fills a fresh schema with tickets spread like a large group's (the default
pack's risks and rules, 12 subsidiaries and ``--orgs`` companies under them,
a few thousand counterparties, six months of openings, a third closed, some
overdue), then times each page in-process (the app's own handling, no network):

- the cockpit (target: 300 ms) for the whole group and for one subsidiary;
- inbox pages (target: 200 ms) under single and combined filters, a search,
  a sort by severity and a deep page;
- the export of 10,000 filtered tickets (target: 3 s) as CSV and as XLSX.

Each figure is the median and the worst of ``--repeat`` runs, with the
ratio of the median to its target (under 1.0 meets it).

    python benchmarks/bench_web.py [--tickets 100000] [--orgs 400] [--db postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402

from monitor.cases.auth import UserStore  # noqa: E402
from monitor.cases.tickets import SqlTicketStore, Ticket  # noqa: E402
from monitor.packs.orgs import Org, OrgDirectory  # noqa: E402
from monitor.packs.rulefiles import default_rules_dir, load_orgs, load_pack  # noqa: E402
from monitor.web.serve import create_app  # noqa: E402

NOW = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.timezone.utc)
TARGETS = {"cockpit": 0.300, "inbox": 0.200, "export": 3.0}


def database(url: str | None) -> str:
    url = url or os.environ.get("RISKWATCH_TEST_PG") or subprocess.run(
        [str(ROOT / "scripts" / "postgres-local.sh"), "url"], capture_output=True, text=True).stdout.strip()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"create schema {schema}"))
    engine.dispose()
    return f"{url}?options=-csearch_path%3D{schema}", schema, url


def directory(companies: int) -> OrgDirectory:
    base = load_orgs(default_rules_dir())[0]
    subsidiaries = [o for o, depth in base.tree() if depth == 1]
    more = [Org(id=f"{subsidiaries[i % len(subsidiaries)].id}-{i:04d}", name=f"{subsidiaries[i % len(subsidiaries)].name}"
                f"下属{i}号公司", parent=subsidiaries[i % len(subsidiaries)].id) for i in range(companies)]
    return OrgDirectory([*base.orgs.values(), *more])


def fill(store: SqlTicketStore, pack, orgs: OrgDirectory, count: int, rng: random.Random) -> None:
    rules = [r for r in [*pack.rules, *pack.detectors, *pack.controls]]
    org_ids = [o for o in orgs.orgs if o != "JCGROUP"]
    names = [f"{rng.choice(['临江', '江城', '滨海', '云岭'])}{rng.choice(['恒达', '华建', '东方', '盛达'])}"
             f"{rng.choice(['建材', '贸易', '工程', '物流'])}有限公司{n}" for n in range(4000)]
    rows = []
    for n in range(count):
        rule = rng.choice(rules)
        post = pack.post_for(rule.risk)
        opened = NOW - dt.timedelta(days=rng.uniform(0, 180))
        status = rng.choices(["open", "acknowledged", "investigating", "resolved", "closed"], [30, 10, 10, 15, 35])[0]
        due = opened + dt.timedelta(days=7)
        closed = opened + dt.timedelta(days=rng.uniform(1, 12)) if status == "closed" else None
        resolved = closed or (opened + dt.timedelta(days=rng.uniform(1, 10)) if status == "resolved" else None)
        party = rng.randrange(len(names))
        org = rng.choice(org_ids)
        rows.append({
            "dedup_key": f"{rule.id}|{org}|K{n}", "alert_id": f"{n:016x}", "rule_id": rule.id, "risk_id": rule.risk.id,
            "severity": rule.severity, "domain": rule.risk.domain, "org_id": org, "owner_post": rule.risk.owner,
            "owner_department": post.department if post else None, "title": rule.title,
            "message": f"{rule.risk.title_zh}: {names[party]} 编号 K{n}", "status": status, "event_ids": [f"E{n}"],
            "hits": 1, "first_seen": opened.isoformat(), "last_seen": opened.isoformat(), "opened_at": opened,
            "updated_at": opened, "ack_due_at": opened + dt.timedelta(days=1), "due_at": due, "alert": {},
            "pack_version": pack.version, "outcome": "remediated" if resolved else None, "assignee": None,
            "resolved_at": resolved, "closed_at": closed, "escalation_level": 0, "typical_case": False,
            "counterparty_id": f"SUP-{party:05d}", "counterparty_name": names[party]})
    with store.engine.begin() as conn:
        for i in range(0, len(rows), 5000):
            conn.execute(insert(Ticket), rows[i:i + 5000])
        conn.execute(text("analyze tickets"))


def timed(client: TestClient, path: str, repeat: int, params=None) -> tuple[float, float, int]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path, params=params)
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return statistics.median(seconds), max(seconds), len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--orgs", type=int, default=400, help="companies under the 12 subsidiaries")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--db", help="PostgreSQL URL (default: $RISKWATCH_TEST_PG, or scripts/postgres-local.sh's)")
    args = parser.parse_args()
    url, schema, base = database(args.db)
    pack = load_pack(default_rules_dir())
    orgs = directory(args.orgs)
    store = SqlTicketStore(url)
    started = time.perf_counter()
    fill(store, pack, orgs, args.tickets, random.Random(7))
    print(f"{args.tickets:,} tickets over {len(orgs):,} orgs in PostgreSQL (schema {schema}), "
          f"filled in {time.perf_counter() - started:.1f} s")
    UserStore(store.engine).add("head", "bench-pass-123", "head", [])
    client = TestClient(create_app(store, pack, "bench", lambda: NOW, orgs=orgs))
    page = client.get("/login")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    client.post("/login", data={"username": "head", "password": "bench-pass-123", "csrf": csrf})

    cases = [
        ("cockpit", "cockpit, whole group, 12 weeks", "/", None),
        ("cockpit", "cockpit, one subsidiary, 26 weeks", "/", {"org": "SUB03", "start": "2026-05-29", "end": "2026-11-27"}),
        ("inbox", "inbox, default (active)", "/inbox", None),
        ("inbox", "inbox, grade=red", "/inbox", {"grade": "red"}),
        ("inbox", "inbox, org subtree + overdue", "/inbox", {"org": "SUB05", "overdue": "1"}),
        ("inbox", "inbox, search 恒达建材", "/inbox", {"q": "恒达建材", "status": "all"}),
        ("inbox", "inbox, area + post + dates", "/inbox",
         {"area": "finance", "post": "finance_compliance_officer", "opened_from": "2026-09-01", "status": "all"}),
        ("inbox", "inbox, most severe first, page 40", "/inbox", {"sort": "severity_first", "page": "40", "status": "all"}),
        ("inbox", "inbox, detector source, 200 a page", "/inbox", {"source": "detector", "per_page": "200"}),
    ]
    print(f"{'page':44} {'median':>9} {'worst':>9} {'target':>8} {'ratio':>6}")
    for kind, name, path, params in cases:
        median, worst, _ = timed(client, path, args.repeat, params)
        print(f"{name:44} {median * 1000:8.1f}ms {worst * 1000:8.1f}ms {TARGETS[kind] * 1000:7.0f}ms "
              f"{median / TARGETS[kind]:6.2f}")
    ten_thousand = {"status": "all", "area": "finance", "opened_from": (NOW - dt.timedelta(days=41)).date().isoformat()}
    total = client.get("/inbox", params=ten_thousand).text.split('id="total">(')[1].split(")")[0]
    for fmt in ("csv", "xlsx"):
        median, worst, size = timed(client, f"/exports/tickets.{fmt}", max(3, args.repeat // 2), ten_thousand)
        print(f"{'export ' + fmt + ', ' + total + ' tickets':44} {median * 1000:8.1f}ms "
              f"{worst * 1000:8.1f}ms {TARGETS['export'] * 1000:7.0f}ms {median / TARGETS['export']:6.2f}  "
              f"({size / 1e6:.1f} MB)")
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f"drop schema {schema} cascade"))
    engine.dispose()


if __name__ == "__main__":
    main()
