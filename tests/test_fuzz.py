"""Fuzzing every door records and rules come in by: the event decoder, the
runners (one worker, two workers, standard input), the rules-folder loader and
the HTTP connector, with random and adversarial input — calendar edges, deep
nesting, huge numbers, control characters, broken JSON.

The invariant everywhere: no traceback, no hang (each case has a time bound),
and every record either scored or rejected: ``in = scored + rejected`` exactly.

How many cases: the ``ci`` profile (the default) and ``long`` (opt-in):

    HYPOTHESIS_PROFILE=long ./scripts/test tests/test_fuzz.py
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.analyst.generator import generate
from monitor.core.event import REJECT_REASONS, YEARS, Event, decode_lines
from monitor.packs.rulefiles import default_rules_dir, lint
from monitor.runners.runner import EmbeddedRunner

# name -> examples per test: decoder, runner, loader, http, stdin
PROFILES = {"ci": (300, 40, 150, 100, 5), "long": (20_000, 1_000, 3_000, 3_000, 50)}
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
DECODER, RUNNER, LOADER, HTTP, STDIN = PROFILES.get(PROFILE, PROFILES["ci"])


def fuzz(examples: int):
    return settings(max_examples=examples, deadline=None, derandomize=PROFILE == "ci",
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


@contextlib.contextmanager
def time_bound(seconds: float):
    """Fail the case when it takes longer: the alarm breaks a hang, and the
    elapsed time is checked afterwards too, since an alarm that lands inside
    a callback (the garbage collector's) is reported there and swallowed."""
    def expire(signum, frame):
        raise TimeoutError(f"a case took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.monotonic() - started
    assert elapsed < seconds, f"a case took {elapsed:.1f} s (bound {seconds} s)"


# --- what records are made of ---------------------------------------------------------------

CALENDAR_EDGES = [
    "0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59",
    "9999-12-31T20:00:00+00:00", "1899-12-31T23:59:59+00:00", "1900-01-01T00:00:00+23:59",
    "2999-12-31T23:59:59-23:59", "3000-01-01T00:00:00+00:00", "2026-02-29T10:00:00+08:00",
    "2026-03-02T10:00:00", "2026-03-02 10:00:00+08:00", "2026-03-02T24:00:00+08:00", "",
]
timestamps = st.one_of(
    st.sampled_from(CALENDAR_EDGES),
    st.builds(lambda t, minutes: t.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes))).isoformat(),
              st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31)), st.integers(-1439, 1439)),
)
texts = st.one_of(st.text(max_size=40), st.sampled_from(["SUB\u0001", "\x00", "=HYPERLINK(\"x\")", "\ud7ff", "",
                                                        "x" * 5000]))
numbers = st.one_of(
    st.integers(-(10**30), 10**30), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -0.0, 2**63 - 1, 2**63, -(2**63) - 1, 10**400, 1e308]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
nested = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=30)
ORGS = ["SUB01", "SUB02", "SUB03", "SUB04", "SUB05"]


def _json(value) -> bytes:
    """JSON for anything above, integers of any size included (as JSON allows)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", errors="surrogatepass")


@st.composite
def records(draw) -> bytes:
    """One line: a plausible event with some of its fields made hostile, or debris."""
    kind = draw(st.sampled_from(["event", "event", "event", "deep", "bytes", "truncated", "blank"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200)).replace(b"\n", b" ").replace(b"\r", b" ")
    if kind == "blank":
        return draw(st.sampled_from([b"", b"   ", b"\t"]))
    record = {"event_id": f"f{draw(st.integers(0, 10**6))}", "source": "fuzz",
              "domain": draw(st.sampled_from(["finance", "procurement", "investment", "governance", "other"])),
              "type": draw(st.sampled_from(["payment", "purchase_order", "contract_signed", "journal_entry", "x"])),
              "occurred_at": draw(st.one_of(st.just("2026-03-02T10:00:00+08:00"), timestamps)),
              "org_id": draw(st.one_of(st.sampled_from(ORGS), texts)),
              "amount": draw(st.one_of(st.floats(0, 1e9), numbers, st.none())),
              "counterparty_id": draw(st.one_of(st.sampled_from(["S1", "S2"]), texts, st.none())),
              "attributes": draw(st.dictionaries(st.sampled_from(["contract_id", "category", "method", "original_amount",
                                                                  "legal_review", "approver_level", "x", ""]),
                                                 nested, max_size=5))}
    for field in draw(st.sets(st.sampled_from(sorted(record)), max_size=2)):  # a field or two replaced by anything
        if draw(st.booleans()):
            del record[field]
        else:
            record[field] = draw(nested)
    raw = _json(record)
    if kind == "deep":  # nesting past any limit, written out as text
        depth = draw(st.sampled_from([9, 10, 11, 17, 600, 990, 3000]))
        opener, closer = draw(st.sampled_from([(b'{"x":', b"}"), (b"[", b"]")]))
        raw = raw.replace(b'"attributes": {', b'"attributes": {"deep": ' + opener * depth + b"1" + closer * depth + b", ")
    if kind == "truncated":
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    return raw


lines_of_records = st.lists(records(), min_size=1, max_size=30)


def nonblank(lines: list[bytes]) -> int:
    return sum(1 for line in lines if line.strip())


def nonblank_lines(data: bytes) -> int:
    """Records in a JSONL file: its lines (split at LF, as a file is read) that are not blank."""
    return nonblank(data.split(b"\n"))


# --- the decoder ----------------------------------------------------------------------------


@fuzz(DECODER)
@given(lines=lines_of_records)
def test_the_decoder_accounts_for_every_record(lines):
    with time_bound(10):
        events, rejected = decode_lines(lines)
    assert len(events) + len(rejected) == nonblank(lines)
    assert {r.reason for r in rejected} <= set(REJECT_REASONS)
    assert all(isinstance(e, Event) and YEARS[0] <= e.occurred_at.year <= YEARS[1] for e in events)
    assert sorted(r.line for r in rejected) == [r.line for r in rejected]


# --- the runners ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_lines() -> list[bytes]:
    """Real traffic for the hostile lines to hide in: enough for the detectors' months."""
    return generate(events=3000, seed=7).lines


