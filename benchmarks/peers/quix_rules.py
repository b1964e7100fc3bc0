"""Three riskwatch rules as a Quix Streams app: the peer in benchmarks/bench_peers.py.

Runs in its own environment (Quix Streams pins its own confluent-kafka), made
by bench_peers.py from benchmarks/peers/requirements-quix.txt. Written the way
Quix's documentation writes an app: a StreamingDataFrame over the input topics,
one branch per rule, stateful functions keeping each key's events in the
app's state store (RocksDB, changelogged), alerts produced to a topic.

- proc_split_purchase: non-tender purchase orders under the category's tender
  threshold, by (org, counterparty, category); two or more within 30 days
  summing to the threshold or more. Framework call-offs are the rule's exception.
- fin_duplicate_invoice: payments of the same invoice to the same
  counterparty, by org; two or more within 365 days.
- fin_payment_over_contract: payments against a contract, by (org, contract);
  the running total over the contract amount in force at the payment's time.

Each window is judged as riskwatch judges it: an event is an anchor, and so is
every later event whose window it joins; a window is (anchor - length, anchor].
The messages are keyed by org_id, so every rule's key lives in one partition
and no repartition is needed.

    python quix_rules.py --broker 127.0.0.1:9092 --group g1 --topics riskwatch.events.finance,... --events 199800 \\
        --thresholds '{"goods": 2000000}' --setting default --keys-out keys.json

Prints one JSON line: events, seconds (first event to last), alerts, setting.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import json
import tempfile
import time

from quixstreams import Application
from quixstreams.utils.json import loads  # orjson, as Quix's own JSON deserializer

from quix_settings import SETTINGS

DAY = 86_400.0



def business_time(event: dict) -> float | None:
    try:
        return dt.datetime.fromisoformat(event["occurred_at"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def fired_anchors(entries: list, t: float, within: float, min_count: int, min_sum: float | None) -> bool:
    """Whether the new entry at ``t``, or a later one whose window now holds it,
    has at least ``min_count`` entries (and ``min_sum``) within (anchor - within, anchor]."""
    times = [e[0] for e in entries]
    for j in range(len(entries) - 1, -1, -1):
        tj = times[j]
        if tj < t:
            break
        lo = bisect.bisect_right(times, tj - within)
        hi = bisect.bisect_right(times, tj)
        if hi - lo >= min_count and (min_sum is None or sum(e[2] for e in entries[lo:hi]) >= min_sum):
            return True
    return False


def windowed(state, name: str, key: str, event: dict, t: float, value: float, within: float, min_count: int,
             min_sum: float | None) -> bool:
    """Add the event to the key's window in the state store; whether it fired."""
    entries = state.get(f"{name}|{key}", [])
    if any(e[1] == event["event_id"] for e in entries):
        return False  # the same event delivered twice
    bisect.insort(entries, [t, event["event_id"], value])
    fired = fired_anchors(entries, t, within, min_count, min_sum)
    horizon = entries[-1][0] - within
    entries = [e for e in entries if e[0] > horizon] if entries[0][0] <= horizon else entries
    state.set(f"{name}|{key}", entries)
    return fired


DOMAINS = ("finance", "investment", "procurement", "governance")


def conforms(event) -> bool:
    """The event contract (riskwatch's contract 1), as an app checks its input:
    required text fields, a known domain, a business time with an offset, a
    non-negative amount, an attributes object."""
    if not isinstance(event, dict):
        return False
    for name in ("event_id", "source", "type", "org_id"):
        if not isinstance(event.get(name), str) or not event[name]:
            return False
    amount = event.get("amount")
    if event.get("domain") not in DOMAINS or not isinstance(event.get("attributes", {}), dict):
        return False
    if amount is not None and (number(amount) is None or amount < 0):
        return False
    if not isinstance(event.get("counterparty_id"), (str, type(None))):
        return False
    try:
        at = dt.datetime.fromisoformat(event["occurred_at"])
    except (KeyError, TypeError, ValueError):
        return False
    return at.tzinfo is not None and 1900 <= at.year <= 2999


def parse(raw: bytes) -> dict | None:
    """A record that is not a conforming JSON object is skipped (riskwatch sends it to the dead letters)."""
    try:
        event = loads(raw)
    except ValueError:
        return None
    return event if conforms(event) else None


def build(app: Application, topics: list[str], thresholds: dict, found: set, count) -> None:
    alerts = app.topic("peer.quix.alerts", value_serializer="json")
    # bytes, parsed in the app: every message is counted, a malformed one too
    frames = [app.dataframe(app.topic(name, value_deserializer="bytes")) for name in topics]
    sdf = frames[0]
    for other in frames[1:]:
        sdf = sdf.concat(other)
    sdf = sdf.update(count).apply(parse).filter(lambda e: e is not None)
    for candidate, judge in rules(thresholds, found):
        sdf.filter(candidate).apply(judge, stateful=True, expand=True).to_topic(alerts)


