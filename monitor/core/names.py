"""Name screening: company names as list entries name them, not as our ERP ids. Pure.

A counterparty named 「華為技術有限公司」, 「华为技术」 or 「（深圳）华为技术有限公司」 is
one entity; 「北京建设贸易有限公司」 and 「上海建设贸易有限公司」 are two. Names are
normalised first (``normalise``) — full-width to half-width, traditional to
simplified (OpenCC), organisational suffixes (有限公司, 股份有限公司, 集团 …) and
region names (省/市 names, also in brackets) kept aside as weaker tokens; Latin
names by case, punctuation, dotted initials and legal forms (cleanco: Ltd, LLC,
GmbH, Co.; spelled out too, or in front: Aktiengesellschaft, PAO) — then scored
with rapidfuzz. Across scripts, a Chinese name's pinyin is scored against a
Latin entry, whose trade words are said in pinyin (Technology as keji). A list
is indexed by ``monitor.core.nameindex``.

>>> similarity(normalise("华为技术（深圳）有限公司"), normalise("華為技術有限公司"))[0]
100.0
>>> similarity(normalise("上海建设贸易有限公司"), normalise("北京建设贸易有限公司"))
(0.0, 'different regions (上海 vs 北京)')
>>> similarity(normalise("ACME TRADING LIMITED"), normalise("Acme Trading Co., Ltd."))[0]
100.0
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import NamedTuple

import opencc
from cleanco import basename
from rapidfuzz import fuzz


__all__ = ["DISTRICT_ENDINGS", "Name", "latin_as_pinyin", "lend_pinyin_table", "normalise", "normalise_many", "one_trade_word",
           "pinyin_table", "pinyins", "similarity"]

# Longest first: 集团股份有限公司 before 有限公司 before 公司.
ORG_SUFFIXES = sorted({
    "集团股份有限公司", "集团有限责任公司", "集团有限公司", "股份有限公司", "有限责任公司", "有限公司", "股份公司",
    "集团公司", "总公司", "分公司", "公司", "集团", "有限", "厂", "商行", "株式会社", "有限会社", "合同会社",
    "股份",  # a listed company's short name: 首钢股份
}, key=len, reverse=True)
# A branch, named as its company followed by where or what it is: 「…有限公司上海分公司」, 「…股份有限公司北京分行」.
_BRANCH = re.compile(r"^(.+?(?:有限责任公司|股份有限公司|有限公司|集团公司|总公司))[^\s]+?(?:分公司|分行|支行|分厂|办事处)$")
# Japanese legal forms also stand before the name (株式会社东芝).
_LEADING_FORMS_ZH = ("株式会社", "有限会社", "合同会社")
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
DISTRICT_ENDINGS = ("新区", "区", "县")
# A district or county after a province or city: two or three characters and 区/新区/县
# (「社区」 is no district: one character before 区).
_DISTRICT_AT_START = re.compile("^([\u4e00-\u9fff]{2,3}?(?:新区|区|县))")
_BRACKETED = re.compile(r"[(\[（【]([^)\]）】]*)[)\]）】]")
_BRACKET = re.compile(r"[(\[（【]")
_HAN = re.compile(r"[\u3400-\u9fff]")
_NOT_WORD = re.compile(r"[^\w]+")
_LATIN_IN_HAN = re.compile(r"[a-z0-9]+")
# Legal forms and their pinyin, after cleanco's: weak words at the end of a Latin name.
LATIN_FORMS = frozenset({
    "co", "company", "corp", "corporation", "inc", "incorporated", "ltd", "limited", "llc", "plc", "pjsc", "jsc",
    "oao", "ooo", "ag", "gmbh", "kg", "sa", "spa", "bv", "nv", "group", "holding", "holdings",
    "youxian", "gongsi", "zeren", "gufen", "jituan", "youxiangongsi",
    "se", "sarl", "srl", "sas", "sl", "kk", "ab", "oy", "asa", "pte", "pty", "bhd", "sdn", "tbk", "lp", "llp",
    "ojsc", "cjsc", "pao", "oao", "zao",
})
# Legal forms that stand before the name: "PAO Gazprom Neft", "PT Bank Mandiri", "OOO Romashka"
# ("AO" is left out: it is also a name's initials, as in A. O. Smith).
LATIN_LEADING_FORMS = frozenset({"pao", "oao", "zao", "ooo", "pjsc", "ojsc", "cjsc", "jsc", "pt", "kk"})
# Legal forms spelled out, anywhere in a Latin name: as weak as their abbreviations.
_SPELLED_FORMS = re.compile(r"\b(?:" + "|".join(sorted((
    "aktiengesellschaft", "kommanditgesellschaft", "gesellschaft mit beschr(?:ä|a|ae)nkter haftung",
    "(?:public |open |closed |private )?joint[- ]stock company", "limited liability (?:company|partnership)",
    "public limited company", "private limited company", "proprietary limited",
    "soci(?:é|e)t(?:é|e) anonyme", "soci(?:é|e)t(?:é|e) (?:à|a) responsabilit(?:é|e) limit(?:é|e)e",
    "sociedad an(?:ó|o)nima", "sociedad de responsabilidad limitada", "societ(?:à|a) per azioni",
    "naamloze vennootschap", "besloten vennootschap", "kabushiki [kg]aisha", "aktiebolag", "osakeyhti(?:ö|o)",
    "state corporation",
), key=len, reverse=True)) + r")\b")
_DOTTED_INITIALS = re.compile(r"\b(?:[a-z]\.){2,}(?:[a-z]\b)?")
# Countries and territories, as a Latin name says them at its start or end: weak
# words set aside like a Chinese name's region ("Bank Melli Iran" is "Melli Bank";
# "Korea Kwangson Banking"). Short names, not the official forms pycountry holds
# ("Russian Federation"); China is left out: it is a trade word (中国) across scripts.
COUNTRIES = frozenset({
    "afghanistan", "albania", "algeria", "angola", "argentina", "armenia", "australia", "austria", "azerbaijan",
    "bahrain", "bangladesh", "belarus", "belgium", "bolivia", "brazil", "bulgaria", "burma", "cambodia", "canada",
    "chile", "colombia", "croatia", "cuba", "cyprus", "czech", "denmark", "egypt", "eritrea", "estonia", "ethiopia",
    "finland", "france", "georgia", "germany", "greece", "hong kong", "hk", "hungary", "india", "indonesia", "iran",
    "iraq", "ireland", "israel", "italy", "japan", "jordan", "kazakhstan", "kenya", "korea", "north korea",
    "south korea", "dprk", "kuwait", "kyrgyzstan", "laos", "latvia", "lebanon", "libya", "lithuania", "luxembourg",
    "macau", "macao", "malaysia", "mexico", "moldova", "mongolia", "morocco", "myanmar", "nepal", "netherlands",
    "nicaragua", "nigeria", "norway", "oman", "pakistan", "panama", "peru", "philippines", "poland", "portugal",
    "qatar", "romania", "russia", "saudi arabia", "serbia", "singapore", "slovakia", "slovenia", "somalia",
    "south africa", "spain", "sri lanka", "sudan", "sweden", "switzerland", "syria", "taiwan", "tajikistan",
    "thailand", "turkey", "turkmenistan", "uae", "united arab emirates", "uganda", "ukraine", "united kingdom", "uk",
    "usa", "united states", "uzbekistan", "venezuela", "vietnam", "yemen", "zimbabwe",
})
_COUNTRY_NAMES = "|".join(sorted(COUNTRIES, key=len, reverse=True))  # longest first: "north korea" before "korea"
_COUNTRY_AT_START = re.compile(f"^({_COUNTRY_NAMES}) ")
_COUNTRY_AT_END = re.compile(f" (?:of )?({_COUNTRY_NAMES})$")
# One name for a country said several ways; "Korea" may be either.
_COUNTRY_ALIASES = {"hk": "hong kong", "macao": "macau", "dprk": "north korea", "uae": "united arab emirates",
                    "uk": "united kingdom", "usa": "united states", "burma": "myanmar"}
_COUNTRY_PARTS = {"north korea": "korea", "south korea": "korea"}
# The places both scripts name: a Latin name's country as a Chinese name's region.
COUNTRY_HAN = {"hong kong": "香港", "macau": "澳门", "taiwan": "台湾"}
# Numbers that tell units apart (第八工程局 and 第七工程局, 14th and 38th Research Institute).
# (a Chinese name's digits are among its letters: 「中铁18局」)
_ZH_NUMBERS = re.compile(r"第[零〇一二三四五六七八九十百千两]+|[零〇一二三四五六七八九十百千两]+(?=[局所师团厂院处队])|\d+")
_LATIN_NUMBERS = re.compile(r"\b(\d+)(?:st|nd|rd|th)?\b")


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
    letters: str = ""  # a Chinese name's letters and digits, set aside (「ZTE中兴通讯」, 「中铁18局」)

    @property
    def pinyins(self) -> tuple[str, ...]:
        """``pinyins`` of the core (Chinese names)."""
        return pinyins(self.core) if self.script == "zh" else ()


_PINYIN: dict[int, str] | None = None


def pinyin_table() -> dict[int, str]:
    """Each Han character's commonest reading, toneless (ü as v), for ``str.translate``.

    Character by character: twenty times faster than pypinyin's phrase
    segmentation, which indexing a list of 20,000 names would spend seconds on.
    The price: a polyphone read as in a phrase is missed (银行 comes out
    yinxing, not yinhang). Loading pypinyin's table takes a quarter of a second,
    so a ``nameindex.NameIndex`` keeps the table it was built with, and a pickled index
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


