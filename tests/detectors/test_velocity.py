"""Velocity: bursts of payments to new or dormant counterparties."""

from __future__ import annotations

import numpy as np

from detectors.velocity import Velocity
from tests.detectors.helpers import in_batches, one_at_a_time, payment_columns, pooled_equals_alone, restored

DAY = 86400.0


def cols(key, times, amounts):
    return {"key": np.array([key] * len(times), dtype=object), "t": np.asarray(times, dtype=float),
            "amount": np.asarray(amounts, dtype=float)}


def watched(det: Velocity, days: int = 40) -> Velocity:
    """A detector that has watched a weekly supplier for ``days``."""
    det.process_many(cols("regular", np.arange(0, days, 7) * DAY, [1e4] * len(range(0, days, 7))))
    return det


def test_a_burst_to_a_new_counterparty_scores_an_established_one_does_not():
    det = watched(Velocity(window_days=5, min_payments=5, history_days=30))
    burst = det.process_many(cols("new", 41 * DAY + np.arange(7) * 3600, [2e5] * 7))
    assert burst.scores[3] < 0.5 <= burst.scores[4] < burst.scores[6]
    assert burst.row(6) | {} == {"status": "new", "payments": 7, "window_total": 1.4e6, "days_since_previous": burst.row(6)["days_since_previous"]}
    steady = det.process_many(cols("regular", 42 * DAY + np.arange(7) * 3600, [1e4] * 7))
    assert steady.scores.max() == 0.0


def test_large_total_counts_from_two_payments_and_dormant_is_new_again():
    det = watched(Velocity(min_payments=5, min_amount=1e6, dormant_days=20, history_days=30), days=60)
    det.process_many(cols("old", [1 * DAY], [5e3]))  # then silent for 60 days
    s = det.process_many(cols("old", [61 * DAY, 61.5 * DAY], [8e5, 9e5]))
    assert s.scores[0] == 0.0 and s.scores[1] > 0.6 and s.row(1)["status"] == "dormant"


def test_nothing_is_new_before_history_days():
    det = Velocity(min_payments=2, history_days=30)
    assert det.process_many(cols("a", np.arange(5) * 3600.0, [1e5] * 5)).scores.max() == 0.0


def test_batches_and_restores_change_nothing():
    X = payment_columns(3000, keys=200, seed=5, days=90)
    loop = one_at_a_time(Velocity(min_payments=3, window_days=10, history_days=10), X)
    assert np.array_equal(in_batches(Velocity(min_payments=3, window_days=10, history_days=10), X, [3, 400, 1]), loop)
    a = Velocity(min_payments=3, window_days=10, history_days=10)
    head = a.process_many({k: v[:1700] for k, v in X.items()}).scores
    tail = restored(a).process_many({k: v[1700:] for k, v in X.items()}).scores
    assert np.array_equal(np.concatenate([head, tail]), loop) and loop.max() > 0.5


def test_many_orgs_in_one_pooled_call_equal_each_org_alone():
    make = lambda: Velocity(window_days=5, min_payments=3, history_days=2)  # noqa: E731
    streams = [payment_columns(n, keys=60, seed=s) for n, s in ((600, 21), (15, 22), (900, 23))]
    alone = pooled_equals_alone(make, streams, [(0, 10), (10, 350), (350, 900)], ("status", "payments", "window_total"))
    assert max(w.scores.max() for w in alone) >= 0.5


def test_the_batch_loop_gives_every_detail_of_scoring_then_learning_row_by_row_across_sweeps():
    """``process_many`` runs ``_score`` and ``_learn`` inlined: each row's score and details
    equal theirs, also across the idle sweeps (every 20,000 rows), where a forgotten
    counterparty is new again."""
    X = payment_columns(45_000, keys=3000, seed=8, days=400)
    make = lambda: Velocity(window_days=5, min_payments=3, min_amount=2e5, dormant_days=30, history_days=10)  # noqa: E731
    reference, expected = make(), []
    for k, a, t in zip(X["key"].tolist(), X["amount"].tolist(), X["t"].tolist()):
        expected.append(reference._score(reference._keys.get(k), a, t))
        reference._learn(k, a, t)
    detector = make()
    got = [detector.process_many({name: col[a:b] for name, col in X.items()})
           for a, b in ((0, 7), (7, 19_999), (19_999, 20_001), (20_001, 45_000))]
    rows = [(float(s.scores[i]), *(s.row(i)[name] for name in ("status", "payments", "window_total",
                                                                 "days_since_previous")))
            for s in got for i in range(len(s.scores))]
    assert len(rows) == len(expected)
    for mine, theirs in zip(rows, expected):
        assert mine[:4] == theirs[:4] and (mine[4] == theirs[4] or (mine[4] != mine[4] and theirs[4] != theirs[4]))
    assert detector.key_count() == reference.key_count() < 3000  # the sweeps forgot the same keys
    assert sum(1 for r in expected if r[1] == "dormant") > 10 and max(r[0] for r in expected) > 0.5
