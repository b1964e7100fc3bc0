"""Payment features and the multivariate detectors' explanations."""

from __future__ import annotations

import numpy as np

from detectors.payments import PaymentHalfSpaceTrees
from tests.detectors.helpers import in_batches, payment_columns, pooled_equals_alone, restored, rows


def test_days_since_reads_the_previous_payment_to_the_same_counterparty():
    from detectors.payments import PaymentFeatures

    f = PaymentFeatures()
    X = {"key": np.array(["A", "B", "A"], dtype=object), "amount": np.array([1.0, 1.0, 1.0]),
         "t": np.array([0.0, 86400.0, 365 * 86400.0]), "hour": np.zeros(3), "weekday": np.zeros(3),
         "individual": np.zeros(3)}
    M = f.transform(X, learn=True)
    assert M[:, 3].tolist() == [1.0, 1.0, 1.0]  # first ever, first ever, a year later (capped)
    assert f.transform({**X, "t": np.array([366 * 86400.0] * 3)}, learn=False)[0, 3] < 0.2


def test_an_odd_payment_is_explained_by_what_is_odd_about_it():
    X = payment_columns(3000, keys=40, seed=7)
    X["individual"][:] = 0.0
    X["hour"][:] = 10.0
    det = PaymentHalfSpaceTrees(n_trees=25, height=8, window_size=300, seed=3, explain_above=0.0)
    det.process_many(X)
    odd = rows(X, 0, 1)
    odd.update(hour=np.array([3.0]), individual=np.array([1.0]), t=X["t"][-1:] + 60)
    s = det.score_many(odd)
    assert set(s.row(0)["top_features"].split(", ")[:2]) == {"hour", "individual"}


def test_scores_and_explanations_do_not_depend_on_batching():
    X = payment_columns(2500, keys=50, seed=8)
    make = lambda: PaymentHalfSpaceTrees(n_trees=10, height=6, window_size=200, seed=1, explain_above=0.85)  # noqa: E731
    whole = make().process_many(X)
    a = make()
    parts = [a.process_many(rows(X, 0, 13)), a.process_many(rows(X, 13, 1400))]
    parts.append(restored(a).process_many(rows(X, 1400, 2500)))
    assert np.array_equal(np.concatenate([p.scores for p in parts]), whole.scores)
    tops = np.concatenate([p.details["top_features"] for p in parts])
    assert tops.tolist() == whole.details["top_features"].tolist() and any(tops)
    assert np.array_equal(in_batches(make(), X, [1, 2, 3, 999]), whole.scores)


def test_many_orgs_in_one_pooled_call_equal_each_org_alone():
    """The paths of every org's rows are found in one call; each org's scores and
    explanations stay exactly its own model's, batch after batch."""
    make = lambda: PaymentHalfSpaceTrees(n_trees=10, height=6, window_size=97, seed=1, explain_above=0.85)  # noqa: E731
    streams = [payment_columns(n, keys=20, seed=s) for n, s in ((900, 1), (40, 2), (1300, 3))]
    alone = pooled_equals_alone(make, streams, [(0, 30), (30, 300), (300, 1300)], ("top_features",))
    assert any(alone[2].details["top_features"]) and alone[2].scores.max() > 0
