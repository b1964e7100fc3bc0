"""The files analysts write: ``riskwatch rules lint|test|coverage|versions|diff`` and ``backtest``."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from monitor.cli.app import EXIT_RULES, _exit_now, _load_pack_or_exit, console, err_console, main, read_labels
from monitor.core.rules import RulePack
from monitor.packs.rulefiles import PackError, default_rules_dir, lint

# --- rules ------------------------------------------------------------------------------

@main.group()
def rules() -> None:
    """Validate and test rules folders."""


@rules.command("lint")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--today", type=click.DateTime(["%Y-%m-%d"]), help="Date for exception expiry (default: today).")
def rules_lint(directory, today):
    """Validate rule packs, risk_list.yaml, duties.yaml, params.yaml and lists/*.csv."""
    directory = directory or default_rules_dir()
    try:
        pack, problems = lint(directory, today.date() if today else None)
    except PackError as err:
        pack, problems = None, err.problems
    for problem in problems:
        (err_console if problem.level == "error" else console).print(str(problem), markup=False)
    errors = sum(1 for p in problems if p.level == "error")
    warnings = len(problems) - errors
    if pack is None:
        err_console.print(f"{errors} error(s), {warnings} warning(s)", markup=False)
        sys.exit(EXIT_RULES)
    console.print(f"ok: {len(pack.rules)} rules, {len(pack.detectors)} detectors, {len(pack.controls)} review controls, "
                  f"{len(pack.risks)} risks, {len(pack.lists)} lists, "
                  f"version {pack.version}; {warnings} warning(s)")


@rules.command("test")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--rule", "rule_ids", multiple=True, help="Only these rules.")
def rules_test(directory, rule_ids):
    """Run the test cases written inside the rule files."""
    from monitor.packs.ruletest import run_control_tests, run_rule_tests

    pack = _load_pack_or_exit(directory)
    results = run_rule_tests(pack, set(rule_ids) or None) + run_control_tests(pack, set(rule_ids) or None)
    per_rule: dict[str, list] = {}
    for r in results:
        per_rule.setdefault(r.rule_id, []).append(r)
    failed = 0
    for rule_id, cases in per_rule.items():
        bad = [c for c in cases if not c.passed]
        failed += len(bad)
        mark = "[green]PASS[/green]" if not bad else "[red]FAIL[/red]"
        console.print(f"{mark} {rule_id}: {len(cases) - len(bad)}/{len(cases)} cases")
        for c in bad:
            console.print(f"     ✗ {c.name}: {c.detail}", markup=False)
    untested = [r.id for r in pack.rules if r.id not in per_rule and not rule_ids]
    for rule_id in untested:
        console.print(f"[yellow]NONE[/yellow] {rule_id}: no test cases")
    console.print(f"{len(results) - failed} passed, {failed} failed")
    if failed:
        sys.exit(1)


def _scored_alerts(pack: RulePack, events_path: Path, workers: int | None, label: str):
    """Score a file with a pack (drafts as shadow), no tickets; returns (runner, summary)."""
    from monitor.runners.runner import EmbeddedRunner, default_workers

    runner = EmbeddedRunner(pack.with_drafts(), None, None, workers=workers or default_workers())
    shown = console.is_terminal
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  disable=not shown) as bar:
        # counting the lines reads the file once more: only for a bar someone sees
        task = bar.add_task(label, total=sum(1 for _ in open(events_path, "rb")) if shown else None)
        summary = runner.score_file(events_path, lambda n: bar.advance(task, n))
    return runner, summary


def _fmt(v, pct: bool = True) -> str:
    if v is None or v != v:
        return "—"
    return f"{100 * v:.1f}%" if pct else f"{v:,.2f}"


@main.command("backtest")
@click.option("--rules", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Rules folder (default: the built-in pack).")
@click.option("--events", "events_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Past events, JSONL in the event contract.")
@click.option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="event_id -> label (yes/no or the rule that should flag it): CSV, JSONL, or a generator truth file.")
@click.option("--label-column", default="label", show_default=True)
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write an HTML report with charts.")
@click.option("--workers", type=int, help="Scoring processes (default: cores, at most 2).")
def backtest_cmd(rules, events_path, labels_path, label_column, html_path, workers):
    """What the rules would have flagged over past events; with labels, how well."""
    from monitor.analyst.backtest import alerts_frame, backtest

    pack = _load_pack_or_exit(rules)
    labels = read_labels(labels_path, label_column) if labels_path else None
    started = time.perf_counter()
    runner, summary = _scored_alerts(pack, events_path, workers, "backtest")
    ids = [r.id for r in pack.rules] + [d.id for d in pack.detectors]
    statuses = {r.id: r.status for r in [*pack.rules, *pack.detectors]}
    result = backtest(alerts_frame(runner.alerts.values()), labels, ids)
    t = Table(title=f"Backtest — pack {pack.version} over {events_path.name}: {summary.lines:,} records, "
                    f"{summary.rejected:,} rejected, {result.overall['alerts']:,} alerts in {result.overall['days']:.0f} days")
    cols = ["rule", "status", "alerts", "events", "per day", "max/day", "per week"]
    if result.labelled:
        cols += ["true", "precision", "recall", "F1"]
    for c in cols:
        t.add_column(c, justify="left" if c in ("rule", "status") else "right")
    for r in result.per_rule.to_dict("records"):
        row = [r["rule_id"], statuses[r["rule_id"]], str(r["alerts"]), str(r["hits"]), f"{r['alerts_per_day']:.2f}",
               str(r["max_alerts_in_a_day"]), f"{r['alerts_per_week']:.1f}"]
        if result.labelled:
            row += [str(r["true_alerts"]), _fmt(r["precision"]), _fmt(r["recall"]), _fmt(r["f1"])]
        t.add_row(*row)
    console.print(t)
    if result.labelled:
        o = result.overall
        console.print(f"overall: {o['labelled_events']:,} labelled events; precision {_fmt(o['precision'])}, "
                      f"recall {_fmt(o['recall'])}, F1 {_fmt(o['f1'])}")
        for rule, messages in result.false_alarms.items():
            for m in messages[:3]:
                console.print(f"  false alarm  {rule}: {m}", markup=False)
        for rule, items in result.misses.items():
            console.print(f"  missed       {'(no rule)' if rule == '*' else rule}: {', '.join(items)}", markup=False)
    if html_path:
        from monitor.cases.report import write_backtest_report

        write_backtest_report(html_path, result, statuses, {
            "title": events_path.name, "rules_dir": str(rules or default_rules_dir()), "version": pack.version,
            "events_file": str(events_path), "lines": summary.lines, "scored": summary.scored, "rejected": summary.rejected})
        console.print(f"report: {html_path}")
    console.print(f"in {summary.lines} = scored {summary.scored} + rejected {summary.rejected}; "
                  f"{time.perf_counter() - started:.1f} s")
    _exit_now(0)


@rules.command("coverage")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--events", "events_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Also backtest over these events and list the rules that never fired.")
@click.option("--workers", type=int)
def rules_coverage(directory, events_path, workers):
    """Risks with no live rule, rules that never fire, lists no rule uses."""
    from monitor.packs.coverage import coverage

    pack = _load_pack_or_exit(directory)
    fired = judged = None
    if events_path:
        runner, _ = _scored_alerts(pack, events_path, workers, "backtest")
        fired = {a.rule_id for a in runner.alerts.values()}
        # a control with a process of its own (a legal case) is exercised when it finds something
        judged = {j.control for j in runner.judgements} | {c.id for c in pack.controls if c.process is not None} & fired
    c = coverage(pack, fired, judged)
    console.print(f"risk list: {len(pack.risks)} risks, {len(pack.risks) - len(c.uncovered_risks)} with a live rule or detector")
    for risk_id in c.uncovered_risks:
        risk = pack.risks[risk_id]
        trying = c.not_live_risks.get(risk_id)
        console.print(f"  no live rule: {risk_id} {risk.title_zh} / {risk.title_en}"
                      + (f" (not live yet: {', '.join(trying)})" if trying else ""), markup=False)
    console.print(f"lists no rule uses: {', '.join(c.unused_lists) or 'none'}")
    console.print(f"review controls: {len(pack.controls)}, not live: {', '.join(c.controls_not_live) or 'none'}")
    if fired is not None:
        console.print(f"never fired over {events_path.name}: {', '.join(c.never_fired) or 'none'}")
        console.print(f"review controls that judged no matter over {events_path.name}: "
                      f"{', '.join(c.controls_unexercised) or 'none'}")
        from monitor.core.reviews import review_rates

        for (org, kind, month), (reviewed, executed) in review_rates(runner.judgements).items():
            console.print(f"  审查率 review rate {month} {org} {kind}: {reviewed}/{executed} = {reviewed / executed:.1%}",
                          markup=False)
        from monitor.core.projects import participation_rates

        for (org, month), (covered, moved) in participation_rates(runner.judgements).items():
            console.print(f"  全程参与率 participation rate {month} {org}: {covered}/{moved} = {covered / moved:.1%}",
                          markup=False)
    _exit_now(0)


@rules.command("versions")
@click.option("--db", default="sqlite:///riskwatch.db", show_default=True, help="The ticket database runners record into.")
def rules_versions(db):
    """The rule pack versions that have scored, and the tickets each last changed."""
    from monitor.cases.tickets import SqlTicketStore

    rows = SqlTicketStore(db).pack_versions()
    t = Table(title=f"Rule pack versions in {db}")
    for c in ("version", "first loaded", "last loaded", "loads", "rules", "detectors", "tickets"):
        t.add_column(c, justify="right" if c in ("loads", "rules", "detectors", "tickets") else "left")
    when = lambda v: "—" if v is None else v.strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731
    for r in rows:
        t.add_row(r["version"], when(r["first_loaded_at"]), when(r["last_loaded_at"]), str(r["loads"]),
                  "—" if r["rules"] is None else str(r["rules"]), "—" if r["detectors"] is None else str(r["detectors"]),
                  str(r["tickets"]))
    console.print(t)


def _base_rules(base: str, head: Path) -> tuple[Path, object]:
    """A folder as it is, or the head folder's path at a git revision (checked out to a temporary folder)."""
    import subprocess
    import tempfile

    if Path(base).is_dir():
        return Path(base), None
    try:
        root = Path(subprocess.run(["git", "-C", str(head), "rev-parse", "--show-toplevel"], check=True,
                                   capture_output=True, text=True).stdout.strip())
        relative = head.resolve().relative_to(root.resolve())
        archive = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", base, "--", str(relative)],
                                 check=True, capture_output=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError, ValueError) as err:
        detail = getattr(err, "stderr", b"") or str(err)
        detail = detail.decode(errors="replace") if isinstance(detail, bytes) else detail
        err_console.print(f"--base {base}: neither a folder nor a git revision of {head} ({detail.strip()})", markup=False)
        sys.exit(EXIT_RULES)
    tmp = tempfile.TemporaryDirectory(prefix="riskwatch-base-")
    try:
        extract_regular_files(archive, Path(tmp.name))
    except UnsafeArchive as err:
        err_console.print(f"--base {base}: {err}", markup=False)
        sys.exit(EXIT_RULES)
    return Path(tmp.name) / relative, tmp


class UnsafeArchive(ValueError):
    """A member of an archive that would be written outside its folder, or is not plain data."""


def extract_regular_files(archive: bytes, dest: Path) -> int:
    """Write the folders and regular files of a tar archive under ``dest``, and
    nothing else; returns how many files. A link, a device or a FIFO, or a path
    that is absolute or climbs out of ``dest``, stops it with the member's name.

    The same promise as tarfile's ``filter="data"``, which Python 3.11 has only
    from 3.11.4 (Debian 12's own python3 is 3.11.2)::

        >>> import tarfile, tempfile
        >>> buf = io.BytesIO()
        >>> with tarfile.open(fileobj=buf, mode="w") as tar:
        ...     info = tarfile.TarInfo("rules/params.yaml"); info.size = 4
        ...     tar.addfile(info, io.BytesIO(b"a: 1"))
        >>> with tempfile.TemporaryDirectory() as d:
        ...     extract_regular_files(buf.getvalue(), Path(d)), (Path(d) / "rules/params.yaml").read_text()
        (1, 'a: 1')
    """
    import tarfile

    root = dest.resolve()
    files = 0
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar:  # pax headers (git archive writes one) are read by tarfile, never members
            if not (member.isreg() or member.isdir()):
                raise UnsafeArchive(f"{member.name} in the archive is not a regular file or folder; not extracted")
            target = (root / member.name).resolve()
            if Path(member.name).is_absolute() or not target.is_relative_to(root):
                raise UnsafeArchive(f"{member.name} in the archive lies outside its folder; not extracted")
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None  # a regular file always has its data
            with source, open(target, "wb") as out:
                out.write(source.read())
            files += 1
    return files


@rules.command("diff")
@click.option("--base", required=True, help="The rules before the change: a folder, or a git revision (e.g. main, HEAD~1).")
@click.option("--head", "head", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The rules after it (default: the built-in pack's folder).")
@click.option("--events", "events_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--examples", default=3, show_default=True)
@click.option("--workers", type=int)
def rules_diff(base, head, events_path, examples, workers):
    """The alerts a rules change adds, removes and changes over the same events."""
    from monitor.analyst.rulediff import diff_alerts

    head = head or default_rules_dir()
    base_dir, keep = _base_rules(base, head)
    base_pack, head_pack = _load_pack_or_exit(base_dir), _load_pack_or_exit(head)
    base_run, _ = _scored_alerts(base_pack, events_path, workers, "base")
    head_run, summary = _scored_alerts(head_pack, events_path, workers, "head")
    diffs = diff_alerts(base_run.alerts, head_run.alerts, examples)
    t = Table(title=f"rules diff over {events_path.name} ({summary.lines:,} records): base {base} (pack {base_pack.version}) → "
                    f"head {head} (pack {head_pack.version})")
    for c in ("rule", "base alerts", "head alerts", "added", "removed", "changed"):
        t.add_column(c, justify="left" if c == "rule" else "right")
    for d in diffs:
        if not d.unchanged:
            t.add_row(d.rule_id, str(d.base), str(d.head), f"+{d.added}", f"-{d.removed}", f"~{d.changed}")
    console.print(t)
    for d in diffs:
        for m in d.examples_added:
            console.print(f"  + {d.rule_id}: {m}", markup=False)
        for m in d.examples_removed:
            console.print(f"  - {d.rule_id}: {m}", markup=False)
        for m in d.examples_changed:
            console.print(f"  ~ {d.rule_id}: {m}", markup=False)
    changed = [d for d in diffs if not d.unchanged]
    rules_changed = {r.id for r in head_pack.rules} ^ {r.id for r in base_pack.rules}
    console.print(f"{len(changed)} rule(s) alert differently; {sum(d.added for d in diffs)} alerts added, "
                  f"{sum(d.removed for d in diffs)} removed, {sum(d.changed for d in diffs)} changed"
                  + (f"; rules only in one pack: {', '.join(sorted(rules_changed))}" if rules_changed else ""))
    if keep is not None:
        keep.cleanup()
    _exit_now(0)