def rules(thresholds: dict, found: set) -> list:
    """(candidate, judge) per rule: which events it reads, and the stateful
    function that returns its alerts for one event."""

    def alert(rule: str, key: str) -> dict:
        found.add(f"{rule}|{key}")
        return {"rule_id": rule, "key": key}

    # proc_split_purchase
    def split_candidate(e: dict) -> bool:
        attrs = e.get("attributes") or {}
        amount, limit = number(e.get("amount")), thresholds.get(attrs.get("category"))
        return (e.get("type") == "purchase_order" and attrs.get("method") not in ("tender", "framework")
                and amount is not None and limit is not None and amount < limit
                and bool(e.get("org_id")) and bool(e.get("counterparty_id")) and bool(attrs.get("category")))

    def split_purchase(e: dict, state):
        t = business_time(e)
        if t is None:
            return []
        attrs = e["attributes"]
        key = f"{e['org_id']}|{e['counterparty_id']}|{attrs['category']}"
        fired = windowed(state, "split", key, e, t, float(e["amount"]), 30 * DAY, 2, thresholds[attrs["category"]])
        return [alert("proc_split_purchase", key)] if fired else []

    # fin_duplicate_invoice
    def invoice_candidate(e: dict) -> bool:
        attrs = e.get("attributes") or {}
        return (e.get("type") == "payment" and bool(attrs.get("invoice_no")) and bool(e.get("counterparty_id"))
                and bool(e.get("org_id")))

    def duplicate_invoice(e: dict, state):
        t = business_time(e)
        if t is None:
            return []
        key = f"{e['org_id']}|{e['counterparty_id']}|{e['attributes']['invoice_no']}"
        fired = windowed(state, "invoice", key, e, t, 0.0, 365 * DAY, 2, None)
        return [alert("fin_duplicate_invoice", key)] if fired else []

    # fin_payment_over_contract
    def contract_candidate(e: dict) -> bool:
        attrs = e.get("attributes") or {}
        return (e.get("type") in ("payment", "contract_signed", "contract_changed") and bool(attrs.get("contract_id"))
                and bool(e.get("org_id")))

    def over_contract(e: dict, state):
        t = business_time(e)
        amount = number(e.get("amount"))
        is_add = e["type"] == "payment"
        if t is None or (amount is None and not is_add):
            return []
        key = f"{e['org_id']}|{e['attributes']['contract_id']}"
        book = state.get(f"contract|{key}", {"adds": [], "refs": [], "ids": []})
        if e["event_id"] in book["ids"]:
            return []
        book["ids"].append(e["event_id"])
        bisect.insort(book["adds" if is_add else "refs"], [t, amount or 0.0])
        state.set(f"contract|{key}", book)
        if not book["refs"]:
            return []
        # Every payment at or after the change is judged: its running total
        # against the contract amount in force at its time.
        since = -float("inf") if not is_add and book["refs"][0][0] == t else t
        total, refs = 0.0, book["refs"]
        for at, paid in book["adds"]:
            total += paid
            if at < since:
                continue
            i = bisect.bisect_right([r[0] for r in refs], at)
            if total > refs[max(i - 1, 0)][1]:
                return [alert("fin_payment_over_contract", key)]
        return []

    return [(split_candidate, split_purchase), (invoice_candidate, duplicate_invoice),
            (contract_candidate, over_contract)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--topics", required=True, help="the event topics, comma-separated")
    ap.add_argument("--events", type=int, required=True, help="stop after this many input messages")
    ap.add_argument("--thresholds", required=True, help="tender_threshold of params.yaml, as JSON")
    ap.add_argument("--setting", choices=list(SETTINGS), default="default")
    ap.add_argument("--keys-out", required=True, help="where to write the alerted keys (JSON list)")
    args = ap.parse_args()
    found: set[str] = set()
    seen = [0, 0.0, 0.0]  # events, first, last

    with tempfile.TemporaryDirectory(prefix="quix-state-") as state_dir:
        app = Application(broker_address=args.broker, consumer_group=args.group, auto_offset_reset="earliest",
                          state_dir=state_dir, loglevel="WARNING",
                          on_processing_error=lambda exc, row, logger: True,  # a malformed event is skipped
                          on_consumer_error=lambda exc, message, logger: True,
                          **SETTINGS[args.setting])

        def count(_raw) -> None:
            seen[0] += 1
            now = time.perf_counter()
            if seen[0] == 1:
                seen[1] = now
            seen[2] = now
            if seen[0] >= args.events:
                app.stop()

        build(app, args.topics.split(","), json.loads(args.thresholds), found, count)
        app.run()
    with open(args.keys_out, "w", encoding="utf-8") as f:
        json.dump(sorted(found), f)
    print(json.dumps({"setting": args.setting, "events": seen[0], "seconds": seen[2] - seen[1], "alerts": len(found)}))


if __name__ == "__main__":
    main()
