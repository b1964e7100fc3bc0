"""Payment features and the multivariate detectors' explanations."""

from __future__ import annotations

import numpy as np

from detectors.payments import PaymentHalfSpaceTrees
from tests.detectors.helpers import (end_to_end, in_batches, part_bounds, payment_columns, pooled_equals_alone, restored,
                                     rows)


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


def test_thousands_of_small_orgs_are_scored_in_one_call_as_each_alone():
    """Many orgs with a few rows each per batch: their rows stay inside their models'
    windows and are scored and learned side by side in the pool (detectors.hst.MassPool),
    with models pickled away and back (a state kept on disk) and dropped in between."""
    import pickle

    from detectors.hst import MassPool

    make = lambda: PaymentHalfSpaceTrees(n_trees=10, height=6, window_size=40, seed=1, explain_above=0.8)  # noqa: E731
    streams = [payment_columns(100 + 7 * s % 90, keys=6, seed=s) for s in range(300)]  # more orgs than a chunk holds
    cuts = [(start, start + 9) for start in range(0, 190, 9)]
    alone = [make().process_many(X) for X in streams]
    models = [make() for _ in streams]
    got: list[list] = [[] for _ in streams]
    for step, (start, stop) in enumerate(cuts):
        parts = [rows(X, min(start, len(X["t"])), min(stop, len(X["t"]))) for X in streams]
        bounds = part_bounds(parts)
        pooled = PaymentHalfSpaceTrees.process_pooled(models, end_to_end(parts), bounds)
        for k, (a, b) in enumerate(bounds):
            got[k].append(pooled.part(a, b))
        if step % 5 == 2:  # a third of the models leave for disk and come back as copies
            models[::3] = [pickle.loads(pickle.dumps(m)) for m in models[::3]]
    pool = models[1]._model._pool
    assert isinstance(pool, MassPool) and len(pool.latest) >= 2
    for want, parts in zip(alone, got):
        assert np.array_equal(np.concatenate([p.scores for p in parts]), want.scores)
        assert np.concatenate([p.details["top_features"] for p in parts]).tolist() == want.details["top_features"].tolist()
    assert sum(s.scores.max() > 0.8 for s in alone) > 10 and any(any(s.details["top_features"]) for s in alone)
    in_use = {m._model._slot for m in models if m._model._slot is not None}
    assert len(in_use) == sum(m._model._slot is not None for m in models)  # no two models share a slot
    assert not in_use & set(pool.free)
