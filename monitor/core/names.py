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
from typing import Iterable

import numpy as np
import opencc
from cleanco import basename
from pypinyin import lazy_pinyin
from rapidfuzz import fuzz

__all__ = ["Match", "Name", "NameIndex", "normalise", "similarity"]

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
_REGION_AT_START = re.compile("^(" + "|".join(_REGIONS) + ")(" + "|".join(REGION_SUFFIX) + ")?")
_BRACKETED = re.compile(r"[(\[（【]([^)\]）】]*)[)\]）】]")
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


@dataclass(frozen=True)
class Name:
    """A name as it is compared: its ``core`` and what was kept aside."""

    raw: str
    script: str  # "zh" or "latin"
    core: str  # Chinese without spaces; Latin as space-separated lower-case words
    regions: frozenset[str]
    suffixes: tuple[str, ...]

    @property
    def pinyin(self) -> str:
        """The core's pinyin without spaces (Chinese names; worked out when first asked: it is slow)."""
        return _pinyin(self.core) if self.script == "zh" else ""


@lru_cache(maxsize=200_000)
def _pinyin(core: str) -> str:
    # Character by character, each its commonest reading: twenty times faster than pypinyin's
    # phrase segmentation, which indexing a list of 20,000 names would spend seconds on.
    # The price: a polyphone read as in a phrase is missed (银行 comes out yinxing, not yinhang).
    return "".join(map(_char_pinyin, core))


@lru_cache(maxsize=50_000)
def _char_pinyin(ch: str) -> str:
    return lazy_pinyin(ch)[0]


@lru_cache(maxsize=200_000)
def normalise(raw: str) -> Name:
    text = _t2s().convert(unicodedata.normalize("NFKC", raw)).strip().casefold()
    if _HAN.search(text):
        return _normalise_zh(raw, text)
    return _normalise_latin(raw, text)


def _normalise_zh(raw: str, text: str) -> Name:
    regions = set()
    for inside in _BRACKETED.findall(text):  # 「华为技术（深圳）有限公司」: a region in brackets, or a note
        for region in _REGIONS:
            if inside.startswith(region):
                regions.add(region)
    text = _BRACKETED.sub("", text)
    text = _NOT_WORD.sub("", text)
    if len(_HAN.findall(text)) >= 2:
        text = _LATIN_IN_HAN.sub("", text)  # 「ZTE中兴通讯」: a brand in letters beside the name
    while (m := _REGION_AT_START.match(text)) and len(text) - m.end() >= 3:  # 「北京银行」 stays whole
        regions.add(m.group(1))
        text = text[m.end():]
    suffixes = []
    stripped = True
    while stripped:
        stripped = False
        for suffix in ORG_SUFFIXES:
            if text.endswith(suffix) and len(text) > len(suffix) + 1:
                suffixes.append(suffix)
                text = text[: -len(suffix)]
                stripped = True
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
    return fuzz.ratio(zh.pinyin, latin.core.replace(" ", "")), f"pinyin '{zh.pinyin}' vs '{latin.core}'"


@dataclass(frozen=True)
class Match:
    entry: str  # the list entry as the list names it
    position: int  # its row in the list
    score: float
    why: str


def _trigrams(tag: str, text: str) -> set[str]:
    return {tag + text[i:i + 3] for i in range(max(1, len(text) - 2))}


def _own_grams(name: Name) -> set[str]:
    """What an entry is found by in its own script: bigrams of a Chinese core, trigrams of a Latin one."""
    if name.script == "zh":
        return {"z" + name.core[i:i + 2] for i in range(max(1, len(name.core) - 1))}
    return _trigrams("l", name.core.replace(" ", ""))


class NameIndex:
    """The entries of one list, indexed by n-gram. ``best(name)`` scores only
    the entries (at most ``candidates``) that share the most of its rarer
    n-grams, each weighed by how rare it is: an n-gram in more than
    ``common`` of the entries (建设, 贸易) finds nobody by itself. Chinese names
    are found by Latin entries through their pinyin, and the other way round."""

    def __init__(self, entries: Iterable[str], candidates: int = 12, common: float = 0.005):
        self.entries = list(entries)
        self.names = [normalise(e) for e in self.entries]
        self.candidates = candidates
        postings: dict[str, list[int]] = {}
        for i, name in enumerate(self.names):
            for g in _own_grams(name):
                postings.setdefault(g, []).append(i)
        self.postings = {g: np.array(p, dtype=np.int32) for g, p in postings.items()}
        self.has_latin = any(n.script == "latin" for n in self.names)
        self._pinyin_postings: dict[str, np.ndarray] | None = None  # of the Chinese entries, built when first needed
        self.common = max(50, int(common * len(self.entries)))

    def _channels(self, query: Name) -> list[list[np.ndarray]]:
        """The postings the query's n-grams find: in its own script, and across (pinyin)."""
        none = _NONE
        own = [self.postings.get(g, none) for g in _own_grams(query)]
        cross: list[np.ndarray] = []
        if query.script == "zh" and self.has_latin:
            cross = [self.postings.get(g, none) for g in _trigrams("l", query.pinyin)]
        elif query.script == "latin":
            if self._pinyin_postings is None:
                postings: dict[str, list[int]] = {}
                for i, name in enumerate(self.names):
                    if name.script == "zh":
                        for g in _trigrams("p", name.pinyin):
                            postings.setdefault(g, []).append(i)
                self._pinyin_postings = {g: np.array(p, dtype=np.int32) for g, p in postings.items()}
            cross = [self._pinyin_postings.get(g, none) for g in _trigrams("p", query.core.replace(" ", ""))]
        out = []
        for lists in (own, cross):
            lists = [p for p in lists if len(p)]
            rare = [p for p in lists if len(p) <= self.common]
            if lists:
                out.append(rare or sorted(lists, key=len)[:2])
        return out

    def _candidates(self, postings: list[np.ndarray]) -> list[int]:
        lengths = np.fromiter(map(len, postings), np.int64, len(postings))
        weights = 1.0 / lengths  # a rare n-gram says more
        entries, at = np.unique(np.concatenate(postings), return_inverse=True)
        hits = np.bincount(at, weights=np.repeat(weights, lengths))
        # A name that scores 90 shares most of its n-grams: one that shares less than
        # half of their weight is not scored at all (most names of a stream match nothing).
        keep = hits >= weights.sum() / 2
        entries, hits = entries[keep], hits[keep]
        if len(entries) > self.candidates:
            entries = entries[np.argpartition(-hits, self.candidates - 1)[: self.candidates]]
        return entries.tolist()

    def best(self, raw: str, threshold: float) -> Match | None:
        """The best-scoring entry at ``threshold`` or above, if any."""
        found = self.matches(raw, threshold)
        return max(found, key=lambda m: m.score) if found else None

    def matches(self, raw: str, threshold: float) -> list[Match]:
        """Every candidate entry scoring ``threshold`` or above."""
        query = normalise(raw)
        entries = sorted({i for postings in self._channels(query) for i in self._candidates(postings)})
        out = []
        for i in entries:
            score, why = similarity(query, self.names[i])
            if score >= threshold:
                out.append(Match(self.entries[i], i, round(score, 1), why))
        return out
