"""Reading a rules folder: YAML with positions, CSV lists, and the pack they make.

A rules folder holds rule packs (``*.yaml`` other than the six named files),
``risk_list.yaml``, ``duties.yaml``, ``params.yaml``, ``detectors.yaml``,
``review_controls.yaml``, ``orgs.yaml`` (the group's companies, for people: not scored),
``lists/*.csv`` and trained models under ``models/``.

>>> pack = load_pack(default_rules_dir())
>>> len(pack.rules) >= 15
True
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import math
import re
from pathlib import Path
from typing import Any

import yaml

from monitor.core.pack import compile_pack
from monitor.core.rules import CounterpartyList, Document, ListRows, Problem, RulePack
from monitor.packs.kept import load_list_kept
from monitor.packs.orgs import ORGS_FILE, OrgDirectory, check_orgs

__all__ = ["PackError", "default_rules_dir", "lint", "load_document", "load_orgs", "load_pack", "rule_sources"]

SPECIAL_FILES = ("risk_list.yaml", "duties.yaml", "params.yaml", "detectors.yaml", "review_controls.yaml", "orgs.yaml")
# What one rules file may cost to read: the default pack's largest file is
# about 30 KB; lists (CSV) are read line by line and have no such bound.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 64
MAX_YAML_INT = 2**63


class PackError(Exception):
    """The rules folder has errors; ``problems`` lists them all."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def default_rules_dir() -> Path:
    """The default pack: the checkout's ``rules/`` or the installed copy."""
    package = Path(__file__).resolve().parent.parent  # monitor/
    for candidate in (package.parent / "rules", package / "_data" / "rules"):
        if (candidate / "risk_list.yaml").exists():
            return candidate
    raise FileNotFoundError("no default rules folder found")


class _Loader(yaml.CSafeLoader):  # libyaml: the same marks, 5x faster
    pass


class _Refused(Exception):
    """A construct rules files do not allow, at a YAML mark."""

    def __init__(self, mark, message: str):
        self.mark, self.message = mark, message


def _refuse_anchors(text: str) -> None:
    """Anchors and aliases share one value between places: expanded, a few
    hundred bytes of them make gigabytes ("billion laughs"), or a loop. Rules
    files are read by people; they spell every value out."""
    if "&" not in text and "*" not in text:
        return
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(event.start_mark, f"YAML alias '*{event.anchor}' is not allowed in rules files: "
                                             "write the value out")
        if getattr(event, "anchor", None):
            raise _Refused(event.start_mark, f"YAML anchor '&{event.anchor}' is not allowed in rules files: "
                                             "write the value out where it is used")


def _checked_number(value: Any, mark) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -MAX_YAML_INT <= value < MAX_YAML_INT:
        raise _Refused(mark, "number out of range: integers must fit in 64 bits")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Refused(mark, "number is not finite")
    return value


