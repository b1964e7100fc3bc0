"""Evaluation sees what a live detector sees: no look-ahead."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.analyst.evaluation import evaluate_features, feature_scores, metrics_of, online_minmax


def features(n: int = 1500, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    matrix = np.column_stack([rng.lognormal(8, 1, n), rng.integers(8, 19, n).astype(float), rng.random(n)])
    labels = np.zeros(n, dtype=int)
    odd = rng.choice(np.arange(300, n), 15, replace=False)
    matrix[odd, 0] *= 40
    labels[odd] = 1
    return matrix, labels


def test_half_space_trees_score_as_rivers_scaler_and_trees_scored_before_learning():
    from river import anomaly, preprocessing

    matrix, _ = features()
    names = ["amount", "hour", "share"]
    ours, _ = feature_scores(matrix, names, seed=42)
    window = min(500, max(10, len(matrix) // 10))
    pipeline = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(n_trees=25, height=8, window_size=window, seed=42)
    expected = []
    for row in matrix:
        x = dict(zip(names, row.tolist()))
        expected.append(pipeline.score_one(x))
        pipeline.learn_one(x)
    np.testing.assert_allclose(ours["half_space_trees"], expected, rtol=0, atol=1e-12)


def test_shuffling_the_future_does_not_change_past_scores():
    matrix, _ = features()
    past = 900
    rng = np.random.default_rng(0)
    shuffled = matrix.copy()
    shuffled[past:] = matrix[past + rng.permutation(len(matrix) - past)]
    shuffled[-1, 0] = matrix[:, 0].max() * 1000  # a future extreme: a whole-file scale would move every score
    before, cut = feature_scores(matrix, ["a", "b", "c"])
    after, _ = feature_scores(shuffled, ["a", "b", "c"])
    for model in before:
        np.testing.assert_array_equal(before[model][:past], after[model][:past])
    assert np.isnan(before["isolation_forest"][:cut]).all() and not np.isnan(before["isolation_forest"][cut:]).any()


def test_the_forest_is_judged_only_after_its_fitting_prefix():
    matrix, labels = features()
    results = {r.detector: r for r in evaluate_features(matrix, labels, ["a", "b", "c"])}
    cut = int(len(matrix) * 0.2)
    assert results["isolation_forest"].events == len(matrix) - cut
    assert results["isolation_forest"].positives == int(labels[cut:].sum())
    assert results["half_space_trees"].events == len(matrix)
    scores, _ = feature_scores(matrix, ["a", "b", "c"])
    assert results["half_space_trees"].roc_auc == pytest.approx(metrics_of(labels, scores["half_space_trees"])[0])


def test_online_scaling_reads_only_earlier_rows():
    scored, learned = online_minmax(np.array([[1.0, 5.0], [3.0, np.nan], [2.0, 7.0], [5.0, 6.0]]))
    assert scored.tolist() == [[0.0, 0.0], [0.0, 0.0], [0.5, 0.0], [2.0, 0.5]]
    assert learned.tolist() == [[0.0, 0.0], [1.0, 0.0], [0.5, 1.0], [1.0, 0.5]]
