"""HalfSpaceTrees over columns: river's trees, river's scores, any batching."""

from __future__ import annotations

import random

import numpy as np
import pytest
from river.anomaly import HalfSpaceTrees as RiverHST
from river.tree.padded import make_padded_tree

from detectors.hst import HalfSpaceTrees
from tests.detectors.helpers import restored


def river_arrays(features, n_trees, height, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n_trees):
        tree = make_padded_tree(limits={f: (0.0, 1.0) for f in sorted(features)}, height=height, padding=0.15,
                                rng=rng, r_mass=0, l_mass=0)
        nodes, todo = {}, [(tree, 0)]
        while todo:
            node, i = todo.pop()
            if hasattr(node, "feature"):
                nodes[i] = (node.feature, node.threshold)
                todo += [(node.children[0], 2 * i + 1), (node.children[1], 2 * i + 2)]
        out.append(nodes)
    return out


def test_trees_are_rivers_for_the_same_seed():
    features = ("amount", "hour", "payee")
    ours = HalfSpaceTrees(features, n_trees=6, height=5, seed=11)
    for t, nodes in enumerate(river_arrays(features, 6, 5, 11)):
        assert {i: (features[ours._feature_of[t, i]], ours._threshold[t, i]) for i in nodes} == nodes


def stream(n, seed):
    rng = np.random.default_rng(seed)
    X = {"a": rng.beta(2, 5, n), "b": rng.random(n), "c": (rng.random(n) > 0.9).astype(float)}
    X["a"][rng.random(n) < 0.01] = 0.99  # a few outliers
    return X


@pytest.mark.parametrize("sizes", [[1] * 40 + [7, 300], [97], [1000, 1, 2]])
def test_scores_equal_rivers_score_then_learn_loop(sizes):
    X = stream(2500, 4)
    river = RiverHST(n_trees=8, height=6, window_size=97, seed=5)
    expected = []
    for i in range(2500):
        x = {k: float(v[i]) for k, v in X.items()}
        expected.append(river.score_one(x))
        river.learn_one(x)
    ours = HalfSpaceTrees(("a", "b", "c"), n_trees=8, height=6, window_size=97, seed=5)
    got, start = [], 0
    while start < 2500:
        size = sizes[len(got) % len(sizes)]
        got.append(ours.process_many({k: v[start:start + size] for k, v in X.items()}).scores)
        start += size
    assert np.array_equal(np.concatenate(got), np.array(expected))
    assert max(expected) > 0.5  # the outliers are scored, not only zeros


def test_cold_start_is_neutral_and_state_round_trips():
    X = stream(1000, 6)
    a = HalfSpaceTrees(("a", "b", "c"), n_trees=5, height=4, window_size=200, seed=1)
    head = a.process_many({k: v[:600] for k, v in X.items()}).scores
    assert not head[:200].any() and head[200:].any()
    b = HalfSpaceTrees(("a", "b", "c"), n_trees=5, height=4, window_size=200, seed=1)
    expected = b.process_many(X).scores
    tail = restored(a).process_many({k: v[600:] for k, v in X.items()}).scores
    assert np.array_equal(np.concatenate([head, tail]), expected)


def test_settings_are_listed_under_their_own_names():
    hst = HalfSpaceTrees(("x",), n_trees=3, height=2, window_size=10, seed=9)
    assert hst.params() == {"features": ("x",), "n_trees": 3, "height": 2, "window_size": 10, "seed": 9, "limits": None}
    assert repr(hst.clone()) == repr(hst)
