"""Random payment columns and checks every detector must pass."""

from __future__ import annotations

import msgspec
import numpy as np

from detectors.base import rows_of


def payment_columns(n: int = 2000, keys: int = 20, seed: int = 0, days: float = 120.0) -> dict[str, np.ndarray]:
    """Payments to ``keys`` counterparties, each around its own usual amount, in time order."""
    rng = np.random.default_rng(seed)
    who = rng.integers(0, keys, n)
    usual = 10 ** rng.uniform(3, 6, keys)
    key = np.empty(n, dtype=object)
    key[:] = [("ORG1", f"S{k}") for k in who]
    return {
        "key": key,
        "amount": np.round(usual[who] * rng.lognormal(0, 0.2, n), 2),
        "t": np.sort(rng.uniform(0, days * 86400, n)) + 1.77e9,
        "hour": rng.integers(8, 19, n).astype(float),
        "weekday": rng.integers(0, 5, n).astype(float),
        "individual": (rng.random(n) < 0.1).astype(float),
    }


rows = rows_of  # the tests' short name


def part_bounds(parts: list[dict]) -> list[tuple[int, int]]:
    """Where each part's rows lie when every part's rows are put end to end: a pooled call's bounds.

    >>> part_bounds([{"t": np.zeros(2)}, {"t": np.zeros(0)}, {"t": np.zeros(3)}])
    [(0, 2), (2, 2), (2, 5)]
    """
    bounds, end = [], 0
    for X in parts:
        start, end = end, end + len(X["t"])
        bounds.append((start, end))
    return bounds


def end_to_end(parts: list[dict]) -> dict:
    """Several orgs' columns put end to end: a pooled call's input."""
    return {name: np.concatenate([X[name] for X in parts]) for name in parts[0]}


def in_batches(detector, X: dict, sizes: list[int]) -> np.ndarray:
    """process_many over consecutive batches of the given sizes (the rest in one)."""
    n = len(X["amount"])
    out, start = [], 0
    for size in sizes + [n]:
        if start >= n:
            break
        stop = min(n, start + size)
        out.append(detector.process_many(rows(X, start, stop)).scores)
        start = stop
    return np.concatenate(out)


def one_at_a_time(detector, X: dict) -> np.ndarray:
    """River's loop: score_one, then learn_one, per event."""
    out = []
    for i in range(len(X["amount"])):
        x = {k: (v[i] if k == "key" else float(v[i])) for k, v in X.items()}
        out.append(detector.score_one(x))
        detector.learn_one(x)
    return np.array(out)


def restored(detector):
    """A fresh clone loaded with the detector's state, through MessagePack as the stores keep it."""
    clone = detector.clone()
    clone.load_state(msgspec.msgpack.decode(msgspec.msgpack.encode(detector.state())))
    return clone


def pooled_equals_alone(make, streams: list[dict], cuts: list[tuple[int, int]], details: tuple[str, ...]) -> list:
    """Feed several orgs' streams, cut into the same batches, to one ``process_pooled``
    call per batch (one fresh model per org), and check each org's scores and
    ``details`` equal those of a model that saw only that org's stream in one go.
    Returns the lone runs' Scores."""
    alone = [make().process_many(X) for X in streams]
    models = [make() for _ in streams]
    got: list[list] = [[] for _ in streams]
    for start, stop in cuts:
        parts = [rows(X, min(start, len(X["t"])), min(stop, len(X["t"]))) for X in streams]
        bounds = part_bounds(parts)
        pooled = type(models[0]).process_pooled(models, end_to_end(parts), bounds)
        for k, (a, b) in enumerate(bounds):
            got[k].append(pooled.part(a, b))
    for want, parts in zip(alone, got):
        assert np.array_equal(np.concatenate([p.scores for p in parts]), want.scores)
        for name in details:
            pooled = np.concatenate([p.details[name] for p in parts])
            assert pooled.tolist() == want.details[name].tolist() or np.array_equal(pooled, want.details[name],
                                                                                    equal_nan=True), name
    return alone
