"""Half-Space Trees over columns: river's algorithm, scored and learned in batches.

The trees are river's (``river.tree.padded.make_padded_tree``'s draws, with
the same seed and limits — a test checks they match), held as arrays, so a batch is scored and
learned with a few numpy operations per tree level instead of a Python walk
per event and tree. Scoring reads only the reference masses, which change
only when a window of ``window_size`` observations completes; so a batch split
at those points, scored and then learned piece by piece, gives exactly the
scores of river's score-then-learn loop (a test checks this against
``river.anomaly.HalfSpaceTrees``).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> hst = HalfSpaceTrees(features=("x", "y"), n_trees=10, height=6, window_size=100, seed=7)
>>> normal = {"x": rng.normal(0.5, 0.05, 300).clip(0, 1), "y": rng.normal(0.5, 0.05, 300).clip(0, 1)}
>>> scores = hst.process_many(normal).scores
>>> float(scores[:100].max())  # the first window is only learned: neutral
0.0
>>> odd = hst.score_many({"x": np.array([0.5, 0.95]), "y": np.array([0.5, 0.05])}).scores
>>> bool(odd[1] > odd[0] + 0.3)
True

References
----------
Tan, S.C., Ting, K.M. and Liu, T.F. (2011). Fast anomaly detection for
streaming data. IJCAI.
"""

from __future__ import annotations

import random
import weakref

import numpy as np

from detectors.base import Bounds, Columns, Detector, Scores

__all__ = ["HalfSpaceTrees", "MassPool"]

_PADDING = 0.15


def _grow_padded(limits: dict, height: int, node: int, rng: random.Random, index: dict,
                 feature_of: np.ndarray, threshold: np.ndarray) -> None:
    """``river.tree.padded.make_padded_tree``, written into heap-ordered arrays.

    The same random draws in the same order, so the same seed gives river's
    very trees (a test compares them); kept here because importing river
    costs about a second at every start.
    """
    if height == 0:
        return
    on = rng.choices(population=list(limits.keys()), weights=[hi - lo for lo, hi in limits.values()])[0]
    a, b = limits[on]
    at = rng.uniform(a + _PADDING * (b - a), b - _PADDING * (b - a))
    feature_of[node], threshold[node] = index[on], at
    limits[on] = (a, at)
    _grow_padded(limits, height - 1, 2 * node + 1, rng, index, feature_of, threshold)
    limits[on] = (at, b)
    _grow_padded(limits, height - 1, 2 * node + 2, rng, index, feature_of, threshold)
    limits[on] = (a, b)

_TREES: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


