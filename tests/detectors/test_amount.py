"""RobustAmount: exact median/MAD per key, batch-invariant, restorable."""

from __future__ import annotations

import statistics

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.amount import RobustAmount, sorted_mad
from tests.detectors.helpers import in_batches, one_at_a_time, payment_columns, pooled_equals_alone, restored, rows


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-50, 50, allow_nan=False) | st.integers(-3, 3).map(float), min_size=1, max_size=60))
def test_sorted_mad_is_the_median_absolute_deviation(values):
    s = sorted(values)
    med = statistics.median(s)
    assert sorted_mad(s, med) == statistics.median([abs(v - med) for v in s])


def test_batches_give_exactly_the_one_at_a_time_scores():
    X = payment_columns(3000, keys=15, seed=1)
    loop = one_at_a_time(RobustAmount(window=12, warmup=4), X)
    for sizes in ([1, 2, 3], [500, 7], [3000], [64] * 50):
        assert np.array_equal(in_batches(RobustAmount(window=12, warmup=4), X, sizes), loop)
    assert (loop > 0).sum() > 100  # the check compares real scores, not zeros


def test_no_score_before_warmup_then_a_tenfold_payment_stands_out():
    det = RobustAmount(window=30, warmup=8)
    key = ("ORG1", "S1")
    for i, a in enumerate([1000, 1040, 980, 1010, 995, 1030, 1005]):
        det.learn_one({"key": key, "amount": float(a), "t": float(i)})
    assert det.score_one({"key": key, "amount": 50_000.0, "t": 9.0}) == 0.0  # 7 < warmup
    det.learn_one({"key": key, "amount": 1020.0, "t": 8.0})
    keys = np.empty(2, dtype=object)
    keys[:] = [key, key]  # (np.array would unpack the tuples into a 2-D array)
    s = det.score_many({"key": keys, "amount": np.array([1025.0, 10_200.0]), "t": np.array([9.0, 9.0])})
    assert s.scores[0] < 0.2 and s.scores[1] > 0.85
    detail = s.row(1)
    assert 9.9 < detail["times_usual"] < 10.2 and detail["history"] == 8 and detail["robust_z"] > 30


def test_lower_amounts_score_zero_unless_two_sided():
    X = payment_columns(400, keys=1, seed=2)
    low = {**rows(X, 0, 1), "amount": np.array([1.0])}
    one_sided, two_sided = RobustAmount(warmup=5), RobustAmount(warmup=5, two_sided=True)
    one_sided.learn_many(X)
    two_sided.learn_many(X)
    assert one_sided.score_many(low).scores[0] == 0.0 and two_sided.score_many(low).scores[0] > 0.9


def test_state_round_trip_continues_exactly():
    X = payment_columns(2000, keys=10, seed=3)
    whole = RobustAmount(window=20, warmup=5)
    expected = whole.process_many(X).scores
    first = RobustAmount(window=20, warmup=5)
    head = first.process_many(rows(X, 0, 1200)).scores
    tail = restored(first).process_many(rows(X, 1200, 2000)).scores
    assert np.array_equal(np.concatenate([head, tail]), expected)


def test_idle_keys_are_forgotten():
    det = RobustAmount(max_idle_days=10)
    det.learn_one({"key": "old", "amount": 5.0, "t": 0.0})
    day = 86400.0
    n = 20_000  # a sweep runs every 20,000 learned amounts
    det.learn_many({"key": np.array(["busy"] * n, dtype=object), "amount": np.full(n, 7.0),
                    "t": np.linspace(day, 30 * day, n)})
    assert det.key_count() == 1


def test_many_orgs_in_one_pooled_call_equal_each_org_alone():
    make = lambda: RobustAmount(window=12, warmup=4, min_spread=0.05)  # noqa: E731
    streams = [payment_columns(n, keys=15, seed=s) for n, s in ((700, 11), (25, 12), (1100, 13))]
    for X in streams:
        X["amount"][::37] *= 30  # outliers, so that scores are not all 0
    alone = pooled_equals_alone(make, streams, [(0, 20), (20, 400), (400, 1100)], ("usual_amount", "robust_z", "history"))
    assert max(w.scores.max() for w in alone) > 0.5


def test_a_key_keeps_a_sorted_copy_only_once_it_is_scored_and_scores_as_if_it_always_had():
    """Most keys (a contract's few payments) never reach ``warmup``: they keep their
    amounts in arrival order alone. A key that reaches it, in the pooled loop or
    ``score_one``, sorts them once and keeps them sorted from then on."""
    X = payment_columns(4000, keys=400, seed=3)  # ten payments a key on average: many stay under warmup
    loop = one_at_a_time(RobustAmount(window=12, warmup=9), X)
    det = RobustAmount(window=12, warmup=9)
    assert np.array_equal(in_batches(det, X, [5, 300, 1, 2000]), loop) and (loop > 0).any()
    held = list(det._keys.values())
    young = [h for h in held if len(h.arrived) < 9]
    assert young and all(h.ordered is None for h in young)
    for h in held:
        if h.ordered is not None:
            assert list(h.ordered) == sorted(h.arrived)
    assert sum(h.ordered is not None for h in held) > 100