def lend_pinyin_table(table: dict[int, str]) -> None:
    """Use ``table`` (a pickled index's copy of ``pinyin_table``) rather than load pypinyin's."""
    global _PINYIN
    if _PINYIN is None:
        _PINYIN = table


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
    letters = ""
    if _LATIN_IN_HAN.search(text) and len(_HAN.findall(text)) >= 2:
        # 「ZTE中兴通讯」: a brand in letters beside the name, kept aside (「TCL科技」 is not 「ABC科技」)
        letters = " ".join(_LATIN_IN_HAN.findall(text))
        text = _LATIN_IN_HAN.sub("", text)
    if (m := _BRANCH.match(text)) and len(m.group(1)) >= 4:
        text = m.group(1)  # 「中铁十八局集团有限公司第五工程分公司」: a branch is screened as its company
    for form in _LEADING_FORMS_ZH:
        if text.startswith(form) and len(text) - len(form) >= 2:
            text = text[len(form):]
    suffixes = []
    while text.endswith(_SUFFIX_ENDINGS):
        for n in _SUFFIX_LENGTHS:  # longest first
            if len(text) > n + 1 and text[-n:] in _SUFFIX_SET:
                suffixes.append(text[-n:])
                text = text[:-n]
                break
        else:
            break
    # after the suffixes: 「上海医药集团」 keeps its region, as 「上海医药」 and 「北京银行」 do (a trade word would
    # remain); 「北京首钢股份」 does not (首钢 is a name)
    while (m := _REGION_AT_START.match(text)) and (len(text) - m.end() >= 3 or (
            len(text) - m.end() == 2 and _trade_zh().sub("", text[m.end():]))):
        regions.add(m.group(1))
        text = text[m.end():]
    if regions and (m := _DISTRICT_AT_START.match(text)) and len(text) - m.end() >= 3:
        regions.add(m.group(1))  # 「北京市海淀区中关村科技」: a district after a city, kept with its 区
        text = text[m.end():]
    return Name(raw, "zh", text, frozenset(regions), tuple(suffixes), letters)


