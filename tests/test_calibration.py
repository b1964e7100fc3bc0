"""Calibrated alerts (monitor.core.calibration): a rate, whatever the density, the same at any batching."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest

from monitor.core.calibration import BUCKETS, SMALLEST_GAP, OrgTails, bucket_of, calibrate_loop, parse_rate


def _stream(n: int, orgs: int, seed: int, days: float = 90.0):
    rng = np.random.default_rng(seed)
    names = np.array([f"ORG{i:04d}" for i in range(orgs)], dtype=object)
    org = names[rng.zipf(1.6, n) % orgs]  # some orgs busy, most quiet
    scores = np.round(rng.beta(6, 2, n), 3)  # rounded: ties, as raw scores have
    times = np.sort(rng.random(n)) * days * 86_400
    return org, scores, times


@pytest.mark.parametrize("alpha", [1 / 200, 1 / 1000])
def test_a_stationary_stream_alerts_at_about_alpha(alpha):
    orgs, scores, times = _stream(400_000, 3, seed=11)
    tails = OrgTails()
    alerts = eligible = 0
    for start in range(0, len(scores), 8192):
        part = slice(start, start + 8192)
        _, alert = tails.calibrate(orgs[part], scores[part], times[part], alpha, warmup=int(1 / alpha))
        alerts += int(alert.sum())
    eligible = len(scores) - 3 * int(1 / alpha)
    rate = alerts / eligible
    # conformal: at most alpha; ties share a bucket, so a little under (fixed seed)
    assert 0.6 * alpha <= rate <= 1.1 * alpha, (rate, alpha)


def test_the_rate_does_not_move_with_density():
    rates = []
    for n in (40_000, 400_000):
        orgs, scores, times = _stream(n, 2, seed=5)
        tails = OrgTails()
        _, alert = tails.calibrate(orgs, scores, times, 1 / 500, warmup=500)
        rates.append(alert.sum() / (n - 1000))
    assert max(rates) / min(rates) < 1.5, rates


@pytest.mark.parametrize("batch", [1, 7, 100, 4096, 60_000])
def test_batches_give_what_one_at_a_time_gives(batch):
    orgs, scores, times = _stream(6_000, 40, seed=batch)
    scores[::97] = 1.0  # some at the very top
    loop_p, loop_alert = calibrate_loop(OrgTails(), orgs, scores, times, 1 / 50, warmup=50, daily_cap=2)
    tails = OrgTails()
    p, alert = [], []
    for start in range(0, len(scores), batch):
        part = slice(start, start + batch)
        pp, aa = tails.calibrate(orgs[part], scores[part], times[part], 1 / 50, warmup=50, daily_cap=2)
        p += pp.tolist()
        alert += aa.tolist()
    assert alert == loop_alert
    assert sum(alert) > 20  # the case is not vacuous
    seen: dict = {}
    warm = [seen.__setitem__(o, seen.get(o, 0) + 1) or seen[o] > 50 for o in orgs]  # 50 scores before it
    # where p decides (past the warm-up, at alpha or under) it is exact; elsewhere a bound above alpha
    exact = [w and a <= 1 / 50 for w, a in zip(warm, loop_p)]
    assert [x for x, e in zip(p, exact) if e] == [x for x, e in zip(loop_p, exact) if e]
    assert all(x > 1 / 50 for x, e, w in zip(p, exact, warm) if w and not e)


def test_the_daily_cap_holds_per_org_and_day():
    tails = OrgTails()
    n = 3000
    orgs = np.array(["A", "B"] * (n // 2), dtype=object)
    scores = np.linspace(0, 0.9, n)  # every score a new high: each may alert once warm
    times = np.arange(n) * 600.0  # 144 events a day
    _, alert = tails.calibrate(orgs, scores, times, 1 / 10, warmup=10, daily_cap=3)
    days = np.floor((times + 8 * 3600) / 86_400)
    for org in ("A", "B"):
        mine = (orgs == org) & alert
        per_day = np.bincount(days[mine].astype(int))
        assert per_day.max() == 3
    _, uncapped = OrgTails().calibrate(orgs, scores, times, 1 / 10, warmup=10)
    assert uncapped.sum() > alert.sum()


def test_no_alert_before_the_warmup_nor_below_the_floor():
    tails = OrgTails()
    _, alert = tails.calibrate(np.array(["A"] * 99, dtype=object), np.linspace(0, 1, 99), np.zeros(99),
                               1 / 100, warmup=100)
    assert not alert.any()  # 99 scores cannot say "rarer than 1 in 100"
    rng = np.random.default_rng(2)
    tails.calibrate(np.array(["A"] * 5000, dtype=object), rng.random(5000), np.zeros(5000), 1 / 100, warmup=100)
    floor = tails.floor("A", 1 / 100, 100, coming=50)
    assert 0.9 < floor < 1.0
    probe = np.linspace(0, 1, 200)
    fresh = OrgTails()
    fresh.load("A", tails.state_of("A"))
    _, alert = fresh.calibrate(np.array(["A"] * 200, dtype=object), probe, np.zeros(200), 1 / 100, warmup=100)
    assert alert.any() and probe[alert].min() >= floor


def test_state_round_trips_through_a_changelog_record():
    orgs, scores, times = _stream(20_000, 30, seed=3)
    whole = OrgTails()
    _, expected = whole.calibrate(orgs, scores, times, 1 / 100, warmup=100, daily_cap=5)
    first = OrgTails()
    _, head = first.calibrate(orgs[:9_000], scores[:9_000], times[:9_000], 1 / 100, warmup=100, daily_cap=5)
    records = {org: msgspec.msgpack.encode(first.state_of(org)) for org in first.rows}  # what a changelog keeps
    second = OrgTails()
    for org, record in records.items():
        second.load(org, msgspec.msgpack.decode(record))
    _, tail = second.calibrate(orgs[9_000:], scores[9_000:], times[9_000:], 1 / 100, warmup=100, daily_cap=5)
    assert head.tolist() + tail.tolist() == expected.tolist()
    assert all(len(r) < 2_000 for r in records.values())  # bounded: at most one count per bucket


def test_buckets_are_finest_near_a_score_of_one():
    b = bucket_of(np.array([0.5, 0.501, 0.999, 0.9991, float("nan"), -3.0, 7.0]))
    assert b[0] == b[1]  # the bulk: one bucket
    assert b[2] < b[3]  # the tail: told apart
    assert b[4] == b[5] == 0 and b[6] == 255


@pytest.mark.parametrize("text,alpha", [("1 in 2,000", 1 / 2000), ("1 in 500", 1 / 500), (0.01, 0.01),
                                        ("2 in 1_000", 0.002), ("1 in 1", None), ("sometimes", None),
                                        (0, None), (True, None)])
def test_rates_read_as_analysts_write_them(text, alpha):
    assert parse_rate(text) == alpha


def _floor_one_org(tails: OrgTails, org, alpha: float, warmup: int, coming: int) -> float:
    """The lowest score that could alert among an org's next events, read off its histogram row by row."""
    row = tails.rows.get(str(org))
    seen = 0 if row is None else int(tails.totals[row])
    if seen + coming - 1 < warmup or (seen + coming) * alpha < 1 - 1e-9:
        return 1.01
    if row is None:
        return 0.0
    counts = tails.counts[row]
    for k in range(BUCKETS):
        if int(counts[k:].sum()) + 1 <= alpha * (seen + coming + 1) + 1e-9:
            return 1.0 - math.exp(-k * math.log(1 / SMALLEST_GAP) / (BUCKETS - 1)) if k > 0 else 0.0
    return 0.0


def test_every_orgs_floor_at_once_equals_each_read_alone():
    rng = np.random.default_rng(11)
    tails = OrgTails()
    orgs = rng.choice(["A", "B", "C"], 5000).astype(object)
    tails.calibrate(orgs, rng.beta(0.5, 3, 5000), np.zeros(5000), 0.01, 100)
    asked = ["A", "B", "C", "unseen"]
    for alpha in (0.0005, 0.01, 0.2):
        for warmup in (0, 100, 3000):
            coming = rng.integers(1, 800, len(asked))
            expected = [_floor_one_org(tails, o, alpha, warmup, int(c)) for o, c in zip(asked, coming)]
            assert tails.floors(asked, alpha, warmup, coming).tolist() == expected
    assert 0 < tails.floors(["A"], 0.01, 100, np.array([1]))[0] < 1.01
