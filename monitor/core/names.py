"""Name screening: company names as list entries name them, not as our ERP ids. Pure.

A counterparty named 「華為技術有限公司」, 「华为技术」 or 「（深圳）华为技术有限公司」 is
one entity; 「北京建设贸易有限公司」 and 「上海建设贸易有限公司」 are two. Names are
normalised first (``normalise``) — full-width to half-width, traditional to
simplified (OpenCC), organisational suffixes (有限公司, 股份有限公司, 集团 …) and
region names (省/市 names, also in brackets) kept aside as weaker tokens; Latin
names by case, punctuation and legal forms (cleanco: Ltd, LLC, GmbH, Co.) —
then scored with rapidfuzz. Across scripts, a Chinese name's pinyin is scored
against a Latin entry. A list is indexed by character n-grams, so a name is
scored against the few entries that share its rarer n-grams, not all of them.

>>> index = NameIndex(["華為技術有限公司", "Acme Trading Co., Ltd.", "北京建设贸易有限公司"])
>>> index.best("华为技术（深圳）有限公司", threshold=88).entry
'華為技術有限公司'
>>> index.best("上海建设贸易有限公司", threshold=88) is None
True
>>> index.best("ACME TRADING LIMITED", threshold=88).entry
'Acme Trading Co., Ltd.'
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat
from typing import Iterable, NamedTuple

import numpy as np
import opencc
from cleanco import basename
from rapidfuzz import fuzz, process

from monitor.core.packed import pack_texts, unpack_texts

__all__ = ["Match", "Name", "NameIndex", "normalise", "normalise_many", "pinyin_table", "similarity"]

# Longest first: 集团股份有限公司 before 有限公司 before 公司.
ORG_SUFFIXES = sorted({
    "集团股份有限公司", "集团有限责任公司", "集团有限公司", "股份有限公司", "有限责任公司", "有限公司", "股份公司",
    "集团公司", "总公司", "分公司", "公司", "集团", "有限", "厂", "商行",
}, key=len, reverse=True)
PROVINCES = (
    "北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江", "安徽", "福建", "江西",
    "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州", "云南", "陕西", "甘肃", "青海", "台湾", "内蒙古",
    "广西", "西藏", "宁夏", "新疆", "香港", "澳门",
)
CITIES = (
    "深圳", "广州", "杭州", "南京", "苏州", "武汉", "成都", "西安", "青岛", "大连", "宁波", "厦门", "沈阳", "长沙",
    "郑州", "济南", "合肥", "福州", "昆明", "哈尔滨", "长春", "石家庄", "太原", "南昌", "南宁", "贵阳", "兰州", "海口",
    "呼和浩特", "乌鲁木齐", "银川", "西宁", "拉萨", "无锡", "佛山", "东莞", "温州", "烟台", "珠海", "常州", "徐州",
    "唐山", "洛阳", "泉州", "绍兴", "嘉兴", "南通", "扬州", "潍坊", "淄博", "惠州", "中山", "江门", "芜湖", "宜昌",
    "襄阳", "岳阳", "株洲", "湘潭", "柳州", "桂林", "三亚", "绵阳", "遵义", "宝鸡", "包头", "鄂尔多斯", "大庆", "吉林市",
)
REGION_SUFFIX = ("特别行政区", "维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "省", "市")
_REGIONS = sorted(set(PROVINCES + CITIES), key=len, reverse=True)
_SUFFIX_ENDINGS = tuple(ORG_SUFFIXES)
_SUFFIX_SET = frozenset(ORG_SUFFIXES)
_SUFFIX_LENGTHS = sorted({len(s) for s in ORG_SUFFIXES}, reverse=True)
_REGION_AT_START = re.compile("^(" + "|".join(_REGIONS) + ")(" + "|".join(REGION_SUFFIX) + ")?")
_BRACKETED = re.compile(r"[(\[（【]([^)\]）】]*)[)\]）】]")
_BRACKET = re.compile(r"[(\[（【]")
_HAN = re.compile(r"[\u3400-\u9fff]")
_NOT_WORD = re.compile(r"[^\w]+")
_NONE = np.zeros(0, dtype=np.int32)
_LATIN_IN_HAN = re.compile(r"[a-z0-9]+")
# Legal forms and their pinyin, after cleanco's: weak words at the end of a Latin name.
LATIN_FORMS = frozenset({
    "co", "company", "corp", "corporation", "inc", "incorporated", "ltd", "limited", "llc", "plc", "pjsc", "jsc",
    "oao", "ooo", "ag", "gmbh", "kg", "sa", "spa", "bv", "nv", "group", "holding", "holdings",
    "youxian", "gongsi", "zeren", "gufen", "jituan", "youxiangongsi",
})


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")  # reads its dictionaries: once, when first needed


class Name(NamedTuple):
    """A name as it is compared: its ``core`` and what was kept aside."""

    raw: str
    script: str  # "zh" or "latin"
    core: str  # Chinese without spaces; Latin as space-separated lower-case words
    regions: frozenset[str]
    suffixes: tuple[str, ...]

    @property
    def pinyin(self) -> str:
        """The core's pinyin without spaces (Chinese names)."""
        return self.core.translate(pinyin_table()) if self.script == "zh" else ""