def _normalise_latin(raw: str, text: str) -> Name:
    if not text.isascii():  # "Société Générale", "Huáwéi Jìshù" (pinyin with its tones): letters without marks
        text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    regions = {_COUNTRY_ALIASES.get(inside.strip(), inside.strip())  # "Xinhua Trading (HK) Ltd"
               for inside in _BRACKETED.findall(text) if inside.strip() in COUNTRIES}
    text = _BRACKETED.sub(" ", text.replace("&", " and "))  # "PT Bank Mandiri (Persero) Tbk": a note
    text = _DOTTED_INITIALS.sub(lambda m: m.group(0).replace(".", ""), text)  # "B.A.S.F." is "basf"
    text = _SPELLED_FORMS.sub(" ", text)  # "Aktiengesellschaft" is "AG": both are weak
    previous = None
    while previous != text:  # "Acme Trading Co., Ltd." -> "Acme Trading Co." -> "Acme Trading"
        previous, text = text, basename(text).strip(" .,")
    words = [w for w in _NOT_WORD.sub(" ", text).split() if w not in ("the", "and")]
    while len(words) > 1 and words[-1] in LATIN_FORMS:
        words.pop()
    while len(words) > 1 and words[0] in LATIN_LEADING_FORMS:  # "PAO Gazprom Neft", "PT Bank Mandiri"
        words.pop(0)
    core = " ".join(words)
    for at in (_COUNTRY_AT_START, _COUNTRY_AT_END):
        m = at.search(core)
        rest = core[:m.start()] + core[m.end():] if m else ""
        if m and _stands_alone(rest.split()):  # "Iran Air" and "Bank of Iran" stay whole
            regions.add(_COUNTRY_ALIASES.get(m.group(1), m.group(1)))
            core = rest.strip()
    return Name(raw, "latin", core, frozenset(regions), ())


