"""An IsolationForest as plain arrays: scored over a whole batch, stored without pickle.

scikit-learn fits the forest (``riskwatch detectors train``); ``FlatForest``
then copies its trees into complete binary trees of the forest's depth — a
leaf above the bottom becomes a pass-through node (threshold +inf, so every
row goes left) whose bottom descendants carry its path length. Scoring walks
every tree for every row together, one ``np.take`` step per level, and
applies scikit-learn's formula ``2 ** (-mean path length / c(max_samples))``,
a path ending with the average path length of the samples left in its leaf.
The scores equal ``-forest.score_samples(X)`` (a test checks it).

Why not keep the scikit-learn object: scoring then needs scikit-learn
imported (about a second at every start) and its per-tree overhead dominates
micro-batches; and the arrays are stored as ``.npz`` loaded with
``allow_pickle=False`` — numbers only, nothing in the file can run.

Examples
--------
>>> import numpy as np
>>> from sklearn.ensemble import IsolationForest
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(500, 3))
>>> forest = IsolationForest(n_estimators=50, random_state=0).fit(X)
>>> flat = FlatForest.from_sklearn(forest)
>>> bool(np.allclose(flat.score(X), -forest.score_samples(X)))
True
"""

from __future__ import annotations

import numpy as np

__all__ = ["FlatForest", "average_path_length"]


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): the average path length of an unsuccessful search in a BST of n items."""
    n = np.asarray(n, dtype=float)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class FlatForest:
    """Complete binary trees (trees x nodes): split feature and threshold per inner
    node, path length per bottom node, and the normalising denominator."""

    def __init__(self, feature: np.ndarray, threshold: np.ndarray, leaf_length: np.ndarray, denominator: float,
                 n_features: int):
        self.feature = np.asarray(feature, dtype=np.int64)
        self.threshold = np.asarray(threshold, dtype=float)
        self.leaf_length = np.asarray(leaf_length, dtype=float)
        self.denominator = float(denominator)
        self.n_features = int(n_features)
        trees, inner = self.feature.shape
        self.depth = int(np.log2(inner + 1))
        if (inner + 1 != 2 ** self.depth or self.threshold.shape != (trees, inner)
                or self.leaf_length.shape != (trees, inner + 1)):
            raise ValueError("inconsistent forest arrays")
        if trees and (self.feature.min() < 0 or self.feature.max() >= self.n_features):
            raise ValueError("a split feature is out of range")
        if not (np.isfinite(self.leaf_length).all() and np.isfinite(self.denominator)):
            raise ValueError("path lengths must be finite")
        # flat offsets, so each level is one np.take per array
        self._inner_base = (np.arange(trees) * inner)[:, None]
        self._leaf_base = (np.arange(trees) * (inner + 1))[:, None]

    @classmethod
    def from_sklearn(cls, forest) -> FlatForest:
        estimators = forest.estimators_
        depth = max(1, max(e.tree_.max_depth for e in estimators))
        inner, bottom = 2 ** depth - 1, 2 ** depth
        feature = np.zeros((len(estimators), inner), dtype=np.int64)
        threshold = np.full((len(estimators), inner), np.inf)
        leaf_length = np.zeros((len(estimators), bottom))
        for t, (est, features) in enumerate(zip(estimators, forest.estimators_features_)):
            tree = est.tree_
            lengths = tree.compute_node_depths() - 1.0 + average_path_length(tree.n_node_samples)
            todo = [(0, 0, 0)]  # (sklearn node, complete-tree index, level)
            while todo:
                node, index, level = todo.pop()
                if tree.children_left[node] == -1:  # a leaf: every bottom node below it carries its length
                    first = index
                    for _ in range(depth - level):
                        first = 2 * first + 1
                    span = 2 ** (depth - level)
                    leaf_length[t, first - inner:first - inner + span] = lengths[node]
                    continue
                feature[t, index] = np.asarray(features)[tree.feature[node]]
                threshold[t, index] = tree.threshold[node]
                todo += [(tree.children_left[node], 2 * index + 1, level + 1),
                         (tree.children_right[node], 2 * index + 2, level + 1)]
        denominator = len(estimators) * average_path_length(np.array([forest._max_samples]))[0]
        return cls(feature, threshold, leaf_length, denominator, forest.n_features_in_)

    def score(self, X: np.ndarray) -> np.ndarray:
        """Anomaly scores in (0, 1], equal to ``-forest.score_samples(X)``."""
        n = len(X)
        if not n:
            return np.zeros(0)
        if self.denominator == 0:
            return np.ones(n)
        # scikit-learn's trees compare float32 inputs with float64 thresholds
        columns = np.ascontiguousarray(np.asarray(X, dtype=np.float32).astype(float).T).ravel()
        rows = np.arange(n, dtype=np.int32)[None, :]
        node = np.zeros((len(self.feature), n), dtype=np.int32)  # int32: half the memory traffic
        feature_offset = (self.feature * n).astype(np.int32).ravel()  # where each split's column starts
        threshold = self.threshold.ravel()
        base = self._inner_base.astype(np.int32)
        flat = np.empty_like(node)
        for _ in range(self.depth):
            np.add(node, base, out=flat)
            x = np.take(columns, np.take(feature_offset, flat) + rows)
            node *= 2
            node += 1
            node += x > np.take(threshold, flat)
        inner = self.feature.shape[1]
        depths = np.take(self.leaf_length.ravel(), node - inner + self._leaf_base.astype(np.int32)).sum(axis=0)
        return 2.0 ** (-depths / self.denominator)

    def arrays(self) -> dict[str, np.ndarray]:
        """What a model file stores."""
        return {"feature": self.feature, "threshold": self.threshold, "leaf_length": self.leaf_length,
                "denominator": np.array(self.denominator), "n_features": np.array(self.n_features)}
