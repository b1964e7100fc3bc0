"""A list's names, indexed: which entries a name is worth scoring against. Pure.

The entries are indexed by character n-grams (bigrams of a Chinese core,
trigrams of a Latin one, trigrams of a Chinese core's pinyin for Latin
queries), so a name is scored (``monitor.core.names.similarity``) against the
few entries that share its rarer n-grams, not all of them.

>>> index = NameIndex(["華為技術有限公司", "Acme Trading Co., Ltd.", "北京建设贸易有限公司"])
>>> index.best("华为技术（深圳）有限公司", threshold=88).entry
'華為技術有限公司'
>>> index.best("上海建设贸易有限公司", threshold=88) is None
True
>>> index.best("ACME TRADING LIMITED", threshold=88).entry
'Acme Trading Co., Ltd.'
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from typing import Iterable

import numpy as np
from rapidfuzz import fuzz, process

from monitor.core.names import DISTRICT_ENDINGS, Name, latin_as_pinyin, lend_pinyin_table, normalise_many, pinyin_table, pinyins, similarity
from monitor.core.packed import pack_texts, unpack_texts

__all__ = ["Match", "NameIndex"]

_NONE = np.zeros(0, dtype=np.int32)


@dataclass(frozen=True)
class Match:
    entry: str  # the list entry as the list names it
    position: int  # its row in the list
    score: float
    why: str


def _trigrams(text: str) -> set[str]:
    return {text[i:i + 3] for i in range(max(1, len(text) - 2))}


def _own_grams(name: Name) -> set[str]:
    """What an entry is found by in its own script: bigrams of a Chinese core, trigrams of a Latin one."""
    if name.script == "zh":
        core = name.core
        return {core[i:i + 2] for i in range(max(1, len(core) - 1))}
    return _trigrams(name.core.replace(" ", ""))


def _entry_grams(name: Name) -> set[str]:
    """What an entry is found by: its own n-grams; a Latin entry also by the
    trigrams of the pinyin it may render (a Chinese query's pinyin asks these)."""
    grams = _own_grams(name)
    if name.script == "latin":
        spoken, whole, _regions, _own = latin_as_pinyin(name.core)
        grams |= _trigrams(spoken) | _trigrams(whole)
    return grams


def _names_district(regions: Iterable[str]) -> bool:
    return any(r.endswith(DISTRICT_ENDINGS) for r in regions)


class _Postings:
    """n-gram -> the entries that hold it (ascending), all in one array: built
    without a list per n-gram, and pickled and loaded at once."""

    __slots__ = ("slots", "ids", "starts")

    def __init__(self, grams_of: Iterable[tuple[int, Iterable[str]]]):
        slots: dict[str, int] = {}
        keys: list[int] = []
        owners: list[int] = []
        for i, grams in grams_of:
            mine = [slots.setdefault(g, len(slots)) for g in grams]
            keys += mine
            owners += [i] * len(mine)
        key_array = np.array(keys, dtype=np.int32)
        self.ids = np.array(owners, dtype=np.int32)[np.argsort(key_array, kind="stable")]
        self.starts = np.concatenate(([0], np.cumsum(np.bincount(key_array, minlength=len(slots))))).astype(np.int64)
        self.slots = slots

    def get(self, gram: str) -> np.ndarray:
        k = self.slots.get(gram)
        return _NONE if k is None else self.ids[self.starts[k]:self.starts[k + 1]]


class _Names:
    """A loaded index's normalised entries, kept as columns of text and made ``Name``s when asked."""

    def __init__(self, entries: list[str], columns: tuple[list[str], ...]):
        self.entries = entries
        self.scripts, self.cores, self.regions, self.suffixes, self.letters = columns
        self.made: dict[int, Name] = {}

    @staticmethod
    def columns(names) -> tuple[list[str], ...]:
        if isinstance(names, _Names):
            return names.scripts, names.cores, names.regions, names.suffixes, names.letters
        return ([n.script for n in names], [n.core for n in names], ["/".join(sorted(n.regions)) for n in names],
                ["/".join(n.suffixes) for n in names], [n.letters for n in names])

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> Name:
        name = self.made.get(i)
        if name is None:
            regions, suffixes = self.regions[i], self.suffixes[i]
            name = self.made[i] = Name(self.entries[i], self.scripts[i], self.cores[i],
                                       frozenset(regions.split("/")) if regions else frozenset(),
                                       tuple(suffixes.split("/")) if suffixes else (), self.letters[i])
        return name

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class NameIndex:
    """The entries of one list, indexed by n-gram. ``best(name)`` scores only
    the entries (at most ``candidates``) that share the most of its rarer
    n-grams, each weighed by how rare it is: an n-gram in more than
    ``common`` of the entries (建设, 贸易) finds nobody by itself. Chinese names
    are found by Latin entries through their pinyin, and the other way round.
    ``complete()`` builds what is otherwise built when first needed (before
    the index is pickled, or shared with forked processes)."""

    def __init__(self, entries: Iterable[str], candidates: int = 12, common: float = 0.005):
        self.entries = list(entries)
        self.names: list[Name] | _Names = normalise_many(self.entries)
        self.cores = [n.core for n in self.names]
        self.scripts = [n.script for n in self.names]
        self.candidates = candidates
        self.postings = _Postings((i, _entry_grams(n)) for i, n in enumerate(self.names))
        self.has_latin = any(n.script == "latin" for n in self.names)
        self._pinyin: dict[int, str] | None = None  # the table, when a pinyin is first needed
        self._pinyin_postings: _Postings | None = None  # of the Chinese entries, built when first needed
        self.common = max(50, int(common * len(self.entries)))
        self._head_table: tuple | None = None  # see ``_heads``

    def __getstate__(self) -> dict:
        # Each column of text as one string: a list of 20,000 strings loads in 4 ms,
        # one string of them and a split in under 1 (most of a cached index's load).
        state = dict(self.__dict__)
        del state["cores"], state["scripts"]  # the names' own columns
        state["entries"] = pack_texts(self.entries)
        state["names"] = tuple(pack_texts(c) for c in _Names.columns(self.names))
        if self._pinyin is not None:
            state["_pinyin"] = (np.fromiter(self._pinyin, np.int64, len(self._pinyin)), pack_texts(self._pinyin.values()))
        return state

    def __setstate__(self, state: dict) -> None:
        entries = state["entries"] = unpack_texts(state["entries"])
        columns = tuple(unpack_texts(c) for c in state["names"])
        state["names"] = _Names(entries, columns)
        state["scripts"], state["cores"] = columns[0], columns[1]
        if state["_pinyin"] is not None:
            keys, values = state["_pinyin"]
            state["_pinyin"] = dict(zip(keys.tolist(), unpack_texts(values)))
        self.__dict__.update(state)
        if self._pinyin is not None:
            lend_pinyin_table(self._pinyin)  # the same table: no need to load pypinyin's

    def complete(self) -> NameIndex:
        self._pinyin_grams("")
        self._heads()
        if self._pinyin_postings is None:
            self._pinyin_postings = _Postings((i, self._pinyin_grams(n.core)) for i, n in enumerate(self.names)
                                              if n.script == "zh")
        return self

    def _pinyin_grams(self, core: str) -> set[str]:
        """The trigrams of a Chinese core's ``pinyins`` (the table kept with the index, for its pickle)."""
        if self._pinyin is None:
            self._pinyin = pinyin_table()
        return set().union(*map(_trigrams, pinyins(core)))

    def _candidates(self, queries: list[Name]) -> tuple[np.ndarray, np.ndarray]:
        """(query, entry) pairs worth scoring, for many queries at once: numpy's fixed
        cost per call is paid once a batch of names rather than once a name.

        Each query asks in two channels: its own script's n-grams, and across
        scripts (a Chinese name's pinyin against the Latin entries, a Latin name
        against the Chinese entries' pinyin). In a channel only the rare n-grams
        count (or, if none is rare, the two least common)."""
        asks: list[tuple[_Postings, list[str], list[int]]] = [(self.postings, [], [])]
        if any(q.script == "latin" for q in queries):
            self.complete()
            asks.append((self._pinyin_postings, [], []))
        for q, query in enumerate(queries):
            grams = _own_grams(query)
            asks[0][1].extend(grams)
            asks[0][2].extend([2 * q] * len(grams))
            if query.script == "zh" and self.has_latin:  # the Latin entries are in the own postings
                grams = self._pinyin_grams(query.core)
                asks[0][1].extend(grams)
                asks[0][2].extend([2 * q + 1] * len(grams))
            elif query.script == "latin":
                grams = _trigrams(latin_as_pinyin(query.core)[0])
                asks[1][1].extend(grams)
                asks[1][2].extend([2 * q + 1] * len(grams))
        picked = [self._pick(postings, grams, channels) for postings, grams, channels in asks if grams]
        if not picked:
            return _NONE, _NONE
        entries, channel, weights, gram_channel, gram_weight = (np.concatenate(part) for part in zip(*picked))
        span = len(self.entries)
        pairs, at = np.unique(channel * span + entries, return_inverse=True)
        hits = np.bincount(at, weights=weights)
        # A name that scores 90 shares most of its n-grams: one that shares less than
        # half of their weight is not scored at all (most names of a stream match nothing).
        pair_channel = pairs // span
        total = np.bincount(gram_channel, weights=gram_weight)
        keep = hits >= total[pair_channel] / 2
        pairs, hits, pair_channel = pairs[keep], hits[keep], pair_channel[keep]
        order = np.lexsort((pairs, -hits, pair_channel))  # per channel, the most shared first
        pairs, pair_channel = pairs[order], pair_channel[order]
        keep = np.arange(len(pairs)) - np.searchsorted(pair_channel, pair_channel) < self.candidates
        return pair_channel[keep] // 2, pairs[keep] % span

    def _pick(self, postings: _Postings, grams: list[str], channels: list[int]):
        """The entries each channel's chosen n-grams hold (entries, their channel, their weight),
        and the chosen n-grams (their channel, their weight)."""
        slot = np.fromiter(map(postings.slots.get, grams, repeat(-1, len(grams))), np.int64, len(grams))
        channel = np.asarray(channels, dtype=np.int64)[slot >= 0]
        slot = slot[slot >= 0]
        first = postings.starts[slot]
        length = postings.starts[slot + 1] - first
        rare = length <= self.common
        has_rare = np.bincount(channel, weights=rare, minlength=channel.max(initial=-1) + 1) > 0
        order = np.lexsort((length, channel))  # per channel, the least common first
        rank = np.arange(len(order)) - np.searchsorted(channel[order], channel[order])
        chosen = order[rare[order] | (~has_rare[channel[order]] & (rank < 2))]
        first, length, channel = first[chosen], length[chosen], channel[chosen]
        ends = np.cumsum(length)
        at = np.arange(ends[-1] if len(ends) else 0) + np.repeat(first - (ends - length), length)
        weight = 1.0 / length  # a rare n-gram says more
        return postings.ids[at], np.repeat(channel, length), np.repeat(weight, length), channel, weight

    def best(self, raw: str, threshold: float) -> Match | None:
        """The best-scoring entry at ``threshold`` or above, if any."""
        return self.best_many([raw], threshold)[0]

    def best_many(self, raws: list[str], threshold: float) -> list[Match | None]:
        """``best`` of each name, the candidates of all found at once."""
        return [max(found, key=lambda m: m.score) if found else None for found in self.matches_many(raws, threshold)]

    def matches(self, raw: str, threshold: float) -> list[Match]:
        """Every candidate entry scoring ``threshold`` or above."""
        return self.matches_many([raw], threshold)[0]

    def matches_many(self, raws: list[str], threshold: float) -> list[list[Match]]:
        queries = normalise_many(raws)
        asker, entry = self._candidates(queries)
        out: list[list[Match]] = [[] for _ in raws]
        if not len(asker):
            return out
        pair = np.unique(asker.astype(np.int64) * len(self.entries) + entry)
        asker, entry = (pair // len(self.entries)).tolist(), (pair % len(self.entries)).tolist()
        # Every pair is scored in C first; ``similarity`` (in Python, with its reasons)
        # scores only the pairs it could put at the threshold or above.
        worth = self._worth_scoring(queries, asker, entry, threshold)
        names = self.names
        for k in np.flatnonzero(worth).tolist():
            q, i = asker[k], entry[k]
            score, why = similarity(queries[q], names[i])
            if score >= threshold:
                out[q].append(Match(self.entries[i], i, round(score, 1), why))
        return out

    def _heads(self) -> tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray]:
        """The first two characters of the Chinese entries' cores, numbered (中国 always 0);
        each entry's number (-2 for a Latin entry); each entry's core length; whether it
        names a district: what ``_worth_scoring`` compares in arrays."""
        if self._head_table is None:
            numbers: dict[str, int] = {"中国": 0}
            heads = np.array([numbers.setdefault(c[:2], len(numbers)) if s == "zh" else -2
                              for c, s in zip(self.cores, self.scripts)], np.int64)
            regions = _Names.columns(self.names)[2]
            self._head_table = (numbers, heads, np.array([len(c) for c in self.cores], np.int64),
                                np.array([_names_district(r.split("/")) for r in regions], bool))
        return self._head_table

    def _worth_scoring(self, queries: list[Name], asker: list[int], entry: list[int], threshold: float) -> np.ndarray:
        """Which (query, entry) pairs ``similarity`` could score at ``threshold`` or above.
        A pair of Chinese cores scores their plain ratio unless one abbreviates the other
        (then the short one is a subsequence of the long: the ratio is as high as their
        lengths allow, 200·short/(short + long)) or one starts with 中国; other pairs
        (pinyin, Latin) are always scored."""
        at, of = np.asarray(asker), np.asarray(entry)
        heads, entry_heads, entry_lengths, entry_districts = self._heads()
        # a query's head is -1 when no entry has it
        query_heads = np.array([heads.get(q.core[:2], -1) if q.script == "zh" else -2 for q in queries], np.int64)
        query_lengths = np.array([len(q.core) for q in queries], np.int64)
        query_cores = [q.core for q in queries]
        ratio = process.cpdist(list(map(query_cores.__getitem__, asker)), list(map(self.cores.__getitem__, entry)),
                               scorer=fuzz.ratio, workers=1)
        mine, theirs = query_heads[at], entry_heads[of]
        both_zh = (mine != -2) & (theirs != -2)
        short = np.minimum(query_lengths[at], entry_lengths[of])
        long = np.maximum(query_lengths[at], entry_lengths[of])
        subsequence = (short >= 4) & (short < long) & (ratio >= 200.0 * short / np.maximum(short + long, 1) - 0.01)  # cpdist: float32
        # 「天河新兴贸易」 against 「新兴贸易」 of 天河区: a district written without its 区
        query_districts = np.array([_names_district(q.regions) for q in queries], bool)
        district = (entry_districts[of] | query_districts[at]) & (long - short <= 3)
        could_rise = (mine == 0) | (theirs == 0) | (subsequence & (((mine == theirs) & (mine >= 0)) | district))  # 0: 中国
        return (ratio >= threshold - 0.01) | ~both_zh | could_rise
