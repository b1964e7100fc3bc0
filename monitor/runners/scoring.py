"""Scoring one partition of a stream, batch by batch: decode, score, merge alerts.

``BatchScorer`` is what the embedded runner's process (or each of its scoring
processes) runs; each batch it reports as a small, picklable ``BatchResult``.

    scorer = BatchScorer(pack)
    result = scorer.process(lines, first_line=1)   # lines: raw JSONL records
    scorer.swap_pack(new_pack)                      # between batches: a hot reload
    scorer.close()                                  # the state on disk, if any, is removed

With ``state_dir`` the per-key state (windows, totals, matters, master data,
the detectors' keys) lives on disk (``monitor.runners.diskstate``), opened at
the first batch: in the process that scores, after a fork.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from monitor.core.alerts import Alert, AlertBook
from monitor.core.batch import EventBatch
from monitor.core.event import Rejection, decode_lines
from monitor.core.evidence import Evidence
from monitor.core.rules import RulePack, changed_rules
from monitor.core.scorer import Scorer
from monitor.core.state import ScorerState, drop_rules

__all__ = ["BatchResult", "BatchScorer", "partitionable"]

KEY_COUNT_SECONDS = 5.0  # the state-keys gauge is recounted at most this often (a scrape is every 15 s;
# counting walks every org's models: 50 ms with 3,840 orgs)


@dataclass
class BatchResult:
    """What one scored batch changed; small and picklable."""

    lines: int
    scored: int
    rejected: list[Rejection]
    events_by_source: Counter  # (domain, source) -> events
    hits_by_rule: Counter
    new_alerts: list[Alert]
    updated_alerts: list[Alert]
    scoring_seconds: float
    state_keys: int
    late_events: int  # running total in this scorer
    occurred_at: Any = None  # epoch seconds of the scored events (numpy), for the end-to-end lag
    detector_scores: dict = field(default_factory=dict)  # detector id -> this batch's scores (numpy)
    evidence: list = field(default_factory=list)  # (dedup key, event) for the tickets
    judgements: list = field(default_factory=list)  # executed matters the review controls judged
    pack_version: str = ""  # the rule pack that scored this batch

    def __getstate__(self) -> dict:
        # Sent from a scoring process to the runner: the alerts as MessagePack, which
        # takes about two thirds of pickle's time (a batch of a busy rule sends thousands).
        state = dict(self.__dict__)
        state["alerts"] = _ALERTS_OUT.encode([state.pop("new_alerts"), state.pop("updated_alerts")])
        return state

    def __setstate__(self, state: dict) -> None:
        state["new_alerts"], state["updated_alerts"] = _ALERTS_IN.decode(state.pop("alerts"))
        self.__dict__.update(state)


_ALERTS_OUT = msgspec.msgpack.Encoder()
_ALERTS_IN = msgspec.msgpack.Decoder(tuple[list[Alert], list[Alert]])


def partitionable(pack: RulePack) -> bool:
    """True when every rule's findings stay within one org, so the stream can
    be split by org_id across workers without changing any alert."""
    return all("org_id" in r.key for r in pack.rules)


class BatchScorer:
    """Decode, score and merge alerts, batch by batch, for one stream partition."""

    def __init__(self, pack: RulePack, keep_evidence: bool = True, state_dir: Path | None = None,
                 state_cache: int | None = None, state_memory: int | None = None):
        self.pack = pack
        self.scorer = Scorer(pack)
        self.state = ScorerState()
        self.state_dir = state_dir
        self.state_cache = state_cache  # decoded entries the process keeps in memory (None: DISK_CACHED)
        self.state_memory = state_memory  # resident bytes the process aims to stay under (None: no aim)
        self.disk: Any = None  # a diskstate.DiskState, from the first batch on when state_dir is given
        self.book = AlertBook(pack)
        self.evidence = Evidence() if keep_evidence else None  # only a ticket store has a use for it
        self._keys_counted = (-math.inf, 0)  # (when, how many): counting walks every org's models

    def _state_keys(self) -> int:
        """The state's keys, for the gauge: counted at most every ``KEY_COUNT_SECONDS``."""
        when, count = self._keys_counted
        if time.monotonic() - when >= KEY_COUNT_SECONDS:
            self._keys_counted = (time.monotonic(), self.state.key_count())
        return self._keys_counted[1]

    def process(self, lines: list[bytes], first_line: int = 1, numbers: list[int] | None = None) -> BatchResult:
        raws: list[bytes] | None = [] if self.evidence is not None else None
        events, rejected = decode_lines(lines, first_line, numbers, raws)
        new: list[Alert] = []
        updated: list[Alert] = []
        findings = []
        evidence: list = []
        elapsed = 0.0
        by_source: Counter = Counter()
        if events:
            if self.state_dir is not None and self.disk is None:
                self._open_disk()
            batch = EventBatch(events)
            started = time.perf_counter()
            findings = self.scorer.score(batch, self.state)
            if self.disk is not None:
                self.disk.flush()
            elapsed = time.perf_counter() - started
            new, updated = self.book.merge_split(findings)
            if self.evidence is not None:
                held = self.scorer.held_rows.tolist()
                self.evidence.remember(map(events.__getitem__, held), map(raws.__getitem__, held))
                evidence = self.evidence.collect(new + updated, events) if new or updated else []
            rows = batch.all_rows
            by_source = Counter(zip(batch.column("domain", rows).tolist(), batch.column("source", rows).tolist()))
        times = batch.column("occurred_at", batch.all_rows) if events else None
        scores = {k: v.astype(np.float32) for k, v in self.scorer.detector_scores.items()} if events else {}
        return BatchResult(len(events) + len(rejected), len(events), rejected, by_source,
                           Counter(f.rule_id for f in findings), new, updated, elapsed,
                           self._state_keys(), self.state.late_events, times, scores,
                           evidence, self.scorer.take_judgements(), self.pack.version)

    def swap_pack(self, new: RulePack) -> set[str]:
        """Score with ``new`` from the next batch on; keep the state of every rule
        whose definition did not change. Returns the rules whose state was dropped."""
        dropped = changed_rules(self.pack, new)
        drop_rules(self.state, dropped)
        self.pack = new
        self.scorer = Scorer(new)
        self.book = AlertBook(new, self.book.alerts)
        if self.disk is not None:
            self.disk.drop_detectors(dropped)
            self.disk.attach(new, self.state)
            self.disk.flush()
        return dropped

    def close(self) -> None:
        """Remove the state kept on disk (scratch: a run starts from nothing)."""
        if self.disk is not None:
            self.disk.close()
            self.disk = None

    def _open_disk(self) -> None:
        from monitor.runners.diskstate import DISK_CACHED, DiskState

        self.disk = DiskState(self.state_dir, self.state_cache or DISK_CACHED, self.state_memory)
        self.disk.attach(self.pack, self.state)
