"""Garbage collection for a scoring process.

Rule state is a large heap of small, long-lived objects without reference
cycles. Python's collector would scan it again and again (a full collection
over a big state takes hundreds of milliseconds; young collections add up to
a fifth of scoring time). ``FrozenHeap`` moves what survives each batch out of
the collector's way with ``gc.freeze()``, collects young objects less often,
and once in a while unfreezes and collects everything, so that a cycle among
frozen objects is still freed.

>>> with FrozenHeap() as heap:
...     for batch in range(3):
...         pass  # score a batch
...         heap.settle()
"""

from __future__ import annotations

import gc
import time

__all__ = ["FrozenHeap", "SWEEP_SECONDS"]

SWEEP_SECONDS = 600.0
YOUNG_THRESHOLDS = (100_000, 50, 100)


class FrozenHeap:
    """Context manager: freeze survivors after each batch, sweep every ``sweep_seconds``."""

    def __init__(self, sweep_seconds: float = SWEEP_SECONDS):
        self.sweep_seconds = sweep_seconds
        self._thresholds = gc.get_threshold()
        self._swept = time.monotonic()

    def __enter__(self) -> "FrozenHeap":
        self._thresholds = gc.get_threshold()
        gc.set_threshold(*YOUNG_THRESHOLDS)
        gc.freeze()
        self._swept = time.monotonic()
        return self

    def settle(self) -> None:
        """Call between batches: what lives now is long-lived."""
        if time.monotonic() - self._swept >= self.sweep_seconds:
            self.sweep()
        gc.freeze()

    def sweep(self) -> None:
        """A full collection over everything, frozen or not."""
        gc.unfreeze()
        gc.collect()
        self._swept = time.monotonic()

    def __exit__(self, *exc) -> None:
        gc.set_threshold(*self._thresholds)
        gc.unfreeze()
