"""Master data as state: who stands behind a counterparty. Pure.

Suppliers and bidders (``supplier_profile``) and employees
(``employee_profile``) arrive as events like any other, and are kept here per
org, the newest version of each record. Two questions are asked of them:

- ``employee_links``: which employees of the org share a phone, a bank
  account, an address or an identity number with a supplier (the supplier's
  own, its legal representative's or a shareholder's)? Employees' details are
  indexed, so the question costs a few look-ups, not a pass over the staff.
- ``shared_between``: which details do two suppliers share (contacts,
  address, bank account, legal representative, shareholders)? Asked of the
  few bidders of one tender lot.

People are known by their identity numbers (身份证号), not their names: in a
group of thousands, two people called 王伟 are not one person. Only between
the bidders of one lot, where no number is given, do two legal
representatives of the same name count as one. Organisations among the
shareholders are known by name.

Records are valid from their ``occurred_at``: a link is judged with the master
data in force at the business event's time, so the answer does not depend on
how the stream was cut into batches. The state is bounded by the master files
themselves (one record per supplier and employee, the newest); a record whose
``attributes.active`` is false is removed; a detail shared by more than
``COMMON_DETAIL`` employees (a switchboard, a dormitory) is not evidence of
anything and is not indexed.

>>> reg = PartyRegistry({}, {})
>>> reg.apply("ORG1", "employee", "E7", 10.0, {"name": "李四", "phone": "138-0000-1111",
...           "department": "采购部"})
>>> reg.apply("ORG1", "supplier", "S1", 20.0, {"name": "甲公司", "phone": "+86 13800001111"})
>>> [(l.party_id, l.department, l.shared) for l in reg.employee_links("ORG1", "S1", at=30.0)]
[('E7', '采购部', (('phone', '13800001111'),))]
>>> reg.employee_links("ORG1", "S1", at=15.0)   # before the supplier's record existed
[]
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, MutableMapping

__all__ = ["COMMON_DETAIL", "Link", "PartyRegistry", "profile_details", "PROFILE_TYPES"]

# Event type -> the kind of record it keeps, and the attribute naming its id
# (None: the event's counterparty_id).
PROFILE_TYPES: dict[str, tuple[str, str | None]] = {
    "supplier_profile": ("supplier", None),
    "employee_profile": ("employee", "employee_id"),
}
COMMON_DETAIL = 5  # employees sharing one detail beyond this: not a personal detail
DETAIL_LABELS = {"phone": "phone", "bank": "bank account", "address": "address", "pid": "identity number",
                 "person": "person", "holder": "shareholder"}

_DIGITS = re.compile(r"\D+")
_NOT_WORD = re.compile(r"[\W_]+")
# A shareholder that is an organisation, by the words its name carries.
_ORGANISATION = re.compile(r"公司|集团|合伙|企业|中心|基金|研究院|事务所|\b(?:ltd|llc|inc|gmbh|co|corp|limited|lp)\b", re.I)


@dataclass(frozen=True)
class Link:
    """One party that shares details with the one asked about."""

    kind: str  # "employee" or "supplier"
    party_id: str
    name: str
    department: str
    shared: tuple[tuple[str, str], ...]  # (detail kind, normalised value)

    def describe(self) -> str:
        """``李四 (employee E7, 采购部): same phone 13800001111``"""
        where = f", {self.department}" if self.department else ""
        same = "; ".join(f"same {DETAIL_LABELS[k]} {v}" for k, v in self.shared)
        return f"{self.name or self.party_id} ({self.kind} {self.party_id}{where}): {same}"


def _text(value: Any) -> str:
    return unicodedata.normalize("NFKC", str(value)).strip() if value not in (None, "") else ""


def _values(value: Any) -> list[str]:
    """A list attribute, or text separated by ; ， 、 or |."""
    if value is None:
        return []
    items = value if isinstance(value, list) else re.split(r"[;；,，、|]", str(value))
    return [t for t in (_text(v) for v in items if not isinstance(v, (dict, list))) if t]


def _phone(raw: str) -> str:
    digits = _DIGITS.sub("", raw)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    elif len(digits) == 15 and digits.startswith("0086"):
        digits = digits[4:]
    return digits if len(digits) >= 7 else ""


def _bank(raw: str) -> str:
    account = _NOT_WORD.sub("", raw).upper()
    return account if len(account) >= 8 else ""


def _address(raw: str) -> str:
    address = _NOT_WORD.sub("", raw).lower()
    return address if len(address) >= 6 else ""


def _pid(raw: str) -> str:
    pid = _NOT_WORD.sub("", raw).upper()
    return pid if len(pid) >= 8 else ""


def _person(raw: str) -> str:
    return _NOT_WORD.sub("", raw).lower()


def profile_details(kind: str, attributes: Mapping[str, Any]) -> list[list[str]]:
    """The normalised identifying details of a profile, as ``[kind, value]`` pairs.

    People are identified by their identity numbers (a legal representative's
    ``legal_rep_id``, natural-person shareholders' ``shareholder_ids``, an
    employee's ``id_number``); a legal representative's bare name is kept only
    when no number is given, and then matches only another bare name.
    Shareholders named in ``shareholders`` count when they are organisations:
    a company is its name, a person is not.

    >>> profile_details("supplier", {"phone": "010-6655 4433", "bank_accounts": "6222 0001 2345; 6222 0001 9999",
    ...                              "legal_rep": "张 三", "legal_rep_id": "11010119800101123x",
    ...                              "shareholders": ["江城恒达投资有限公司", "李四"]})
    [['phone', '01066554433'], ['bank', '622200012345'], ['bank', '622200019999'], ['pid', '11010119800101123X'], ['holder', '江城恒达投资有限公司']]
    """
    a = attributes
    found: list[tuple[str, str]] = []
    found += [("phone", _phone(v)) for v in _values(a.get("phone"))]
    banks = _values(a.get("bank_accounts")) + _values(a.get("bank_account"))
    found += [("bank", _bank(v)) for v in banks]
    found += [("address", _address(v)) for v in _values(a.get("address"))]
    if kind == "employee":
        found += [("pid", _pid(v)) for v in _values(a.get("id_number"))]
    else:
        rep_ids = [_pid(v) for v in _values(a.get("legal_rep_id"))]
        found += [("pid", v) for v in rep_ids]
        if not any(rep_ids):
            found += [("person", _person(v)) for v in _values(a.get("legal_rep"))]
        found += [("pid", _pid(v)) for v in _values(a.get("shareholder_ids"))]
        found += [("holder", _person(v)) for v in _values(a.get("shareholders")) if _ORGANISATION.search(v)]
    out: list[list[str]] = []
    for k, v in found:
        if v and [k, v] not in out:
            out.append([k, v])
    return out


# A detail that links an employee to a supplier (names alone do not).
_EMPLOYEE_DETAILS = frozenset({"phone", "bank", "address", "pid"})


class PartyRegistry:
    """Master-data records and the index of employees' details, over two mappings
    (plain dicts in the embedded runner, table-backed stores in the worker).

    ``records``: ``(org, kind, party id) -> [since, name, department, post, details]``;
    ``index``: ``(org, detail kind, value) -> [[employee id, since], ...]`` or
    ``"common"`` once more than ``COMMON_DETAIL`` employees have shared it.
    """

    def __init__(self, records: MutableMapping, index: MutableMapping):
        self.records = records
        self.index = index
        self._peek_records = getattr(records, "peek", records.get)  # reads that change nothing
        self._peek_index = getattr(index, "peek", index.get)

    # updates -------------------------------------------------------------------
    def apply(self, org: str, kind: str, party_id: str, since: float, attributes: Mapping[str, Any],
              name: str | None = None) -> None:
        """Keep a profile: the newest version of each record wins; an inactive one is removed."""
        key = (org, kind, party_id)
        old = self._peek_records(key)
        if old is not None and old[0] > since:
            return  # an older version arriving late
        if old is not None and kind == "employee":
            self._unindex(org, party_id, old[4])
        if attributes.get("active") is False or attributes.get("active") == "false":
            if old is not None:
                del self.records[key]
            return
        details = profile_details(kind, attributes)
        record = [since, _text(name if name is not None else attributes.get("name")), _text(attributes.get("department")),
                  _text(attributes.get("post")), details]
        self.records[key] = record
        if kind == "employee":
            for k, v in details:
                if k in _EMPLOYEE_DETAILS:
                    self._index_one(org, k, v, party_id, since)

    def _index_one(self, org: str, k: str, v: str, party_id: str, since: float) -> None:
        ikey = (org, k, v)
        held = self.index.get(ikey)
        if held == "common":
            return
        held = [e for e in (held or []) if e[0] != party_id] + [[party_id, since]]
        self.index[ikey] = "common" if len(held) > COMMON_DETAIL else held

    def _unindex(self, org: str, party_id: str, details: list) -> None:
        for k, v in details:
            ikey = (org, k, v)
            held = self.index.get(ikey)
            if held is None or held == "common":
                continue
            rest = [e for e in held if e[0] != party_id]
            if rest:
                self.index[ikey] = rest
            else:
                del self.index[ikey]

    # questions -------------------------------------------------------------------
    def employee_links(self, org: str, supplier_id: str, at: float, department: str | None = None) -> list[Link]:
        """Employees of ``org`` sharing a personal detail with the supplier, by the
        records in force at business time ``at``; only those of ``department`` if given."""
        record = self._peek_records((org, "supplier", supplier_id))
        if record is None or record[0] > at:
            return []
        shared: dict[str, list[tuple[str, str]]] = {}
        for k, v in record[4]:
            if k not in _EMPLOYEE_DETAILS:
                continue
            held = self._peek_index((org, k, v))
            if not held or held == "common":
                continue
            for employee_id, since in held:
                if since <= at:
                    shared.setdefault(employee_id, []).append((k, v))
        links = []
        for employee_id in sorted(shared):
            emp = self._peek_records((org, "employee", employee_id))
            if emp is None or emp[0] > at:
                continue
            if department is not None and _text(department) != emp[2]:
                continue
            links.append(Link("employee", employee_id, emp[1], emp[2], tuple(shared[employee_id])))
        return links

    def shared_between(self, org: str, supplier_ids: Iterable[str], at: float) -> list[tuple[str, str, tuple]]:
        """Pairs of these suppliers whose records (in force at ``at``) share any
        detail, people and shareholding organisations included:
        ``[(a, b, ((kind, value), ...)), ...]``."""
        records = []
        for sid in dict.fromkeys(supplier_ids):
            record = self._peek_records((org, "supplier", sid))
            if record is not None and record[0] <= at:
                records.append((sid, {(k, v) for k, v in record[4]}))
        pairs = []
        for i, (a, da) in enumerate(records):
            for b, db in records[i + 1:]:
                common = da & db
                if common:
                    pairs.append((a, b, tuple(sorted(common))))
        return pairs

    def __len__(self) -> int:
        return len(self.records)

