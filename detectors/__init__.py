"""Online anomaly detectors (river) and batch-trained ones (scikit-learn)."""
