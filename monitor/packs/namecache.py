"""Name indexes kept between runs, so that a long list costs its indexing once.

Normalising and indexing a sanctions list of 20,000 names takes about half a
second, every run and in every process that screens; loading the index kept
from an earlier run takes a twentieth of that. The index is kept under the
user's cache folder (``$RISKWATCH_CACHE``, else ``$XDG_CACHE_HOME/riskwatch``,
else ``~/.cache/riskwatch``), named by a hash of the list's names and of the
matching code, so a changed list or a new version builds afresh. The cache is
never needed: a file that cannot be read or written means building in memory.

>>> from monitor.packs.rulefiles import default_rules_dir, load_pack
>>> pack = load_pack(default_rules_dir())        # prepares the screened lists
>>> pack.lists["sanctions"].name_index().entries[:1]
['Northwind Dual-Use Trading LLC']
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
from functools import lru_cache
from pathlib import Path

from monitor.core import names
from monitor.core.names import NameIndex

__all__ = ["cache_folder", "load_or_build", "prepare_screening"]

log = logging.getLogger(__name__)
KEEP = 16  # indexes kept; the oldest beyond that are removed


def cache_folder() -> Path:
    root = os.environ.get("RISKWATCH_CACHE")
    if root:
        return Path(root) / "name-index"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "riskwatch" / "name-index"


@lru_cache(maxsize=1)
def _code_hash() -> bytes:
    return hashlib.sha256(Path(names.__file__).read_bytes()).digest()


def load_or_build(entries: list[str], folder: Path | None = None) -> NameIndex:
    """The complete index of these names: kept from an earlier run, or built (and kept)."""
    digest = hashlib.sha256(_code_hash())
    digest.update("\0".join(entries).encode("utf-8", "surrogatepass"))
    folder = folder or cache_folder()
    path = folder / f"{digest.hexdigest()[:40]}.pickle"
    try:
        with open(path, "rb") as f:
            index = pickle.load(f)
        if isinstance(index, NameIndex) and index.entries == entries:
            os.utime(path)
            return index
    except FileNotFoundError:
        pass
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: built afresh
        log.debug("name index %s not usable (%s); building it", path, exc)
    index = NameIndex(entries).complete()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as tmp:
            pickle.dump(index, tmp, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp.name, path)
        for old in sorted(folder.glob("*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True)[KEEP:]:
            old.unlink(missing_ok=True)
    except OSError as exc:
        log.debug("name index not kept in %s (%s)", folder, exc)
    return index


def prepare_screening(pack) -> None:
    """Hand every list a rule screens names against its index, before the first event
    (and before a runner forks its workers, which then share it)."""
    screened = {list_name for rule in pack.rules if rule.when is not None for _, list_name, _ in rule.when.screens}
    for list_name in sorted(screened):
        lst = pack.lists[list_name]
        entries = lst.names()
        if entries:
            lst.use_name_index(load_or_build(entries))
