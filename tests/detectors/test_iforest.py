"""The flattened IsolationForest equals scikit-learn's; model files load safely or not at all."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from detectors.iforest import FlatForest
from detectors.modelfile import ModelFileError, load_model, save_model
from detectors.payments import FEATURES, PaymentIsolationForest
from tests.detectors.helpers import end_to_end, part_bounds, payment_columns, rows


def data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, len(FEATURES)))
    X[:, 4] = X[:, 4] > 0.9
    X[rng.random(n) < 0.01, 0] = 0.99
    return X


@pytest.mark.parametrize("settings", [{}, {"max_features": 0.6}, {"max_samples": 37}, {"n_estimators": 7}])
def test_flat_scores_equal_score_samples(settings):
    X = data()
    forest = IsolationForest(random_state=4, **settings).fit(X[:1000])
    flat = FlatForest.from_sklearn(forest)
    assert np.allclose(flat.score(X), -forest.score_samples(X), rtol=0, atol=1e-12)
    assert flat.score(X[:0]).shape == (0,)


@pytest.fixture()
def model_file(tmp_path):
    forest = IsolationForest(n_estimators=20, random_state=0).fit(data(500))
    path = tmp_path / "models" / "forest.npz"
    save_model(path, forest, trained_on=500, source="history.jsonl")
    return path, forest


def test_a_saved_model_loads_and_scores_the_same(model_file):
    path, forest = model_file
    flat, meta = load_model(path)
    assert meta["features"] == list(FEATURES) and meta["trained_on"] == 500 and meta["trees"] == 20
    X = data(200, seed=9)
    assert np.allclose(flat.score(X), -forest.score_samples(X), rtol=0, atol=1e-12)


def test_a_pickle_inside_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.npz"
    with open(path, "wb") as f:
        np.savez(f, feature=np.array([Payload()], dtype=object))
    with pytest.raises(ModelFileError, match="evil.npz"):
        load_model(path)
    assert not marker.exists()


def rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as data_:
        arrays = {k: data_[k] for k in data_.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("change, message", [
    ({"meta": np.array(json.dumps({"format": "riskwatch.payment-iforest/1", "features": ["amount"]}))}, "trained on features"),
    ({"meta": np.array(json.dumps({"format": "other/9"}))}, "format 'other/9'"),
    ({"extra": np.zeros(3)}, "expected arrays"),
    ({"leaf_length": None}, "expected arrays"),
    ({"feature": np.full((20, 255), 99)}, "inconsistent forest arrays|out of range"),
    ({"threshold": np.array(["a"])}, "array 'threshold' has type"),
])
def test_tampered_files_are_refused_with_the_file_named(model_file, change, message):
    path, _ = model_file
    rewrite(path, **change)
    with pytest.raises(ModelFileError, match=message) as err:
        load_model(path)
    assert str(path) in str(err.value)


def test_not_a_model_file(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"PK\x03\x04 nonsense")
    with pytest.raises(ModelFileError, match="not a model file"):
        load_model(tmp_path / "x.npz")
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "missing.npz")


def test_pooled_scoring_equals_one_org_at_a_time(model_file):
    path, _ = model_file
    flat, _ = load_model(path)
    X = payment_columns(900, keys=30, seed=2)
    parts = [rows(X, 0, 300), rows(X, 300, 650), rows(X, 650, 900)]
    one_by_one = [PaymentIsolationForest(flat, explain_above=0.55).process_many(p) for p in parts]
    bounds = part_bounds(parts)
    models = [PaymentIsolationForest(flat, explain_above=0.55) for _ in parts]
    whole = PaymentIsolationForest.process_pooled(models, end_to_end(parts), bounds)
    pooled = [whole.part(a, b) for a, b in bounds]
    for a, b in zip(one_by_one, pooled):
        assert np.array_equal(a.scores, b.scores) and a.details["top_features"].tolist() == b.details["top_features"].tolist()
    assert any(s.details["top_features"].any() for s in pooled)  # something was explained