def _stands_alone(words: list[str]) -> bool:
    """Whether what remains of a Latin name without its country still names it: two
    words or more, or one of five letters or more that is no trade word ("Sberbank
    of Russia" is Sberbank; "Iran Air" and "Cuba Trading" stay whole)."""
    if len(words) >= 2:
        return True
    return len(words) == 1 and len(words[0]) >= 5 and words[0] not in TRADE_WORDS and words[0] not in LATIN_FORMS


def _regions_differ(a: frozenset[str], b: frozenset[str]) -> bool:
    """Two names' regions name different places: no province or city in common when
    both name one, or no district in common when both name one (海淀区 and 朝阳区 of 北京)."""
    districts_a = {r for r in a if r.endswith(DISTRICT_ENDINGS)}
    districts_b = {r for r in b if r.endswith(DISTRICT_ENDINGS)}
    if districts_a and districts_b and not districts_a & districts_b:
        return True
    cities_a, cities_b = a - districts_a, b - districts_b
    return bool(cities_a and cities_b and not cities_a & cities_b)


def _countries_differ(a: frozenset[str], b: frozenset[str]) -> bool:
    """Two Latin names' countries (``COUNTRIES``) have none in common ("Korea" is either Korea)."""
    return bool(a and b and not ({_COUNTRY_PARTS.get(c, c) for c in a} & {_COUNTRY_PARTS.get(c, c) for c in b}))


def _letters_differ(a: Name, b: Name) -> bool:
    """Two Chinese names' letters name two brands, or one name is its letters and
    the other has none (「TCL科技」 against 「科技」: the Han characters are trade words)."""
    mine, theirs = _LATIN_NUMBERS.sub("", a.letters).split(), _LATIN_NUMBERS.sub("", b.letters).split()
    if mine and theirs:
        return mine != theirs
    lettered = a if mine else b
    return bool(mine or theirs) and len(_trade_zh().sub("", lettered.core)) < 2


def _numbers_differ(a: str, b: str, numbers: re.Pattern) -> tuple[str, str] | None:
    """The numbers two names hold, when both hold some and neither's are among the other's
    (第十四 and 第三十八 differ; 十八局 and 十八局第五工程, a unit of it, do not)."""
    mine, theirs = [n.removeprefix("第") for n in numbers.findall(a)], [n.removeprefix("第") for n in numbers.findall(b)]
    if mine and theirs and not (set(mine) <= set(theirs) or set(theirs) <= set(mine)):
        return "/".join(mine), "/".join(theirs)
    return None


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


