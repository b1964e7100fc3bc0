"""A faust worker that finishes the work in hand when it is told to stop.

    worker = GracefulWorker(app, loglevel="info", quiet=True)   # app from monitor.runners.worker.create_app
    worker.execute_from_commandline()                           # exits 0, or 1 if the last checkpoint failed

SIGTERM is how systemd, Kubernetes and a rolling upgrade stop a process, and
SIGINT is Ctrl-C. On either, the worker takes no more batches in, scores the
one in hand and writes its tickets, commits alerts, dead letters, state and
offsets in one last transaction (``app.riskwatch_finish``), and only then
lets faust stop: the consumer leaves the group, so its partitions move on at
once instead of after the session timeout. The last checkpoint is given
``finish_within`` seconds (20 by default, well inside Kubernetes' 30-second
grace period, with room for faust's own stop). If it cannot commit in that
time, it is aborted, the log says how many events the partitions' next owner
scores again, and the exit code is 1. A second signal stops at once (exit
128 + the signal's number): the open transaction is aborted by the broker or
fenced by the next owner, so nothing is committed twice or half.

A worker that crashes (fenced: its partitions belong to another worker now)
stops too, and ``crash`` makes sure it ends: faust's stop has been seen to
wait for good on a consumer thread caught in a rebalance that began while it
stopped, leaving a process that does nothing and never exits. After
``CRASH_EXIT_SECONDS`` it exits with ``EXIT_UNFINISHED``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

import faust

__all__ = ["CRASH_EXIT_SECONDS", "EXIT_UNFINISHED", "FINISH_WITHIN_SECONDS", "GracefulWorker", "crash"]

log = logging.getLogger("riskwatch.worker")
FINISH_WITHIN_SECONDS = 20.0
EXIT_UNFINISHED = 1
CRASH_EXIT_SECONDS = 10.0


class GracefulWorker(faust.Worker):
    """``faust.Worker`` whose SIGTERM and SIGINT first commit the work in hand."""

    def __init__(self, app: faust.App, *args, finish_within: float = FINISH_WITHIN_SECONDS, **kwargs):
        super().__init__(app, *args, **kwargs)
        self.finish_within = finish_within
        self.unfinished = False  # the last checkpoint was not committed: exit non-zero
        self._stop_signal: signal.Signals | None = None

    def _on_sigterm(self) -> None:
        self._on_stop_signal(signal.SIGTERM)

    def _on_sigint(self) -> None:
        self._on_stop_signal(signal.SIGINT)

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        if self._stop_signal is not None:
            log.warning("%s again: stopping at once; what was not committed is scored again by the partitions' "
                        "next owner", sig.name)
            sys.stderr.flush()
            os._exit(128 + sig.value)
        self._stop_signal = sig
        log.warning("%s: finishing the batch in hand and committing it (within %.0f s)", sig.name, self.finish_within)
        self.add_future(self._finish_then_stop(sig))

    async def _finish_then_stop(self, sig: signal.Signals) -> None:
        finish = getattr(self.app, "riskwatch_finish", None)
        if finish is not None:
            done = await finish(self.finish_within)
            if done.committed:
                log.warning("%s: the last checkpoint committed %d events in %.2f s; leaving the group", sig.name,
                            done.events, done.seconds)
            else:
                self.unfinished = True
                log.error("%s: the last checkpoint was aborted after %.2f s; %d events scored since the last "
                          "committed checkpoint will be scored again by the partitions' next owner", sig.name,
                          done.seconds, done.events)
        if sig == signal.SIGINT:
            super()._on_sigint()
        else:
            super()._on_sigterm()

    def stop_and_shutdown(self) -> None:
        super().stop_and_shutdown()
        if self.unfinished:
            raise SystemExit(EXIT_UNFINISHED)


async def crash(app: Any, reason: BaseException, exit_within: float = CRASH_EXIT_SECONDS) -> None:
    """``app.crash(reason)``, and exit the process ``exit_within`` seconds later if it is still there."""
    def exit_stuck() -> None:
        log.error("still stopping %g s after the crash (%s): exiting", exit_within, reason)
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stderr.flush()
        os._exit(EXIT_UNFINISHED)

    timer = threading.Timer(exit_within, exit_stuck)
    timer.daemon = True  # a process that ends by itself does not wait for it
    timer.start()
    await app.crash(reason)