_PINYIN: dict[int, str] | None = None


def pinyin_table() -> dict[int, str]:
    """Each Han character's commonest reading, toneless (ü as v), for ``str.translate``.

    Character by character: twenty times faster than pypinyin's phrase
    segmentation, which indexing a list of 20,000 names would spend seconds on.
    The price: a polyphone read as in a phrase is missed (银行 comes out
    yinxing, not yinhang). Loading pypinyin's table takes a quarter of a second,
    so a ``NameIndex`` keeps the table it was built with, and a pickled index
    brings it along (and lends it to this function: ``_PINYIN``)."""
    global _PINYIN
    if _PINYIN is not None:
        return _PINYIN
    from pypinyin.pinyin_dict import pinyin_dict

    table = {}
    for code, readings in pinyin_dict.items():
        if 0x3400 <= code <= 0x9fff:
            first = unicodedata.normalize("NFKD", readings.split(",", 1)[0]).replace("u\u0308", "v")
            table[code] = "".join(ch for ch in first if not unicodedata.combining(ch))
    _PINYIN = table
    return table


@lru_cache(maxsize=200_000)
def normalise(raw: str) -> Name:
    return _normalise_text(raw, _t2s().convert(unicodedata.normalize("NFKC", raw)).strip().casefold())


def normalise_many(raws: list[str]) -> list[Name]:
    """``normalise`` of each, converting them all in one OpenCC call (a list's entries at once)."""
    joined = unicodedata.normalize("NFKC", "\n".join(r.replace("\n", " ") for r in raws))
    texts = _t2s().convert(joined).casefold().split("\n")
    if len(texts) != len(raws):  # a character NFKC turned into a line break: one by one
        return [normalise(r) for r in raws]
    return [_normalise_text(raw, text.strip()) for raw, text in zip(raws, texts)]


def _normalise_text(raw: str, text: str) -> Name:
    return _normalise_zh(raw, text) if _HAN.search(text) else _normalise_latin(raw, text)


def _normalise_zh(raw: str, text: str) -> Name:
    regions = set()
    if _BRACKET.search(text):
        for inside in _BRACKETED.findall(text):  # 「华为技术（深圳）有限公司」: a region in brackets, or a note
            regions.update(region for region in _REGIONS if inside.startswith(region))
        text = _BRACKETED.sub("", text)
    text = _NOT_WORD.sub("", text)
    if _LATIN_IN_HAN.search(text) and len(_HAN.findall(text)) >= 2:
        text = _LATIN_IN_HAN.sub("", text)  # 「ZTE中兴通讯」: a brand in letters beside the name
    while (m := _REGION_AT_START.match(text)) and len(text) - m.end() >= 3:  # 「北京银行」 stays whole
        regions.add(m.group(1))
        text = text[m.end():]
    suffixes = []
    while text.endswith(_SUFFIX_ENDINGS):
        for n in _SUFFIX_LENGTHS:  # longest first
            if len(text) > n + 1 and text[-n:] in _SUFFIX_SET:
                suffixes.append(text[-n:])
                text = text[:-n]
                break
        else:
            break
    return Name(raw, "zh", text, frozenset(regions), tuple(suffixes))


def _normalise_latin(raw: str, text: str) -> Name:
    text = text.replace("&", " and ")
    previous = None
    while previous != text:  # "Acme Trading Co., Ltd." -> "Acme Trading Co." -> "Acme Trading"
        previous, text = text, basename(text).strip(" .,")
    words = [w for w in _NOT_WORD.sub(" ", text).split() if w not in ("the", "and")]
    while len(words) > 1 and words[-1] in LATIN_FORMS:
        words.pop()
    return Name(raw, "latin", " ".join(words), frozenset(), ())


def _abbreviates(short: str, long: str) -> bool:
    """「中国石化」 for 「中国石油化工」, 「海康威视」 for 「海康威视数字技术」: the short one's
    characters in order, the first two the same, nothing dropped but single
    characters and the tail (「东湖中联环保」 does not abbreviate 「东湖隆基中联环保」)."""
    if len(short) < 4 or len(short) >= len(long) or short[:2] != long[:2]:
        return False
    at = 0
    for ch in short:
        found = long.find(ch, at)
        if found < 0 or found - at > 1:
            return False
        at = found + 1
    return True


def _cores(core: str) -> tuple[str, ...]:
    """The core, and without a leading 中国 where four characters remain (「中国长江电力」, 「长江电力」)."""
    rest = core.removeprefix("中国")
    return (core, rest) if rest != core and len(rest) >= 4 else (core,)


