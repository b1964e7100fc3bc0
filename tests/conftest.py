"""Shared helpers: events from partial dicts, the default pack, scoring a list."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest

from monitor.core.batch import EventBatch
from monitor.core.event import EVENT_TYPES, Event, decode_one
from monitor.packs.rulefiles import default_rules_dir, load_pack
from monitor.core.scorer import Scorer
from monitor.core.state import ScorerState

CST = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=CST)


def make_event(i: int = 0, **fields) -> Event:
    """An event with defaults for everything not given (i numbers it)."""
    record = {
        "event_id": f"e{i}",
        "source": "test",
        "domain": EVENT_TYPES.get(fields.get("type", "payment"), "finance"),
        "type": "payment",
        "occurred_at": (START + dt.timedelta(hours=i)).isoformat(),
        "org_id": "ORG1",
        **fields,
    }
    if isinstance(record["occurred_at"], dt.datetime):
        record["occurred_at"] = record["occurred_at"].isoformat()
    decoded = decode_one(orjson.dumps(record))
    assert isinstance(decoded, Event), decoded
    return decoded


def score_all(pack, events, batch_size: int = 1000, state: ScorerState | None = None):
    """Score events in batches; returns (findings, state)."""
    scorer = Scorer(pack)
    state = state or ScorerState()
    findings = []
    for i in range(0, len(events), batch_size):
        findings += scorer.score(EventBatch(events[i:i + batch_size]), state)
    return findings, state


@pytest.fixture(scope="session")
def default_pack():
    return load_pack(default_rules_dir(), today=dt.date(2026, 11, 27))


@pytest.fixture()
def rules_copy(tmp_path) -> Path:
    """A writable copy of the default rules folder."""
    import shutil

    dst = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), dst)
    return dst


@pytest.fixture(scope="session")
def kafka_broker():
    """The real broker, started by scripts/test. Missing is a failure, not a skip."""
    from tests.kafka_util import BROKER, broker_up

    if not broker_up():
        pytest.fail("no Kafka broker on 127.0.0.1:9092: start it with scripts/kafka-local.sh start (scripts/test does)")
    from monitor.runners.topics import create_topics

    create_topics(BROKER)
    return BROKER


@pytest.fixture(scope="session")
def postgres_url():
    """The real PostgreSQL, started by scripts/test. Missing is a failure, not a skip."""
    import os

    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    url = os.environ.get("RISKWATCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:54329/riskwatch")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except OperationalError as err:
        pytest.fail(f"no PostgreSQL at {url}: start it with scripts/postgres-local.sh start (scripts/test does): {err}")
    finally:
        engine.dispose()
    return url


def org_watermarks(event_values) -> dict[str, float]:
    """Each org's latest business time (epoch seconds) over these event JSON values."""
    marks: dict[str, float] = {}
    for value in event_values:
        try:
            event = orjson.loads(value)
            t = dt.datetime.fromisoformat(event["occurred_at"]).timestamp()
            org = event["org_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # a malformed record: dead-lettered, never in the state
        marks[org] = max(t, marks.get(org, t))
    return marks


def live_state(table: dict[bytes, bytes], pack, org_marks: dict[str, float], detectors: bool = True) -> dict[bytes, bytes]:
    """A worker's state table without the window and total entries idle past
    their rule's horizon at their org's last event: entries a sweep drops
    whenever it next runs, and a restarted worker sweeps on its own schedule.
    ``detectors=False`` leaves out what depends on where batches begin and
    end: the detector models and their alerts' messages (which quote them),
    and how many findings each alert has merged (a rule or detector makes at
    most one finding per key in a batch, so two events of a key in one batch
    count once, in two batches twice). An alert's event ids are compared as a
    set: they are kept in the order they arrived, and two inputs (a payment
    topic, a procurement topic) interleave a key's events differently in
    every run."""
    from monitor.core.keyed import _total_last_seen, _window_last_seen
    from monitor.runners.tablestate import TableStore

    live = dict(table)
    for rule in pack.rules:
        if rule.kind == "event":
            continue
        horizon = rule.window_seconds + rule.lateness_seconds if rule.kind == "window" else rule.expires_seconds
        last_seen = _window_last_seen if rule.kind == "window" else _total_last_seen
        store = TableStore(table, rule.id, rule.kind, rule.key.index("org_id"))
        for key, value in store.items():
            if last_seen(value) < org_marks[key[store.org_index]] - horizon:
                del live[store._table_key(key)]
    if not detectors:
        live = {k: v for k, v in live.items() if b"\x1fdetector\x1f" not in k}
        detector_alerts = tuple(b"\x1falert\x1f" + d.id.encode() + b"|" for d in pack.detectors)
        for key, value in live.items():
            if b"\x1falert\x1f" in key:
                alert = orjson.loads(value)
                alert.pop("count")
                alert["event_ids"] = sorted(alert["event_ids"])
                if any(marker in key for marker in detector_alerts):
                    alert.pop("message")
                live[key] = orjson.dumps(alert)
    return live