class HalfSpaceTrees(Detector):
    """Half-Space Trees with batch learning and scoring.

    Parameters
    ----------
    features
        The feature names, each scaled to ``limits`` (default [0, 1]).
    n_trees, height, window_size, seed
        As in ``river.anomaly.HalfSpaceTrees``.
    limits
        ``{feature: [low, high]}`` for features not in [0, 1].
    """

    def __init__(self, features: tuple[str, ...] = ("x",), n_trees: int = 10, height: int = 8,
                 window_size: int = 250, seed: int | None = 42, limits: dict | None = None):
        self.features = tuple(features)
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        self.limits = limits
        self._feature_of, self._threshold = self._build()
        n_nodes = 2 ** (height + 1) - 1
        # A node's mass is at most one window's rows: a small integer type keeps a
        # model per org affordable (25 trees of height 8 are 12,775 nodes a window).
        self._mass_type = np.int16 if window_size < 2**15 else np.int64
        # The latest window's masses, and the reference window's (none until the first
        # is full, which most small orgs never reach): the model's own arrays, or its
        # slot's in a ``MassPool`` shared by many models.
        self._l_mass = np.zeros((n_trees, n_nodes), dtype=self._mass_type)
        self._r_mass: np.ndarray | None = None
        self._pool: MassPool | None = None
        self._slot: int | None = None  # in the pool
        self._tree_offsets = (np.arange(n_trees) * n_nodes)[None, :, None]  # tree t's nodes in the flat masses
        self._counter = 0
        self._first_window = True  # the reference window is empty until the first one is full

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self._pool is not None:  # its own copies: a pool's slot stays with the pool
            state["_l_mass"] = self._l_mass.copy()
            state["_r_mass"] = None if self._first_window else self._r_mass.copy()
            state["_pool"] = state["_slot"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        state.setdefault("_pool", None)  # pickled before there were pools
        state.setdefault("_slot", None)
        self.__dict__.update(state)

    def _build(self) -> tuple[np.ndarray, np.ndarray]:
        """River's trees for this seed, as (feature index, threshold) per heap-ordered node.
        Models with the same settings share them (they are only read)."""
        limits = tuple(sorted((self.limits or {}).items()))
        cache_key = (self.features, self.n_trees, self.height, self.seed, str(limits))
        if cache_key not in _TREES:
            _TREES[cache_key] = self._grow()
        return _TREES[cache_key]

    def _grow(self) -> tuple[np.ndarray, np.ndarray]:
        rng = random.Random(self.seed)
        bounds = {f: tuple((self.limits or {}).get(f, (0.0, 1.0))) for f in sorted(self.features)}
        n_nodes = 2 ** (self.height + 1) - 1
        feature_of = np.zeros((self.n_trees, n_nodes), dtype=np.int64)
        threshold = np.zeros((self.n_trees, n_nodes))
        index = {f: i for i, f in enumerate(self.features)}
        for t in range(self.n_trees):
            _grow_padded(bounds, self.height, 0, rng, index, feature_of[t], threshold[t])
        return feature_of, threshold

    @property
    def _max_score(self) -> float:
        return self.n_trees * self.window_size * (2 ** (self.height + 1) - 1)

    def _matrix(self, X: Columns) -> np.ndarray:
        return np.column_stack([np.asarray(X[f], dtype=float) for f in self.features])

    def _paths(self, M: np.ndarray) -> np.ndarray:
        """Node index at each depth (0..height) for every tree and row: shape (height + 1, trees, rows)."""
        n_rows = len(M)
        node = np.zeros((self.n_trees, n_rows), dtype=np.int64)
        out = [node]
        trees = np.arange(self.n_trees)[:, None]
        cols = np.arange(n_rows)[None, :]
        for _ in range(self.height):
            go_right = M[cols, self._feature_of[trees, node]] >= self._threshold[trees, node]
            node = 2 * node + 1 + go_right
            out.append(node)
        return np.stack(out)

    def _score_matrix(self, M: np.ndarray) -> np.ndarray:
        if self._first_window or not len(M):
            return np.zeros(len(M))
        return self._score_paths(self._paths(M))

    def _score_paths(self, paths: np.ndarray) -> np.ndarray:
        """Scores of rows given their paths, shape (depth, tree, row)."""
        if self._first_window or not paths.shape[2]:
            return np.zeros(paths.shape[2])
        return self._score_masses(self._r_mass[np.arange(self.n_trees)[None, :, None], paths])

    def _score_masses(self, r: np.ndarray) -> np.ndarray:
        """Scores of rows given the reference masses along their paths, shape (depth, tree, row)."""
        r = r.astype(float)
        # river stops below the first node whose mass is under the size limit
        below = np.cumsum(r < 0.1 * self.window_size, axis=0)
        active = np.concatenate([np.ones((1,) + r.shape[1:], dtype=bool), below[:-1] == 0])
        weights = 2.0 ** np.arange(self.height + 1)
        total = (r * weights[:, None, None] * active).sum(axis=(0, 1))  # whole numbers: exact in any order
        return 1.0 - total / self._max_score

    def _learn_matrix(self, M: np.ndarray) -> None:
        self._learn_paths(self._paths(M))

    def _learn_paths(self, paths: np.ndarray) -> None:
        n_trees, n_nodes = self._l_mass.shape
        flat = (paths + self._tree_offsets).ravel()
        if len(flat) * 8 < n_trees * n_nodes:  # a few rows: counted where they fall, not over every node
            np.add.at(self._l_mass.reshape(-1), flat, self._l_mass.dtype.type(1))  # of the masses' type: numpy's fast path
            return
        np.add(self._l_mass, np.bincount(flat, minlength=n_trees * n_nodes).reshape(n_trees, n_nodes),
               out=self._l_mass, casting="unsafe")  # a node's mass never exceeds a window's rows

    def _pivot(self) -> None:
        if self._r_mass is None:
            self._r_mass = self._l_mass.copy()
        else:
            self._r_mass[...] = self._l_mass  # in place: they may be a pool's slot
        self._l_mass[...] = 0
        self._first_window = False
        self._counter = 0

    # --- batches --------------------------------------------------------------------
    def score_many(self, X: Columns) -> Scores:
        return Scores(self._score_matrix(self._matrix(X)))

    def learn_many(self, X: Columns) -> None:
        self._process(self._matrix(X), score=False)

    def process_many(self, X: Columns) -> Scores:
        return Scores(self._process(self._matrix(X), score=True))

    def process_matrix(self, M: np.ndarray, before_learning=None, learned: np.ndarray | None = None) -> np.ndarray:
        """``process_many`` over a feature matrix (columns in ``features`` order).
        ``before_learning(start, stop, scores)`` is called for each stretch of
        rows scored against the same masses, before they are learned (to explain them).
        ``learned``: the rows as learned, when they differ from the rows as scored
        (scaled online, a row is scored by the scale before it and learned by the
        scale that includes it, as in river's pipelines)."""
        M = np.asarray(M, dtype=float)
        return self._process(M, True, before_learning, M if learned is None else np.asarray(learned, dtype=float))

    def _process(self, M: np.ndarray, score: bool, before_learning=None, learned: np.ndarray | None = None) -> np.ndarray:
        paths = self._paths(M)
        return self.process_paths(paths, score, before_learning, paths if learned is None else self._paths(learned))

    def process_paths(self, paths: np.ndarray, score: bool = True, before_learning=None,
                      learned: np.ndarray | None = None) -> np.ndarray:
        """``process_matrix`` over the rows' paths (``_paths``: models with the same
        settings share their trees, so one call finds the paths of many models' rows)."""
        learned = paths if learned is None else learned
        n = paths.shape[2]
        scores = np.zeros(n)
        start = 0
        while start < n:
            # up to the end of the current window: scores there read the same masses
            stop = min(n, start + self.window_size - self._counter)
            if score:
                scores[start:stop] = self._score_paths(paths[:, :, start:stop])
                if before_learning is not None:
                    before_learning(start, stop, scores[start:stop])
            self._learn_paths(learned[:, :, start:stop])
            self._counter += stop - start
            if self._counter == self.window_size:
                self._pivot()
            start = stop
        return scores

    # --- state ------------------------------------------------------------------------
    def state(self) -> dict:
        return {"l_mass": self._l_mass.tolist(), "r_mass": None if self._first_window else self._r_mass.tolist(),
                "counter": self._counter, "first_window": self._first_window}

    def load_state(self, state: dict) -> None:
        self._l_mass[...] = np.array(state["l_mass"], dtype=self._mass_type)
        held = None if state["first_window"] else state["r_mass"]  # a reference of zeros was kept before
        if held is None:
            if self._r_mass is not None:
                self._r_mass[...] = 0
        elif self._r_mass is None:
            self._r_mass = np.array(held, dtype=self._mass_type)
        else:
            self._r_mass[...] = np.array(held, dtype=self._mass_type)
        self._counter = state["counter"]
        self._first_window = state["first_window"]


class MassPool:
    """The masses of many models of one shape side by side, in chunks of ``CHUNK``
    models, so that one numpy call scores and learns the rows of thousands of
    models (one per org) instead of a call per model: ``process_inside``.

    A model joins the pool when it is first pooled: its masses move into a
    slot, which it then reads and writes through views, as it did its own. A
    model that is dropped frees its slot; a pickled model takes a copy along.
    The latest windows and the reference windows are chunks apart: a reference
    slot is not written until its model's first window is full (most small
    orgs' never is), and pages never written take no memory.
    """

    CHUNK = 256

    def __init__(self, shape: tuple[int, int], dtype) -> None:
        self.shape, self.dtype = shape, dtype
        self.latest: list[np.ndarray] = []  # chunks of (CHUNK, trees, nodes)
        self.reference: list[np.ndarray] = []
        self.free: list[int] = []  # slots given back
        self.unused = 0  # slots from here on were never given out

    def adopt(self, model: HalfSpaceTrees) -> None:
        if model._pool is self:
            return
        if self.free:
            slot, used = self.free.pop(), True
        else:
            if self.unused == len(self.latest) * self.CHUNK:
                self.latest.append(np.zeros((self.CHUNK, *self.shape), dtype=self.dtype))
                self.reference.append(np.zeros((self.CHUNK, *self.shape), dtype=self.dtype))
            slot, used = self.unused, False
            self.unused += 1
        latest = self.latest[slot // self.CHUNK][slot % self.CHUNK]
        reference = self.reference[slot // self.CHUNK][slot % self.CHUNK]
        latest[...] = model._l_mass
        if model._r_mass is not None:
            reference[...] = model._r_mass
        elif used:
            reference[...] = 0  # another model's once
        model._l_mass, model._r_mass, model._slot, model._pool = latest, reference, slot, self
        weakref.finalize(model, self.free.append, slot)

    @staticmethod
    def process_inside(models: list[HalfSpaceTrees], paths: np.ndarray, bounds: Bounds,
                       scores: np.ndarray) -> list[int]:
        """Score then learn the rows of every model whose rows (``bounds[k]`` of
        ``paths``) end before its window does: their scores go into ``scores``.
        Returns the models left to ``process_paths`` (rows that complete a window)."""
        first = models[0]
        if any(m.window_size != first.window_size or m._l_mass.shape != first._l_mass.shape for m in models):
            return [k for k, (a, b) in enumerate(bounds) if b > a]
        inside, left = [], []
        for k, (model, (a, b)) in enumerate(zip(models, bounds)):
            if b > a:
                (inside if model._counter + (b - a) < model.window_size else left).append(k)
        if not inside:
            return left
        kind = (first._l_mass.shape, first._l_mass.dtype)
        pool = _POOLS.get(kind)
        if pool is None:
            pool = _POOLS[kind] = MassPool(*kind)
        starts, lengths, slots, scored = [], [], [], []
        for k in inside:
            model = models[k]
            if model._pool is not pool:  # joined once; the test here spares a call per org and batch
                pool.adopt(model)
            a, b = bounds[k]
            starts.append(a)
            lengths.append(b - a)
            slots.append(model._slot)
            scored.append(not model._first_window)
            model._counter += b - a
        lengths_array = np.array(lengths)
        ends = np.cumsum(lengths_array)
        rows = np.arange(ends[-1]) + np.repeat(np.array(starts) - (ends - lengths_array), lengths_array)
        row_slot = np.repeat(np.array(slots), lengths_array)
        row_scored = np.repeat(np.array(scored), lengths_array)
        along = paths[:, :, rows]
        trees = np.arange(first.n_trees)[None, :, None]
        chunk_of = row_slot // MassPool.CHUNK
        for c in np.unique(chunk_of).tolist():
            mine = chunk_of == c
            hit = mine & row_scored
            if hit.any():
                own = (row_slot[hit] % MassPool.CHUNK)[None, None, :]
                scores[rows[hit]] = first._score_masses(pool.reference[c][own, trees, along[:, :, hit]])
            latest = pool.latest[c]
            n_trees, n_nodes = latest.shape[1:]
            within = (row_slot[mine] % MassPool.CHUNK)[None, None, :]
            flat = (within * n_trees + trees) * n_nodes + along[:, :, mine]
            np.add.at(latest.reshape(-1), flat.ravel(), latest.dtype.type(1))  # of the masses' type: numpy's fast path
        return left


_POOLS: dict[tuple, MassPool] = {}
