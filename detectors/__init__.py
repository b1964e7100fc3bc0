"""Online anomaly detectors (river's shape) and batch-trained ones (scikit-learn).

Every detector follows ``detectors.base.Detector``: ``learn_one`` /
``score_one`` (score in [0, 1], 0 until warmed up) and the batch forms
``learn_many`` / ``score_many`` / ``process_many``, with state that
round-trips through ``state()`` / ``load_state()``.

``MODELS`` names the kinds a ``rules/detectors.yaml`` entry may use.
"""

from detectors.amount import RobustAmount
from detectors.base import Detector, Scores
from detectors.benford import Benford
from detectors.payments import PaymentHalfSpaceTrees, PaymentIsolationForest
from detectors.velocity import Velocity

__all__ = ["DETAILS", "MODELS", "Benford", "Detector", "PaymentHalfSpaceTrees", "PaymentIsolationForest",
           "RobustAmount", "Scores", "Velocity"]

MODELS: dict[str, type[Detector]] = {
    "robust_amount": RobustAmount,
    "half_space_trees": PaymentHalfSpaceTrees,
    "benford": Benford,
    "velocity": Velocity,
    "isolation_forest": PaymentIsolationForest,
}

# The per-row details each kind returns, which alert messages may use.
DETAILS: dict[str, tuple[str, ...]] = {
    "robust_amount": ("usual_amount", "times_usual", "robust_z", "history"),
    "half_space_trees": ("top_features", "hour_feature", "days_since_previous"),
    "isolation_forest": ("top_features", "hour_feature", "days_since_previous"),
    "benford": ("period", "digit", "mad", "expected_mad", "digit_z", "count", "expected_share", "band"),
    "velocity": ("status", "payments", "window_total", "days_since_previous"),
}