def load_document(text: str, file: str) -> tuple[Document | None, list[Problem]]:
    """Parse YAML keeping the line and column of every key and value.

    Its cost is bounded by its size: files over ``MAX_YAML_BYTES``, anchors
    and aliases, nesting deeper than ``MAX_YAML_DEPTH`` and numbers that do
    not fit in 64 bits are errors at their ``file:line:col``.
    """
    if len(text) > MAX_YAML_BYTES:
        return None, [Problem(file, 1, 1, f"the file has {len(text):,} characters; a rules file may have at most "
                                          f"{MAX_YAML_BYTES:,} (split it into several files)")]
    try:
        _refuse_anchors(text)
        node = yaml.compose(text, Loader=_Loader)
    except _Refused as err:
        return None, [Problem(file, err.mark.line + 1, err.mark.column + 1, err.message)]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = getattr(err, "problem", None) or str(err)
        return None, [Problem(file, line, col, f"YAML syntax error: {problem}")]
    doc = Document(file, None)
    if node is None:
        return doc, []
    problems: list[Problem] = []
    constructor = _Loader(text)

    def walk(n: yaml.Node, path: tuple) -> Any:
        doc.positions[path] = (n.start_mark.line + 1, n.start_mark.column + 1)
        if len(path) > MAX_YAML_DEPTH:
            raise _Refused(n.start_mark, f"nested deeper than {MAX_YAML_DEPTH} levels")
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in n.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _Refused(key_node.start_mark, "a key must be a plain value, not a list or a mapping")
                key = constructor.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int)):
                    key = str(key)
                if key in out:
                    problems.append(Problem(file, key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                                            f"duplicate key '{key}'"))
                doc.key_positions[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                out[key] = walk(value_node, path + (key,))
            return out
        if isinstance(n, yaml.SequenceNode):
            return [walk(v, path + (i,)) for i, v in enumerate(n.value)]
        if n.style:
            doc.styles[path] = n.style
        return _checked_number(constructor.construct_object(n, deep=True), n.start_mark)

    try:
        doc.data = walk(node, ())
    except _Refused as err:
        return None, [Problem(file, err.mark.line + 1, err.mark.column + 1, err.message)]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, [Problem(file, line, col, f"YAML error: {getattr(err, 'problem', err)}")]
    return doc, problems


def _parse_date(text: str) -> dt.date | None:
    text = (text or "").strip()
    return dt.date.fromisoformat(text) if text else None


_CST = dt.timezone(dt.timedelta(hours=8))  # list dates are calendar days in China Standard Time


def load_list(text: str, file: str, name: str) -> tuple[CounterpartyList | None, list[Problem]]:
    """Read a counterparty list CSV: a header row with at least counterparty_id. A row may
    leave the id empty when it names the entity (counterparty_name): a sanctions or
    debarment list names entities, and such a row is found by ``screened()`` alone."""
    problems: list[Problem] = []
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    if "counterparty_id" not in header:
        return None, [Problem(file, 1, 1, f"list '{name}' needs a 'counterparty_id' column (has: {', '.join(header) or 'none'})")]
    entries: dict[str, list[tuple[float, float]]] = {}
    rows = []
    spans: list[tuple[float, float]] = []  # each row's own period (what a name match is held to)
    periods: dict[tuple[str, str], tuple[float, float]] = {}  # a list of 20,000 rows holds a few dates

    def period(listed_on: str, expires_on: str) -> tuple[float, float]:
        start, end = _parse_date(listed_on), _parse_date(expires_on)
        return (float("-inf") if start is None else dt.datetime.combine(start, dt.time(), _CST).timestamp(),
                float("inf") if end is None else dt.datetime.combine(end, dt.time(), _CST).timestamp() + 86400)

    width = len(header)
    id_col = header.index("counterparty_id")
    name_col = header.index("counterparty_name") if "counterparty_name" in header else None
    listed_col = header.index("listed_on") if "listed_on" in header else None
    expires_col = header.index("expires_on") if "expires_on" in header else None
    for values in reader:
        if not values:
            continue  # a blank line, as DictReader skips it
        if len(values) < width:
            values += [""] * (width - len(values))
        cid = values[id_col].strip()
        if not cid and not (name_col is not None and values[name_col].strip()):
            problems.append(Problem(file, reader.line_num, 1, "a row needs a counterparty_id or a counterparty_name"))
            continue
        dates = (values[listed_col] if listed_col is not None else "", values[expires_col] if expires_col is not None else "")
        span = periods.get(dates)
        if span is None:
            try:
                span = periods[dates] = period(*dates)
            except ValueError as err:
                col = 1 + sum(len(h) + 1 for h in header[: expires_col or 0])
                problems.append(Problem(file, reader.line_num, col, f"bad date ({err}); use YYYY-MM-DD"))
                continue
        if cid:
            if cid in entries:
                problems.append(Problem(file, reader.line_num, 1, f"'{cid}' is listed again; both periods apply",
                                        level="warning"))
            entries.setdefault(cid, []).append(span)
        rows.append(values[:width] if len(values) > width else values)  # a longer row: its extra values are dropped
        spans.append(span)
    columns = [list(column) for column in zip(*rows)] if rows else [[] for _ in header]
    return CounterpartyList(name, entries, ListRows(header, columns), spans), problems


def _display(path: Path, root: Path, shown_as: Path | None = None) -> str:
    if shown_as is not None:  # a copy of a folder, named as the folder the analyst edits
        path = shown_as / path.relative_to(root)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_folder(rules_dir: Path | str, shown_as: Path | None = None
                ) -> tuple[dict[str, Document], list[Document], dict[str, CounterpartyList], list[Problem]]:
    """Read every file of a rules folder (no compilation); ``shown_as`` names the
    files in problems when the folder read is a copy of that one."""
    root = Path(rules_dir)
    problems: list[Problem] = []
    if not root.is_dir():
        raise PackError([Problem(str(root), 1, 1, "rules folder not found")])
    special: dict[str, Document] = {}
    packs: list[Document] = []
    def read(path: Path, encoding: str) -> tuple[bytes, str] | None:
        try:
            data = path.read_bytes()
            return data, data.decode(encoding)
        except (OSError, UnicodeDecodeError) as err:
            problems.append(Problem(_display(path, root, shown_as), 1, 1, f"cannot read: {err}"))
            return None

    for path in sorted(root.glob("*.yaml")) + sorted(root.glob("*.yml")):
        display = _display(path, root, shown_as)
        if (read_as := read(path, "utf-8")) is None:
            continue
        doc, errs = load_document(read_as[1], display)
        problems += errs
        if doc is None:
            continue
        if path.name in SPECIAL_FILES:
            special[path.name] = doc
        else:
            packs.append(doc)
    lists: dict[str, CounterpartyList] = {}
    for path in sorted((root / "lists").glob("*.csv")):
        if (read_as := read(path, "utf-8-sig")) is None:  # Excel writes a BOM
            continue
        data, text = read_as
        display = _display(path, root, shown_as)
        lst, errs = load_list_kept(data, path.stem, lambda: load_list(text, display, path.stem))
        problems += errs
        if lst is not None:
            lists[path.stem] = lst
    for name in ("risk_list.yaml", "duties.yaml"):
        if not (root / name).exists():
            problems.append(Problem(_display(root / name, root, shown_as), 1, 1, f"{name} is missing"))
    return special, packs, lists, problems


def lint(rules_dir: Path | str, today: dt.date | None = None, shown_as: Path | None = None
         ) -> tuple[RulePack | None, list[Problem]]:
    """Validate a folder; returns the pack (None on errors) and every problem found."""
    today = today or dt.date.today()
    special, packs, lists, problems = read_folder(rules_dir, shown_as)
    if "risk_list.yaml" not in special or "duties.yaml" not in special:
        return None, problems
    # compile_pack carries the reading problems along: any error there means no pack.
    if "orgs.yaml" in special:  # names and the tree for people; not part of what scores
        problems = problems + check_orgs(special["orgs.yaml"])[1]
    pack, problems = compile_pack(packs, special["risk_list.yaml"], special["duties.yaml"], special.get("params.yaml"),
                                  lists, problems, today, special.get("detectors.yaml"),
                                  special.get("review_controls.yaml"))
    if pack is not None:
        model_problems = _load_models(pack, Path(rules_dir), special.get("detectors.yaml"))
        problems = problems + model_problems
        if any(p.level == "error" for p in model_problems):
            return None, problems
    return pack, problems


def _load_models(pack: RulePack, root: Path, doc: Document | None) -> list[Problem]:
    """Attach the trained models detectors name; a missing file is a warning (the
    detector scores nothing until trained), a file that fails validation an error."""
    from detectors.modelfile import ModelFileError, load_model

    problems = []
    for i, det in enumerate(pack.detectors):
        if not det.spec.model_file:
            continue
        path = root / det.spec.model_file
        line, col = doc.where(("detectors", i, "model_file"))
        if not path.resolve().is_relative_to(root.resolve()):
            problems.append(Problem(doc.file, line, col, f"model file {det.spec.model_file} is outside the rules folder: "
                                    "a pack reads only its own files (put it under models/)", det.id))
            continue
        if not path.exists():
            problems.append(Problem(doc.file, line, col, f"model file {det.spec.model_file} (beside detectors.yaml) not found: "
                                    "this detector scores nothing until one is trained (riskwatch detectors train)",
                                    det.id, "warning"))
            continue
        try:
            det.trained, det.trained_meta = load_model(path)
        except ModelFileError as err:
            problems.append(Problem(doc.file, line, col, str(err), det.id))
            continue
        # the model decides alerts too: it is part of the pack's version
        pack.version = hashlib.sha256((pack.version + hashlib.sha256(path.read_bytes()).hexdigest()).encode()).hexdigest()[:12]
    return problems


def load_orgs(rules_dir: Path | str) -> tuple[OrgDirectory, list[Problem]]:
    """The org directory of a rules folder (empty when it has no ``orgs.yaml``).

    >>> orgs, problems = load_orgs(default_rules_dir())
    >>> orgs.name("SUB04"), "SUB12" in orgs.subtree("JCGROUP"), problems
    ('江城水务集团有限公司', True, [])
    """
    root = Path(rules_dir)
    path = root / ORGS_FILE
    if not path.exists():
        return OrgDirectory(), []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return OrgDirectory(), [Problem(_display(path, root), 1, 1, f"cannot read: {err}")]
    doc, problems = load_document(text, _display(path, root))
    if doc is None:
        return OrgDirectory(), problems
    orgs, more = check_orgs(doc)
    return orgs, problems + more


_ENTRY = re.compile(r"^(\s*)- (rule|detector|control): *([A-Za-z0-9_.-]+)")


def rule_sources(rules_dir: Path | str) -> dict[str, tuple[str, int, str]]:
    """Each rule, detector and control as its analyst wrote it: id -> (file, first line, text),
    the text being its entry with the comment lines just above it (its tests included).

    >>> file, line, text = rule_sources(default_rules_dir())["fin_payment_without_contract"]
    >>> file, text.splitlines()[1]
    ('finance.yaml', '- rule: fin_payment_without_contract')
    """
    root = Path(rules_dir)
    out: dict[str, tuple[str, int, str]] = {}
    for path in sorted(root.glob("*.yaml")) + sorted(root.glob("*.yml")):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue  # lint says why
        starts = [(n, m.group(1), m.group(3)) for n, line in enumerate(lines) if (m := _ENTRY.match(line))]
        for i, (n, indent, entry_id) in enumerate(starts):
            begin = n
            while begin > 0 and lines[begin - 1].lstrip().startswith("#"):
                begin -= 1
            end = starts[i + 1][0] if i + 1 < len(starts) else len(lines)
            while end > n + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
                end -= 1  # the next entry's comment is its own
            out[entry_id] = (path.relative_to(root).as_posix(), n + 1, "\n".join(lines[begin:end]))
    return out


def load_pack(rules_dir: Path | str, today: dt.date | None = None) -> RulePack:
    """Load and compile a folder, raising PackError listing every error."""
    from monitor.packs.kept import prepare_screening

    pack, problems = lint(rules_dir, today)
    if pack is None:
        raise PackError([p for p in problems if p.level == "error"])
    prepare_screening(pack)
    return pack
