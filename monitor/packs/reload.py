"""Hot reload of the rules folder, between batches.

A watcher on the folder (watchdog) and SIGHUP only *ask* for a reload; the
runner calls ``poll()`` between two batches, so a reload never falls inside a
batch: no event is lost or scored twice. ``poll()`` lints the folder again:

- valid and different: it returns the new pack; the runner swaps it in and
  keeps the state of every rule whose definition (and the parameters and
  lists it reads) did not change (``monitor.core.rules.changed_rules``);
- invalid: each problem is logged as ``file:line:col rule: message``, the
  rejection is counted in ``riskwatch_rule_pack_reloads_total{result="rejected"}``
  and the running pack keeps scoring.

    reloader = PackReloader(rules_dir, pack, metrics)
    reloader.start()                    # watch the folder, and reload on SIGHUP
    ...
    new_pack = reloader.poll()          # between batches: a RulePack or None

With ``snapshots=True`` each reload lints a private copy of the folder and
keeps it (``reloader.snapshot``): scoring processes that cannot be handed a
compiled pack load that copy, and so score exactly the files that were
checked, whatever the analyst saves next. The copies go at ``stop()``.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from monitor.metrics import Metrics
from monitor.packs.kept import prepare_screening
from monitor.packs.rulefiles import lint
from monitor.core.rules import RulePack

__all__ = ["PackReloader"]

log = logging.getLogger("riskwatch.reload")


class PackReloader:
    """Asks for reloads (file changes, SIGHUP, ``request()``) and performs them on ``poll()``."""

    def __init__(self, rules_dir: Path | str, pack: RulePack, metrics: Metrics | None = None,
                 debounce: float = 0.3, today: dt.date | None = None,
                 accept: Callable[[RulePack], str | None] | None = None, snapshots: bool = False,
                 narrow: Callable[[RulePack], RulePack] | None = None):
        self.rules_dir = Path(rules_dir)
        self.narrow = narrow  # what the runner scores of a folder's pack (e.g. rules_alone); a module-level function
        self.snapshots = snapshots
        self.snapshot: Path | None = None  # the copy the last accepted pack was read from (snapshots=True)
        self.snapshot_day: dt.date | None = None  # ... and the day it was checked for
        self._copies: list[Path] = []
        self.accept = accept  # a runner's own condition on a pack: returns why not, or None
        self.pack = pack
        self.metrics = metrics
        self.debounce = debounce  # an editor saves in several steps: wait for them to settle
        self.today = today
        self.versions: list[str] = [pack.version]  # every version that has scored, in order
        self.rejected = 0
        self._asked_at: float | None = None
        self._lock = threading.Lock()
        self._observer = None

    # --- asking ---------------------------------------------------------------
    def request(self, *_args) -> None:
        """Ask for a reload at the next poll (also a signal handler)."""
        with self._lock:
            self._asked_at = time.monotonic()

    @property
    def pending(self) -> bool:
        return self._asked_at is not None

    def start(self, watch: bool = True, sighup: bool = True) -> None:
        if watch:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer

            reloader = self

            class _Changed(FileSystemEventHandler):
                def on_any_event(self, event) -> None:
                    if event.event_type in ("created", "modified", "deleted", "moved", "closed"):
                        reloader.request()

            self._observer = Observer()
            self._observer.schedule(_Changed(), str(self.rules_dir), recursive=True)
            self._observer.daemon = True
            self._observer.start()
        if sighup and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, self.request)

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        for copy in self._copies:
            shutil.rmtree(copy, ignore_errors=True)
        self._copies = []

    # --- performing -------------------------------------------------------------
    def poll(self, force: bool = False) -> RulePack | None:
        """The new pack if a reload was asked for, has settled, and gives a valid,
        different pack; otherwise None (and the running pack stays)."""
        with self._lock:
            asked = self._asked_at
            if asked is None or (not force and time.monotonic() - asked < self.debounce):
                return None
            self._asked_at = None
        copy = day = None
        if self.snapshots:
            copy = Path(tempfile.mkdtemp(prefix="riskwatch-rules-"))
            shutil.copytree(self.rules_dir, copy, dirs_exist_ok=True)
            day = self.today or dt.date.today()
            pack, problems = lint(copy, day, shown_as=self.rules_dir)
        else:
            pack, problems = lint(self.rules_dir, self.today)
        if pack is not None and self.narrow is not None:
            pack = self.narrow(pack)
        if not self._accepted(pack, problems):
            if copy is not None:
                shutil.rmtree(copy, ignore_errors=True)
            return None
        if copy is not None:
            self._copies.append(copy)
            self.snapshot, self.snapshot_day = copy, day
        log.info("rules reloaded: pack %s -> %s", self.pack.version, pack.version)
        if self.metrics is not None:
            self.metrics.rule_pack.labels(self.pack.version).set(0)
            self.metrics.rule_pack.labels(pack.version).set(1)
        self._count("ok")
        self.pack = pack
        self.versions.append(pack.version)
        return pack

    def _accepted(self, pack: RulePack | None, problems: list) -> bool:
        """Whether a linted folder may replace the running pack; says why not in the log."""
        if pack is None:
            self.rejected += 1
            errors = [p for p in problems if p.level == "error"]
            for p in errors:
                log.error("rules reload rejected: %s", p)
            log.error("rules reload rejected (%d error(s)); still scoring with pack %s", len(errors), self.pack.version)
            self._count("rejected")
            return False
        prepare_screening(pack)  # here, not at the first batch it scores
        reason = self.accept(pack) if self.accept is not None else None
        if reason:
            self.rejected += 1
            log.error("rules reload rejected: %s; still scoring with pack %s", reason, self.pack.version)
            self._count("rejected")
            return False
        if pack.version == self.pack.version:
            self._count("unchanged")
            return False
        return True

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.rule_pack_reloads.labels(result).inc()