def _hostile_file(folder: Path, demo: list[bytes], hostile: list[bytes], spread: int) -> Path:
    lines = list(demo)
    for i, raw in enumerate(hostile):
        lines.insert((i * spread) % (len(lines) + 1), raw + b"\n")
    path = folder / "in.jsonl"
    path.write_bytes(b"".join(lines))
    return path


@fuzz(RUNNER)
@given(hostile=lines_of_records, workers=st.sampled_from([1, 2]), spread=st.integers(1, 997))
def test_a_run_scores_or_rejects_every_record(default_pack, demo_lines, hostile, workers, spread):
    with tempfile.TemporaryDirectory() as folder:
        path = _hostile_file(Path(folder), demo_lines, hostile, spread)
        runner = EmbeddedRunner(default_pack, workers=workers, batch_size=500)
        with time_bound(60):
            summary = runner.run_file(path, Path(folder) / "alerts.jsonl", Path(folder) / "rejected.jsonl")
        expected = nonblank_lines(path.read_bytes())
        assert summary.lines == summary.scored + summary.rejected == expected
        assert len((Path(folder) / "rejected.jsonl").read_bytes().splitlines()) == summary.rejected


PAYMENT = {"event_id": "h", "source": "fuzz", "domain": "finance", "type": "payment", "org_id": "SUB01",
           "occurred_at": "2026-03-02T10:00:00+08:00", "amount": 1234.5, "counterparty_id": "S1",
           "attributes": {"payment_no": "FK1", "approver_level": "department"}}


def _payment(**fields) -> bytes:
    return _json({**PAYMENT, **fields})


def _deep(depth: int) -> bytes:
    return _payment().replace(b'"attributes": {', b'"attributes": {"x": ' + b'{"x": ' * depth + b"1" + b"}" * depth + b", ")


KNOWN = {  # the probes that once stopped or hung a run, each as one line among real traffic
    "Benford's +8 h past year 9999": _payment(occurred_at="9999-12-31T20:00:00+00:00"),
    "an offset past year 9999": _payment(occurred_at="9999-12-31T23:59:59-23:59"),
    "before year 1": _payment(occurred_at="0001-01-01T00:00:00+23:59"),
    "attributes 600 deep": _deep(600),
    "attributes 990 deep": _deep(990),
    "attributes 5000 deep": _deep(5000),
    "an amount of 400 digits": _payment().replace(b'"amount": 1234.5', b'"amount": 1' + b"0" * 400),
    "an attribute of 400 digits": _payment(attributes={"original_amount": 10**400}),
    "control characters": _payment(org_id="SUB\u0001", counterparty_name="=HYPERLINK(\"x\")\u0000"),
    "a record of 2 MiB": _payment(counterparty_name="x" * (2 << 20)),
}


@pytest.mark.parametrize("workers", [1, 2])
def test_the_known_hostile_lines_are_each_rejected_or_scored(default_pack, demo_lines, tmp_path, workers):
    path = _hostile_file(tmp_path, demo_lines, list(KNOWN.values()), 257)
    runner = EmbeddedRunner(default_pack, workers=workers, batch_size=500)
    with time_bound(60):
        summary = runner.run_file(path, tmp_path / "alerts.jsonl", tmp_path / "rejected.jsonl")
    assert summary.lines == summary.scored + summary.rejected == nonblank_lines(path.read_bytes())
    reasons = {r.raw.rstrip(b"\n"): r.reason for r in runner.rejected}
    expected = {"Benford's +8 h past year 9999": "bad_timestamp", "an offset past year 9999": "bad_timestamp",
                "before year 1": "bad_timestamp", "attributes 600 deep": "too_deep", "attributes 990 deep": "too_deep",
                "attributes 5000 deep": "too_deep", "an amount of 400 digits": "out_of_range",
                "an attribute of 400 digits": "out_of_range", "a record of 2 MiB": "too_large"}
    for name, reason in expected.items():
        assert reasons.get(KNOWN[name]) == reason, name


