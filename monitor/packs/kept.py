"""What a rules folder costs to prepare, kept between runs: a long list's parsed
rows and a screened list's name index, so that a run pays for them once.

Parsing a sanctions list of 20,000 rows takes about 20 ms and normalising and
indexing its names about half a second, every run; loading what an earlier run
kept takes a few milliseconds. Kept under the user's cache folder
(``$RISKWATCH_CACHE``, else ``$XDG_CACHE_HOME/riskwatch``, else
``~/.cache/riskwatch``), each file named by a hash of what it was made from
and of the code that made it, so a changed list or a new version builds
afresh. The cache is never needed: a file that cannot be read or written means
building in memory.

>>> from monitor.packs.rulefiles import default_rules_dir, load_pack
>>> pack = load_pack(default_rules_dir())        # prepares the screened lists
>>> pack.lists["sanctions"].name_index().entries[:1]
['Northwind Dual-Use Trading LLC']
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import pickle
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, TypeVar

from monitor.core.rules import CounterpartyList, Problem

__all__ = ["cache_folder", "keep", "load_list_kept", "load_or_build", "prepare_screening"]

log = logging.getLogger(__name__)
KEEP = 16  # files kept of each kind; the oldest beyond that are removed
LIST_KEPT_FROM = 256 * 1024  # a list file of this many bytes or more is kept parsed
T = TypeVar("T")


def cache_folder(kind: str = "name-index") -> Path:
    root = os.environ.get("RISKWATCH_CACHE")
    if root:
        return Path(root) / kind
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "riskwatch" / kind


@lru_cache(maxsize=None)
def _code_hash(*modules: str) -> bytes:
    """A hash of the source of these modules (what a kept object was made by)."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(importlib.import_module(module).__file__).read_bytes())
    return digest.digest()


def keep(folder: Path, digest: str, build: Callable[[], T], usable: Callable[[Any], bool],
         worth_keeping: Callable[[T], bool] = lambda _: True) -> T:
    """The object kept in ``folder`` under ``digest`` if ``usable`` says it is,
    else ``build()`` (kept, when ``worth_keeping``)."""
    path = folder / f"{digest[:40]}.pickle"
    try:
        with open(path, "rb") as f:
            found = pickle.load(f)
        if usable(found):
            os.utime(path)
            return found
    except FileNotFoundError:
        pass
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: built afresh
        log.debug("%s not usable (%s); building it", path, exc)
    built = build()
    if not worth_keeping(built):
        return built
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as tmp:
            pickle.dump(built, tmp, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp.name, path)
        for old in sorted(folder.glob("*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True)[KEEP:]:
            old.unlink(missing_ok=True)
    except OSError as exc:
        log.debug("not kept in %s (%s)", folder, exc)
    return built


def load_or_build(entries: list[str], folder: Path | None = None):
    """The complete ``NameIndex`` of these names: kept from an earlier run, or built (and kept)."""
    from monitor.core.nameindex import NameIndex  # opencc, rapidfuzz: only where a list is screened

    digest = hashlib.sha256(_code_hash("monitor.core.names", "monitor.core.nameindex", "monitor.core.packed"))
    digest.update("\0".join(entries).encode("utf-8", "surrogatepass"))
    return keep(folder or cache_folder("name-index"), digest.hexdigest(), lambda: NameIndex(entries).complete(),
                lambda found: isinstance(found, NameIndex) and found.entries == entries)


def load_list_kept(data: bytes, name: str, parse: Callable[[], tuple[CounterpartyList | None, list[Problem]]],
                   folder: Path | None = None) -> tuple[CounterpartyList | None, list[Problem]]:
    """``parse()`` of a list file (its bytes: ``data``), kept parsed when
    the file is long and has no problems (whose messages name the file as shown)."""
    if len(data) < LIST_KEPT_FROM:
        return parse()
    digest = hashlib.sha256(_code_hash("monitor.core.rules", "monitor.core.packed", "monitor.packs.rulefiles"))
    digest.update(name.encode() + b"\0" + data)

    def parsed() -> tuple[CounterpartyList | None, list[Problem]]:
        lst, problems = parse()
        if lst is not None:  # worked out before it is kept, so that a run loading it need not
            lst.content()
            lst.named_rows()
        return lst, problems

    return keep(folder or cache_folder("lists"), digest.hexdigest(), parsed,
                lambda found: (isinstance(found, tuple) and len(found) == 2 and isinstance(found[0], CounterpartyList)
                               and found[0].name == name and not found[1]),
                lambda parsed: parsed[0] is not None and not parsed[1])


def prepare_screening(pack) -> None:
    """Hand every list a rule screens names against its index, before the first event
    (and before a runner forks its workers, which then share it)."""
    screened = {list_name for rule in pack.rules if rule.when is not None for _, list_name, _ in rule.when.screens}
    for list_name in sorted(screened):
        lst = pack.lists[list_name]
        entries = lst.names()
        if entries:
            lst.use_name_index(load_or_build(entries))