def _cores(core: str, their_regions: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The core, and without a leading 中国 where four characters remain (「中国长江电力」, 「长江电力」),
    and without the other name's district written without its 区 or 县 (「天河新兴贸易」 beside 天河区).

    >>> _cores("天河新兴贸易", frozenset({"广州", "天河区"}))
    ('天河新兴贸易', '新兴贸易')
    """
    cores = [core]
    rest = core.removeprefix("中国")
    if rest != core and len(rest) >= 4:
        cores.append(rest)
    for region in their_regions:
        stem = region.removesuffix("新区").removesuffix("区").removesuffix("县")
        if stem != region and len(stem) >= 2 and core.startswith(stem) and len(core) - len(stem) >= 3:
            cores.append(core[len(stem):])
    return tuple(cores)


def similarity(a: Name, b: Name) -> tuple[float, str]:
    """A score out of 100 and why."""
    if a.script == "zh" and b.script == "zh":
        if a.regions and b.regions and _regions_differ(a.regions, b.regions):
            return 0.0, f"different regions ({'/'.join(sorted(a.regions))} vs {'/'.join(sorted(b.regions))})"
        if numbers := _numbers_differ(f"{a.core} {a.letters}", f"{b.core} {b.letters}", _ZH_NUMBERS):
            return 0.0, f"different numbers ({numbers[0]} vs {numbers[1]})"
        if (a.letters or b.letters) and _letters_differ(a, b):
            return 0.0, f"different letters ({a.letters or '-'} vs {b.letters or '-'})"
        best = (-1.0, "")
        for x in _cores(a.core, b.regions):
            for y in _cores(b.core, a.regions):
                score = fuzz.ratio(x, y)
                short, long = sorted((x, y), key=len)
                if score < 92 and _abbreviates(short, long):
                    score, why = 92.0, f"「{short}」 abbreviates 「{long}」"
                else:
                    why = f"「{x}」 vs 「{y}」"
                best = max(best, (score, why))
        return best
    if a.script == "latin" and b.script == "latin":
        if _countries_differ(a.regions, b.regions):
            return 0.0, f"different countries ({'/'.join(sorted(a.regions))} vs {'/'.join(sorted(b.regions))})"
        if numbers := _numbers_differ(a.core, b.core, _LATIN_NUMBERS):
            return 0.0, f"different numbers ({numbers[0]} vs {numbers[1]})"
        # word order aside ("Melli Bank", "Bank Melli"), and word breaks aside ("Gazprombank", "Gazprom Bank")
        score = max(fuzz.token_sort_ratio(a.core, b.core), fuzz.ratio(a.core.replace(" ", ""), b.core.replace(" ", "")))
        (own_a, trade_a), (own_b, trade_b) = _latin_own_words(a.core), _latin_own_words(b.core)
        if own_a and own_b and trade_a and trade_a == trade_b:  # the same trade words lift two names alike
            own_score = fuzz.token_sort_ratio(own_a, own_b)
            if own_score < score:
                return own_score, f"'{own_a}' vs '{own_b}' (without trade words)"
        return score, f"'{a.core}' vs '{b.core}'"
    zh, latin = (a, b) if a.script == "zh" else (b, a)
    spoken, whole, regions, distinct = latin_as_pinyin(latin.core)
    regions |= {COUNTRY_HAN[c].translate(pinyin_table()) if c in COUNTRY_HAN else c for c in latin.regions}
    if regions and zh.regions:
        theirs = {region.translate(pinyin_table()) for region in zh.regions}
        if not regions & theirs:
            return 0.0, f"different regions ({'/'.join(sorted(theirs))} vs {'/'.join(sorted(regions))})"
    # 「上海电气」 keeps its region (two characters would remain), 「上海电气集团」 does not: both forms
    score, pinyin = max((fuzz.ratio(said, form), said) for said in zh.pinyins for form in (spoken, whole))
    own = _zh_distinct(zh.core)
    if own and distinct:  # the trade words alike, the names' own words must be too (鸿祥 is not 鸿达)
        own_score = max(fuzz.ratio(said, distinct) for said in (own, *zh.pinyins))
        if own_score < score:
            return own_score, f"pinyin '{own}' vs '{distinct}' (without trade words)"
    return score, f"pinyin '{pinyin}' vs '{latin.core}'"


# Trade words a Latin name renders alike ("Technology" is 科技 or 技术): across
# scripts each is said as the first, so that 「华为技术」 is "Huawei Technologies".
SAME_TRADE = {"技术": "科技", "商贸": "贸易", "药业": "医药", "建筑": "建设", "工业": "实业", "电器": "电气",
              "动力": "电力"}  # Power: 电力 and 动力
_SAME_TRADE = re.compile("|".join(SAME_TRADE))


def pinyins(core: str) -> tuple[str, ...]:
    """A Chinese core's pinyin, and with the trade words a Latin name says alike said
    alike (``one_trade_word``) where that differs.

    >>> pinyins("华为技术")
    ('huaweijishu', 'huaweikeji')
    """
    table = pinyin_table()
    alike = one_trade_word(core)
    return (core.translate(table),) if alike == core else (core.translate(table), alike.translate(table))


def one_trade_word(core: str) -> str:
    """A Chinese core with each of ``SAME_TRADE``'s words as the one a Latin name renders.

    >>> one_trade_word("华为技术")
    '华为科技'
    """
    return _SAME_TRADE.sub(lambda m: SAME_TRADE[m.group(0)], core)


# A Latin name's trade words as a Chinese name says them, so that
# "Beijing Zhongguancun Technology" and 「北京中关村科技」 compare by sound.
TRADE_WORDS = {
    "science technology": "科技", "technology": "科技", "technologies": "科技", "trading": "贸易", "trade": "贸易",
    "construction": "建设", "investment": "投资", "industrial": "实业", "engineering": "工程", "electric": "电气",
    "electrical": "电气", "pharmaceutical": "医药", "pharmaceuticals": "医药", "logistics": "物流", "energy": "能源",
    "new energy": "新能源", "international": "国际", "development": "发展", "import export": "进出口",
    "machinery": "机械", "chemical": "化工", "chemicals": "化工", "electronics": "电子", "electronic": "电子",
    "building materials": "建材", "materials": "材料", "environmental protection": "环保", "real estate": "房地产", "bank": "银行",
    "securities": "证券", "insurance": "保险", "petroleum": "石油", "steel": "钢铁", "automobile": "汽车",
    "telecommunications": "通信", "communications": "通信", "software": "软件", "network": "网络",
    "information": "信息", "medical": "医疗", "food": "食品", "textile": "纺织", "shipping": "航运", "mining": "矿业",
    "power": "电力", "equipment": "设备", "resources": "资源", "agriculture": "农业", "culture": "文化",
    "media": "传媒", "biotechnology": "生物科技", "consulting": "咨询", "services": "服务", "supply chain": "供应链",
    "iron steel": "钢铁", "china": "中国",
}


_TRADE_HAN = frozenset({*TRADE_WORDS.values(), *SAME_TRADE, *SAME_TRADE.values()})


@lru_cache(maxsize=1)
def _spoken_tables() -> tuple[dict[str, str], frozenset[str], frozenset[str]]:
    """The pinyin of ``TRADE_WORDS``, of the regions, and of the Chinese trade words."""
    table = pinyin_table()
    words = {english: chinese.translate(table) for english, chinese in TRADE_WORDS.items()}
    trade_said = frozenset(w.translate(table) for w in _TRADE_HAN)  # "Huawei Jishu": jishu is a trade word
    return words, frozenset(region.translate(table) for region in _REGIONS), trade_said


@lru_cache(maxsize=1)
def _trade_en() -> re.Pattern:
    """The Latin trade words of ``TRADE_WORDS``, longest first (no pinyin needed: Latin names alone use it)."""
    return re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, TRADE_WORDS), key=len, reverse=True)) + r")\b")


@lru_cache(maxsize=1)
def _trade_zh() -> re.Pattern:
    """The Chinese trade words (科技, 贸易, 银行, 中国 …), longest first."""
    return re.compile("|".join(sorted(_TRADE_HAN, key=len, reverse=True)))


@lru_cache(maxsize=50_000)
def latin_as_pinyin(core: str) -> tuple[str, str, frozenset[str], str]:
    """A Latin core as the pinyin of the Chinese name it may render, with trade
    words said in pinyin and no spaces: without a leading region (kept aside
    as a Chinese name's is), and whole; that region; and the name's own words
    (without region and trade words).

    >>> latin_as_pinyin("beijing zhongguancun technology")
    ('zhongguancunkeji', 'beijingzhongguancunkeji', frozenset({'beijing'}), 'zhongguancun')
    >>> latin_as_pinyin("shanghai electric")
    ('dianqi', 'shanghaidianqi', frozenset({'shanghai'}), '')
    """
    words, regions, trade_said = _spoken_tables()
    spoken = _trade_en().sub(lambda m: "\0" + words[m.group(0)], core).split()  # \0 marks a trade word
    whole = "".join(spoken).replace("\0", "")
    aside = set()
    while len(spoken) > 1 and spoken[0] in regions:
        aside.add(spoken.pop(0))
    distinct = "".join(w for w in spoken if not w.startswith("\0") and w not in trade_said)
    return "".join(spoken).replace("\0", ""), whole, frozenset(aside), distinct


@lru_cache(maxsize=50_000)
def _latin_own_words(core: str) -> tuple[str, tuple[str, ...]]:
    """A Latin core's own words, and its trade words (``TRADE_WORDS``) in order.

    >>> _latin_own_words("sunrise international shipping")
    ('sunrise', ('international', 'shipping'))
    """
    pattern = _trade_en()
    return " ".join(pattern.sub(" ", core).split()), tuple(m.group(0) for m in pattern.finditer(core))


@lru_cache(maxsize=50_000)
def _zh_distinct(core: str) -> str:
    """The pinyin of a Chinese core's own words, its trade words (科技, 贸易, 中国 …) left out.

    >>> _zh_distinct("丹东鸿祥实业发展")
    'dandonghongxiang'
    """
    return _trade_zh().sub("", core).translate(pinyin_table())
