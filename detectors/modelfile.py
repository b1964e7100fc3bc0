"""Saving and loading trained models, safely: plain arrays, never pickle.

A model file may come from anywhere an analyst copies it from, so loading
must not run code. The forest is stored as the arrays of
``detectors.iforest.FlatForest`` in a NumPy ``.npz`` and read with
``allow_pickle=False`` (numbers and one JSON string, nothing executable);
on load every array's name, type and shape is checked, split features and
node indices are range-checked, and the features must be the ones this
version computes.

    save_model(path, forest, trained_on=1234)   # forest: a fitted sklearn IsolationForest
    flat, meta = load_model(path)                # ModelFileError names the file and the problem
"""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from detectors.iforest import FlatForest
from detectors.payments import FEATURES

__all__ = ["FORMAT", "ModelFileError", "load_model", "save_model", "train_isolation_forest"]

FORMAT = "riskwatch.payment-iforest/1"
_ARRAYS = {"feature": np.integer, "threshold": np.floating, "leaf_length": np.floating,
           "denominator": np.floating, "n_features": np.integer, "meta": np.str_}


class ModelFileError(Exception):
    """A model file that cannot be used; the message names the file."""


def train_isolation_forest(matrix, n_estimators: int = 100, contamination: Any = "auto", seed: int = 42):
    """Fit a scikit-learn forest on a history's feature matrix (``detectors.payments.training_matrix``)."""
    from sklearn.ensemble import IsolationForest

    return IsolationForest(n_estimators=n_estimators, contamination=contamination, random_state=seed).fit(matrix)


def save_model(path: Path, forest: Any, trained_on: int, source: str = "") -> None:
    """Store a fitted IsolationForest as arrays (``.npz``)."""
    meta = {"format": FORMAT, "features": list(FEATURES), "trained_on": trained_on, "source": source,
            "trees": len(forest.estimators_),
            "trained_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # a file object: np.savez would otherwise append ".npz" to other names
        np.savez_compressed(f, meta=np.array(json.dumps(meta, ensure_ascii=False)), **FlatForest.from_sklearn(forest).arrays())


def load_model(path: Path) -> tuple[FlatForest, dict]:
    """Load and validate a payment forest; returns (forest, meta)."""
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file (train one with `riskwatch detectors train`)")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = set(data.files)
            if names != set(_ARRAYS):
                raise ModelFileError(f"{path}: expected arrays {sorted(_ARRAYS)}, found {sorted(names)}")
            arrays = {name: data[name] for name in _ARRAYS}
    except ModelFileError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        # ValueError is what allow_pickle=False raises for an object array
        raise ModelFileError(f"{path}: not a model file ({err})") from err
    for name, kind in _ARRAYS.items():
        if not np.issubdtype(arrays[name].dtype, kind):
            raise ModelFileError(f"{path}: array '{name}' has type {arrays[name].dtype}")
    try:
        meta = json.loads(str(arrays["meta"]))
    except ValueError as err:
        raise ModelFileError(f"{path}: unreadable metadata ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: format {meta.get('format') if isinstance(meta, dict) else None!r}, expected {FORMAT!r}")
    if list(meta.get("features", [])) != list(FEATURES) or int(arrays["n_features"]) != len(FEATURES):
        raise ModelFileError(f"{path}: trained on features {meta.get('features')}, this version uses {list(FEATURES)}")
    try:
        forest = FlatForest(arrays["feature"], arrays["threshold"], arrays["leaf_length"],
                            float(arrays["denominator"]), int(arrays["n_features"]))
    except ValueError as err:
        raise ModelFileError(f"{path}: {err}") from err
    return forest, meta
