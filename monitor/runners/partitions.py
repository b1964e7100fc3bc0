"""Scoring processes that each take a share of the orgs of one file.

Each process reads the whole file and scores the lines of its orgs (every
stateful rule groups by ``org_id`` first, so each org's state lives in one
process, as with Kafka partitions), and sends each batch's result to the
parent. A hot reload reaches them through ``PackSwitches``, at one line of the
file for all of them.
"""

from __future__ import annotations

import datetime as dt
import pickle
import traceback
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import msgspec

from monitor.core.rules import RulePack
from monitor.runners.heap import FrozenHeap
from monitor.runners.scoring import BatchResult, BatchScorer, partitionable

__all__ = ["PackSwitches", "check_alive", "partition_worker", "reload_across_workers"]


class _OrgOnly(msgspec.Struct):
    org_id: Any = None


@dataclass(frozen=True)
class _Switch:
    """A reloaded pack, which scores every line of the file after ``after``."""

    after: int
    rules: str  # the checked copy of the rules folder (a compiled pack cannot be pickled)
    version: str
    day: dt.date | None
    narrow: Callable[[RulePack], RulePack] | None

    def load(self) -> RulePack:
        from monitor.packs.rulefiles import load_pack

        pack = load_pack(self.rules, self.day)
        pack = self.narrow(pack) if self.narrow is not None else pack
        if pack.version != self.version:
            raise RuntimeError(f"the rules copy at {self.rules} is pack {pack.version}, not the {self.version} announced")
        return pack


class PackSwitches:
    """Hot reload across scoring workers, switched at one line of the file for all.

    Each worker reads the file in spans and reserves each span, under a lock,
    before it reads it. A reload is placed after the furthest line reserved, so
    no worker has scored past it with the old pack, and every worker switches
    at that same line: what one process would do, switching between two
    batches at that line. Nothing is lost or scored twice, and each org's
    state carries over as in one process.
    """

    def __init__(self, ctx, workers: int):
        self._lock = ctx.Lock()
        self._reserved = ctx.Array("q", workers, lock=False)  # per worker: the last line it may score with its pack
        self._published = ctx.Value("q", 0, lock=False)
        self._inboxes = [ctx.SimpleQueue() for _ in range(workers)]
        self._taken = 0  # in a worker: switches taken from its inbox

    def publish(self, rules: Path, version: str, day: dt.date | None,
                narrow: Callable[[RulePack], RulePack] | None) -> int:
        """Announce a reloaded pack to every worker; returns the line it scores after."""
        with self._lock:
            after = max(self._reserved)
            self._published.value += 1
        switch = _Switch(after, str(rules), version, day, narrow)
        for inbox in self._inboxes:  # outside the lock: a worker waits for it in reserve()
            inbox.put(switch)
        return after

    def reserve(self, index: int, up_to: int) -> list[_Switch]:
        """In worker ``index``: reserve the lines up to ``up_to``; the switches announced since the last call."""
        with self._lock:
            self._reserved[index] = up_to
            new = self._published.value - self._taken
        self._taken += new
        return [self._inboxes[index].get() for _ in range(new)]


def _partition_of(org: Any, workers: int) -> int:
    if not isinstance(org, str) or not org:
        return 0  # undecodable or org-less lines: worker 0 rejects them properly
    return zlib.crc32(org.encode()) % workers


def _pickled(result: BatchResult) -> bytes:
    """Pickled here, not in the queue's feeder thread, which would drop a result
    it cannot pickle with nothing but a printed traceback: a result that cannot
    be sent fails this worker, and so the run."""
    return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)


def partition_worker(pack: RulePack, path: str, index: int, workers: int, batch_size: int, results,
                     keep_evidence: bool = True, switches: PackSwitches | None = None,
                     state_on_disk: tuple = (None, None, None)) -> None:
    """One worker: read the whole file, score the lines of its orgs, report each batch;
    with ``switches``, take up reloaded packs at the line the parent gives;
    with ``state_on_disk`` (a folder, a cache size, a memory aim), keep the per-key state on disk."""
    scorer = BatchScorer(pack, keep_evidence, *state_on_disk)
    try:
        with FrozenHeap() as heap:
            decode_org = msgspec.json.Decoder(_OrgOnly).decode
            lines: list[bytes] = []
            numbers: list[int] = []
            partitions: dict[Any, int] = {}  # org -> worker; a few dozen orgs, half a million lines
            span = batch_size * workers  # lines reserved at a time: about one batch of this worker's own
            reserved = 0
            coming: list[tuple[int, RulePack]] = []
            with open(path, "rb") as f:
                for number, raw in enumerate(f, 1):
                    if switches is not None:
                        if number > reserved:
                            reserved += span
                            coming += [(s.after, s.load()) for s in switches.reserve(index, reserved)]
                        while coming and number > coming[0][0]:
                            if lines:  # the lines before the switch, with the pack they were read under
                                results.put(_pickled(scorer.process(lines, numbers=numbers)))
                                lines, numbers = [], []
                            scorer.swap_pack(coming.pop(0)[1])
                    try:
                        org = decode_org(raw).org_id
                    except (msgspec.DecodeError, RecursionError):
                        org = None
                    try:
                        partition = partitions[org]
                    except KeyError:
                        partition = partitions[org] = _partition_of(org, workers)
                    except TypeError:  # an org_id that is a list or an object: rejected by worker 0
                        partition = 0
                    if partition != index:
                        continue
                    lines.append(raw)
                    numbers.append(number)
                    if len(lines) >= batch_size:
                        results.put(_pickled(scorer.process(lines, numbers=numbers)))
                        lines, numbers = [], []
                        heap.settle()
            if lines:
                results.put(_pickled(scorer.process(lines, numbers=numbers)))
        scorer.close()  # before "done": the parent may end the run as soon as it reads it
        results.put(("done", index))
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the run
        scorer.close()
        results.put(("error", traceback.format_exc()))


def check_alive(procs: list, finished: set[int]) -> None:
    """Fail the run when a worker died without saying so (killed, out of memory)."""
    for index, p in enumerate(procs):
        if index not in finished and not p.is_alive():
            raise RuntimeError(f"scoring worker {index} died (exit code {p.exitcode}) before finishing its share")


def reload_across_workers(reloader) -> None:
    """Ready a reloader for scoring workers: each reload is read from a checked
    copy the workers can load, and a pack that cannot be split by org is refused."""
    reloader.snapshots = True
    earlier = reloader.accept

    def accept(pack: RulePack) -> str | None:
        if earlier is not None and (reason := earlier(pack)):
            return reason
        if not partitionable(pack):
            return ("a rule groups by something other than org_id, which scoring processes split by: "
                    "run it with --workers 1")
        return None
    reloader.accept = accept