@fuzz(STDIN)
@given(hostile=lines_of_records, spread=st.integers(1, 997))
def test_riskwatch_run_on_standard_input_reports_every_record(demo_lines, hostile, spread):
    """The command itself, reading standard input, in its own process."""
    with tempfile.TemporaryDirectory() as folder:
        path = _hostile_file(Path(folder), demo_lines, hostile, spread)
        done = subprocess.run([sys.executable, "-m", "monitor.cli", "run", "--input", "-", "--alerts-out",
                               str(Path(folder) / "alerts.jsonl"), "--rejected-out", str(Path(folder) / "rej.jsonl"),
                               "--db", "none", "--quiet"], input=path.read_bytes(), capture_output=True, timeout=120)
        assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr.decode()[-2000:]
        expected = nonblank_lines(path.read_bytes())
        assert f"in {expected} = scored".encode() in done.stdout, done.stdout


# --- the rules-folder loader ----------------------------------------------------------------

SNIPPETS = st.one_of(
    st.sampled_from(["x: &a [1, 2]\ny: *a\n", "- &a [*a]\n", "[" * 990 + "]" * 990 + "\n",
                     "{a: " * 300 + "1" + "}" * 300 + "\n", "n: 1" + "0" * 400 + "\n", "f: .inf\n",
                     "- rule: fin_z\n  title: z\n  risk: FIN-01\n  when: amount > 1" + "0" * 400 + "\n  message: '{org_id}'\n",
                     "- rule: fin_z\n  title: z\n  risk: FIN-01\n  when: amount > 1\n  message: '{amount:>99999999}'\n",
                     "\t- broken\n", ": :\n", "? [a, b]\n: c\n", "!!python/object/apply:os.system ['true']\n"]),
    st.text(max_size=200),
    st.builds(lambda spec: f"- rule: fin_z\n  title: z\n  risk: FIN-01\n  when: amount > 1\n  message: '{{amount:{spec}}}'\n",
              st.text(alphabet=",.0123456789<>=^+- #_%dfegsxXbcn{}", max_size=12)),
)


@pytest.fixture(scope="module")
def rule_files() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in default_rules_dir().glob("*.yaml")}


@fuzz(LOADER)
@given(data=st.data())
def test_linting_any_rules_folder_ends_in_a_pack_or_problems(rule_files, data):
    file = data.draw(st.sampled_from(sorted(rule_files)))
    lines = rule_files[file].splitlines(keepends=True)
    at = data.draw(st.integers(0, len(lines)))
    snippet = data.draw(SNIPPETS)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "rules"
        shutil.copytree(default_rules_dir(), root)
        (root / file).write_text("".join(lines[:at]) + snippet + "".join(lines[at:]), encoding="utf-8",
                                 errors="surrogatepass")
        with time_bound(10):
            pack, problems = lint(root)
    assert pack is not None or any(p.level == "error" for p in problems)
    assert all(p.line >= 1 and p.col >= 1 and p.file for p in problems)


# --- the HTTP connector ---------------------------------------------------------------------

TOKEN = "rwh_fuzz-token-0123456789abcdef"


def _post(body: bytes, content_type: str):
    from aiohttp import ClientSession, web

    from connectors.http import HttpLimits, create_http_app
    from connectors.sink import MemorySink

    sink = MemorySink()

    async def go():
        runner = web.AppRunner(create_http_app(sink, [TOKEN], HttpLimits(max_bytes=1 << 20, max_records=100)))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with ClientSession() as http:
                async with http.post(f"http://127.0.0.1:{port}/events", data=body,
                                     headers={"Content-Type": content_type, "Authorization": f"Bearer {TOKEN}"}) as r:
                    return r.status, await r.read()
        finally:
            await runner.cleanup()

    return asyncio.run(go()), sink


@fuzz(HTTP)
@given(items=lines_of_records, as_lines=st.booleans())
def test_the_http_connector_answers_for_every_record(items, as_lines):
    items = [i for i in items if i.strip()]
    valid_json = []
    for raw in items:  # the array form needs each item to be JSON; debris goes in as a string
        try:
            orjson.loads(raw)
            valid_json.append(raw)
        except orjson.JSONDecodeError as err:
            deep = "recursion" in str(err).lower()  # JSON, nested past what orjson reads
            valid_json.append(raw if deep else orjson.dumps(raw.decode("utf-8", errors="replace")))
    body = b"\n".join(items) if as_lines else b"[" + b",".join(valid_json) + b"]"
    with time_bound(30):
        (status, answer), sink = _post(body, "application/x-ndjson" if as_lines else "application/json")
    assert status in (202, 400), (status, answer[:500])
    result = orjson.loads(answer)
    assert result["accepted"] + result["rejected"] == len(items)
    sent = sum(len(v) for v in sink.events.values())
    assert (sent, len(sink.dead_letters)) == (result["accepted"], result["rejected"])