def similarity(a: Name, b: Name) -> tuple[float, str]:
    """A score out of 100 and why."""
    if a.script == "zh" and b.script == "zh":
        if a.regions and b.regions and not a.regions & b.regions:
            return 0.0, f"different regions ({'/'.join(sorted(a.regions))} vs {'/'.join(sorted(b.regions))})"
        best = (-1.0, "")
        for x in _cores(a.core):
            for y in _cores(b.core):
                score = fuzz.ratio(x, y)
                short, long = sorted((x, y), key=len)
                if score < 92 and _abbreviates(short, long):
                    score, why = 92.0, f"「{short}」 abbreviates 「{long}」"
                else:
                    why = f"「{x}」 vs 「{y}」"
                best = max(best, (score, why))
        return best
    if a.script == "latin" and b.script == "latin":
        return fuzz.token_sort_ratio(a.core, b.core), f"'{a.core}' vs '{b.core}'"
    zh, latin = (a, b) if a.script == "zh" else (b, a)
    pinyin = zh.pinyin
    return fuzz.ratio(pinyin, latin.core.replace(" ", "")), f"pinyin '{pinyin}' vs '{latin.core}'"


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

    def __init__(self, entries: list[str], columns: tuple[list[str], list[str], list[str], list[str]]):
        self.entries = entries
        self.scripts, self.cores, self.regions, self.suffixes = columns
        self.made: dict[int, Name] = {}

    @staticmethod
    def columns(names) -> tuple[list[str], list[str], list[str], list[str]]:
        if isinstance(names, _Names):
            return names.scripts, names.cores, names.regions, names.suffixes
        return ([n.script for n in names], [n.core for n in names], ["/".join(sorted(n.regions)) for n in names],
                ["/".join(n.suffixes) for n in names])

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> Name:
        name = self.made.get(i)
        if name is None:
            regions, suffixes = self.regions[i], self.suffixes[i]
            name = self.made[i] = Name(self.entries[i], self.scripts[i], self.cores[i],
                                       frozenset(regions.split("/")) if regions else frozenset(),
                                       tuple(suffixes.split("/")) if suffixes else ())
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
        self.postings = _Postings((i, _own_grams(n)) for i, n in enumerate(self.names))
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
        global _PINYIN
        entries = state["entries"] = unpack_texts(state["entries"])
        columns = tuple(unpack_texts(c) for c in state["names"])
        state["names"] = _Names(entries, columns)
        state["scripts"], state["cores"] = columns[0], columns[1]
        if state["_pinyin"] is not None:
            keys, values = state["_pinyin"]
            state["_pinyin"] = dict(zip(keys.tolist(), unpack_texts(values)))
        self.__dict__.update(state)
        if _PINYIN is None and self._pinyin is not None:
            _PINYIN = self._pinyin  # the same table: no need to load pypinyin's

    def complete(self) -> NameIndex:
        self._pinyin_of("")
        self._heads()
        if self._pinyin_postings is None:
            self._pinyin_postings = _Postings((i, _trigrams(self._pinyin_of(n.core))) for i, n in enumerate(self.names)
                                              if n.script == "zh")
        return self

    def _pinyin_of(self, core: str) -> str:
        if self._pinyin is None:
            self._pinyin = pinyin_table()
        return core.translate(self._pinyin)

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
                grams = _trigrams(self._pinyin_of(query.core))
                asks[0][1].extend(grams)
                asks[0][2].extend([2 * q + 1] * len(grams))
            elif query.script == "latin":
                grams = _trigrams(query.core.replace(" ", ""))
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

    def _heads(self) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
        """The first two characters of the Chinese entries' cores, numbered (中国 always 0);
        each entry's number (-2 for a Latin entry); each entry's core length: what
        ``_worth_scoring`` compares in arrays."""
        if self._head_table is None:
            numbers: dict[str, int] = {"中国": 0}
            heads = np.array([numbers.setdefault(c[:2], len(numbers)) if s == "zh" else -2
                              for c, s in zip(self.cores, self.scripts)], np.int64)
            self._head_table = numbers, heads, np.array([len(c) for c in self.cores], np.int64)
        return self._head_table

    def _worth_scoring(self, queries: list[Name], asker: list[int], entry: list[int], threshold: float) -> np.ndarray:
        """Which (query, entry) pairs ``similarity`` could score at ``threshold`` or above.
        A pair of Chinese cores scores their plain ratio unless one abbreviates the other
        (then the short one is a subsequence of the long: the ratio is as high as their
        lengths allow, 200·short/(short + long)) or one starts with 中国; other pairs
        (pinyin, Latin) are always scored."""
        at, of = np.asarray(asker), np.asarray(entry)
        heads, entry_heads, entry_lengths = self._heads()
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
        could_rise = (mine == 0) | (theirs == 0) | (subsequence & (mine == theirs) & (mine >= 0))  # 0: 中国
        return (ratio >= threshold - 0.01) | ~both_zh | could_rise
