"""The group's companies (``rules/orgs.yaml``): names for people, and the tree.

    orgs, problems = load_orgs(default_rules_dir())     # monitor.packs.rulefiles
    orgs.name("SUB04")             # '江城水务集团有限公司'
    orgs.subtree("JCGROUP")        # the group and every company below it

The web UI shows names rather than ids, and the cockpit filters by a company
and its subsidiaries. The file is optional: without it every org is shown by
its id and has no subsidiaries. ``riskwatch rules lint`` checks it: unknown
keys, duplicate ids, a parent that is not listed, a cycle — each at file:line:col.
"""

from __future__ import annotations

import msgspec

from monitor.core.rules import Document, Problem, _Strict, convert

__all__ = ["ORGS_FILE", "Org", "OrgDirectory", "check_orgs"]

ORGS_FILE = "orgs.yaml"


class Org(_Strict):
    id: str
    name: str
    name_en: str = ""
    parent: str | None = None


class _OrgFile(_Strict):
    orgs: list[Org] = msgspec.field(default_factory=list)


class OrgDirectory:
    """Orgs by id, with each one's children.

    >>> d = OrgDirectory([Org(id="G", name="集团"), Org(id="A", name="甲公司", name_en="A Co", parent="G"),
    ...                   Org(id="A1", name="甲一", parent="A")])
    >>> d.name("A"), d.name("A", "en"), d.name("X")
    ('甲公司', 'A Co', 'X')
    >>> sorted(d.subtree("A")), sorted(d.subtree("G")), sorted(d.subtree("X"))
    (['A', 'A1'], ['A', 'A1', 'G'], ['X'])
    >>> [(o.id, depth) for o, depth in d.tree()]
    [('G', 0), ('A', 1), ('A1', 2)]
    """

    def __init__(self, orgs: list[Org] = ()):
        self.orgs = {o.id: o for o in orgs}
        self.children: dict[str, list[str]] = {}
        for o in orgs:
            if o.parent is not None:
                self.children.setdefault(o.parent, []).append(o.id)
        self._subtrees: dict[str, frozenset[str]] = {}

    def __len__(self) -> int:
        return len(self.orgs)

    def name(self, org_id: str | None, lang: str = "zh") -> str:
        org = self.orgs.get(org_id or "")
        if org is None:
            return org_id or ""
        return org.name_en if lang == "en" and org.name_en else org.name

    def subtree(self, org_id: str) -> frozenset[str]:
        """``org_id`` and every org below it (an unknown id: itself alone)."""
        found = self._subtrees.get(org_id)
        if found is None:
            seen, todo = {org_id}, [org_id]
            while todo:
                for child in self.children.get(todo.pop(), ()):
                    if child not in seen:
                        seen.add(child)
                        todo.append(child)
            found = self._subtrees[org_id] = frozenset(seen)
        return found

    def tree(self) -> list[tuple[Org, int]]:
        """Every org under its parent, depth first, roots first (for a picker)."""
        out: list[tuple[Org, int]] = []
        roots = [o for o in self.orgs.values() if o.parent is None or o.parent not in self.orgs]

        def walk(org: Org, depth: int) -> None:
            out.append((org, depth))
            for child in self.children.get(org.id, ()):
                walk(self.orgs[child], depth + 1)

        for root in roots:
            walk(root, 0)
        return out


def check_orgs(doc: Document) -> tuple[OrgDirectory, list[Problem]]:
    """The directory a parsed ``orgs.yaml`` describes, and what is wrong with it."""
    problems: list[Problem] = []
    parsed = convert(doc, (), doc.data if doc.data is not None else {}, _OrgFile, None, problems)
    if parsed is None:
        return OrgDirectory(), problems
    ids: dict[str, int] = {}
    for i, org in enumerate(parsed.orgs):
        if org.id in ids:
            line, col = doc.where(("orgs", i, "id"))
            problems.append(Problem(doc.file, line, col, f"duplicate org id '{org.id}'"))
        ids[org.id] = i
    for i, org in enumerate(parsed.orgs):
        if org.parent is not None and org.parent not in ids:
            line, col = doc.where(("orgs", i, "parent"))
            problems.append(Problem(doc.file, line, col, f"{org.id}: parent '{org.parent}' is not in {ORGS_FILE}"))
    parent = {o.id: o.parent for o in parsed.orgs}
    for i, org in enumerate(parsed.orgs):
        seen, at = set(), parent.get(org.id)
        while at is not None and at in parent and at not in seen:  # stops where a cycle closes
            if at == org.id:  # said of each org on the cycle, not of those below it
                line, col = doc.where(("orgs", i, "parent"))
                problems.append(Problem(doc.file, line, col, f"{org.id}: its parents go round in a cycle"))
                break
            seen.add(at)
            at = parent[at]
    if problems:
        return OrgDirectory(), problems
    return OrgDirectory(parsed.orgs), problems

